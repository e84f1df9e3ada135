//! The peer service: the receiving end of other nodes' links.

use std::net::SocketAddr;
use std::sync::Arc;

use prost::Message as _;
use rumour_core::Message;
use rumour_proto::v1::peer_server::Peer;
use rumour_proto::v1::{Envelope, StreamSummary};
use tokio::sync::mpsc::{self, error::TrySendError};
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::debug;

use crate::stats::{add, bump, TransportStats};

/// Decodes each envelope of a peer's stream and queues it for the node.
/// Oversized envelopes are refused by tonic on their length prefix, before
/// decoding (see `PeerServer::max_decoding_message_size`); malformed ones
/// are refused here. Both are counted, and the node keeps serving.
pub(crate) struct PeerService {
    pub(crate) inbound: mpsc::Sender<(SocketAddr, Message)>,
    pub(crate) stats: Arc<TransportStats>,
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<StreamSummary>, Status> {
        let remote = request.remote_addr();
        let mut stream = request.into_inner();
        let mut summary = StreamSummary::default();
        loop {
            match stream.message().await {
                Ok(Some(env)) => {
                    add(&self.stats.bytes_received, env.encoded_len() as u64);
                    match rumour_proto::decode_envelope(env) {
                        Ok((from, msg)) => {
                            summary.received += 1;
                            bump(&self.stats.received);
                            match self.inbound.try_send((from, msg)) {
                                Ok(()) => {}
                                Err(TrySendError::Full(_)) => bump(&self.stats.inbound_queue_full),
                                Err(TrySendError::Closed(_)) => {
                                    return Err(Status::unavailable("the node has stopped"))
                                }
                            }
                        }
                        Err(e) => {
                            summary.rejected += 1;
                            bump(&self.stats.rejected_malformed);
                            debug!(?remote, error = %e, "refused a malformed peer message");
                        }
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    if status.code() == Code::OutOfRange {
                        bump(&self.stats.rejected_oversized);
                        debug!(
                            ?remote,
                            message = status.message(),
                            "refused an oversized peer message"
                        );
                    } else {
                        debug!(?remote, %status, "peer stream broke");
                    }
                    return Err(status);
                }
            }
        }
        Ok(Response::new(summary))
    }
}
