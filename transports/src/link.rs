//! Outgoing messages: one link per peer (and, on the UDP transport, one
//! datagram per message that fits; see the `datagram` module).
//!
//! A link is a task holding one tonic channel to the peer and one
//! long-lived client stream of envelopes on it, fed from a bounded queue.
//! A full queue drops the newest envelope (counted); a connection that
//! fails is retried with exponential backoff, with the newest envelope that
//! queued meanwhile (older ones are stale); a stream that stalls past the
//! send timeout is dropped and reopened; a link idle for `idle_close` ends.
//!
//! A link is dropped ([`Links::drop_link`]) as soon as the node suspects
//! its member, or holds it dead or left, so that what goes to the member
//! next opens a fresh connection. Without that, a connection cut by a
//! partition stayed ESTABLISHED for minutes: what was written to it fitted
//! in the socket buffer, so the send timeout never fired, and after the
//! heal the stream waited on TCP's retransmission backoff. HTTP/2
//! keepalive pings (`keepalive_interval`) can be turned on as well; they
//! are off by default, since they cost every connection a ping each way
//! per interval.
//! With peer TLS, every link dials `https://ADDR` presenting the node's
//! certificate and checking the peer's against the cluster's CA and the
//! fixed peer name (see `tls.rs`); a failed handshake counts as a failed
//! connection and backs off like one.
//! Without a cluster key or peer TLS, what goes to an address not
//! authenticated is held to its reply budget (see `reply_budget`): a send
//! that would give it more bytes than it sent is dropped, counted as
//! `replies_over_budget`, and logged at most once per address per 10 s.
//! Gossip tolerates loss by design: anti-entropy repairs what a dropped
//! envelope carried.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use rumour_core::Message;
use rumour_proto::v1::peer_client::PeerClient;
use rumour_proto::v1::Envelope;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{ClientTlsConfig, Endpoint};
use tracing::{debug, warn};

use crate::config::TransportConfig;
use crate::datagram::Datagrams;
use crate::keyring::Sealer;
use crate::peer::RefusalLog;
use crate::reply_budget::ReplyBudget;
use crate::stats::{add, bump, TransportStats};

/// Every peer link of one node.
pub(crate) struct Links {
    me: SocketAddr,
    config: Arc<TransportConfig>,
    stats: Arc<TransportStats>,
    /// With a cluster key: seals every envelope before it is queued.
    sealer: Option<Sealer>,
    /// With peer TLS: how every link dials (https, the CA, the node's own
    /// certificate).
    tls: Option<ClientTlsConfig>,
    /// Without a key or peer TLS: what addresses not authenticated may
    /// still be sent.
    budget: Option<Arc<ReplyBudget>>,
    /// Addresses whose sends over budget were last logged.
    over_budget: RefusalLog,
    queues: HashMap<SocketAddr, mpsc::Sender<Envelope>>,
    tasks: JoinSet<()>,
    /// On the UDP transport: the socket what fits in a datagram leaves by.
    datagrams: Option<Datagrams>,
}

impl Links {
    pub(crate) fn new(
        me: SocketAddr,
        config: Arc<TransportConfig>,
        stats: Arc<TransportStats>,
        sealer: Option<Sealer>,
    ) -> Links {
        Links {
            me,
            config,
            stats,
            sealer,
            tls: None,
            budget: None,
            over_budget: RefusalLog::new(std::time::Duration::from_secs(10), 4096),
            queues: HashMap::new(),
            tasks: JoinSet::new(),
            datagrams: None,
        }
    }

    /// Send what [`Message::rides_datagrams`] in one datagram each, when it fits.
    pub(crate) fn with_datagrams(self, datagrams: Option<Datagrams>) -> Links {
        Links { datagrams, ..self }
    }

    /// Dial every peer over TLS with `tls` (mutual TLS on the peer port).
    pub(crate) fn with_tls(self, tls: Option<ClientTlsConfig>) -> Links {
        Links { tls, ..self }
    }

    /// Hold what goes to addresses not authenticated to `budget`.
    pub(crate) fn with_reply_budget(self, budget: Option<Arc<ReplyBudget>>) -> Links {
        Links { budget, ..self }
    }

    /// The reply budget, if sends are held to one.
    pub(crate) fn reply_budget(&self) -> Option<&ReplyBudget> {
        self.budget.as_deref()
    }

    /// Send `msg` to the peer at `to`: in a datagram if the node has
    /// them and `msg` goes by datagram and fits, else queued on its link
    /// (opened if there is none). Held to the reply budget either way.
    pub(crate) fn send(&mut self, to: SocketAddr, msg: &Message) {
        if let Some(bare) = self.bare_datagram(msg) {
            if self.within_budget(to, &bare, msg.kind()) {
                if let Some(datagrams) = &self.datagrams {
                    datagrams.send(to, &bare);
                }
            }
            return;
        }
        let env = rumour_proto::encode_envelope(self.me, msg);
        if !self.within_budget(to, &env, msg.kind()) {
            return;
        }
        let env = self.seal(env);
        if let Some(datagrams) = &self.datagrams {
            if msg.rides_datagrams() && datagrams.send(to, &env) {
                return;
            }
        }
        self.queue(to, env);
    }

    /// `msg` in a plain envelope without its sender, if it goes by datagram
    /// from the node's own address and fits one: the source names the
    /// sender (see `Datagrams::leaves_from`), and the reply budget is
    /// charged with what goes.
    fn bare_datagram(&self, msg: &Message) -> Option<Envelope> {
        let datagrams = self.datagrams.as_ref()?;
        if self.sealer.is_some() || !msg.rides_datagrams() || !datagrams.leaves_from(self.me) {
            return None;
        }
        Some(rumour_proto::datagram_envelope(msg)).filter(|env| datagrams.fits(env))
    }

    /// Queue a plain envelope (sealed here, with a cluster key) for the
    /// peer at `to`, opening a link if there is none.
    pub(crate) fn send_envelope(&mut self, to: SocketAddr, env: Envelope) {
        if !self.within_budget(to, &env, "cluster-request") {
            return;
        }
        let env = self.seal(env);
        self.queue(to, env);
    }

    /// Whether `env` may go to `to` under the reply budget (always, with
    /// none); a send over it is counted, and logged once per address in a
    /// while.
    fn within_budget(&mut self, to: SocketAddr, env: &Envelope, kind: &str) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        let bytes = env.encoded_len() as u64;
        let now = Instant::now();
        if budget.spend(to, bytes, now) {
            return true;
        }
        bump(&self.stats.replies_over_budget);
        if self.over_budget.should_log(to.ip(), now) {
            warn!(peer = %to, kind, bytes, "dropped a message to an address that is not a member: it would have received more bytes than it sent (counted in replies_over_budget; logged once per address every 10 s)");
        }
        false
    }

    /// `env` sealed with the cluster key, if the node has one.
    fn seal(&mut self, env: Envelope) -> Envelope {
        match &mut self.sealer {
            Some(sealer) => sealer.seal(&env),
            None => env,
        }
    }

    /// Queue an envelope, sealed already, on the link to `to`.
    fn queue(&mut self, to: SocketAddr, env: Envelope) {
        let queue = match self.queues.get(&to) {
            Some(q) if !q.is_closed() => q,
            _ => {
                let (tx, rx) = mpsc::channel(self.config.peer_queue.max(1));
                self.tasks.spawn(link(
                    to,
                    rx,
                    self.config.clone(),
                    self.stats.clone(),
                    self.tls.clone(),
                ));
                self.queues.insert(to, tx);
                &self.queues[&to]
            }
        };
        match queue.try_send(env) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => bump(&self.stats.send_queue_full),
            Err(TrySendError::Closed(_)) => bump(&self.stats.send_failed),
        }
    }

    /// Drop the link to `to`, if any: its task sends what it holds and
    /// ends, and the next message to `to` opens a fresh connection. For a
    /// member the node just suspected, or holds dead or left: the old
    /// connection may be cut off.
    pub(crate) fn drop_link(&mut self, to: SocketAddr) {
        self.queues.remove(&to);
    }

    /// Forget links whose task ended.
    pub(crate) fn reap(&mut self) {
        let mut ended = false;
        while self.tasks.try_join_next().is_some() {
            ended = true;
        }
        if ended {
            self.queues.retain(|_, q| !q.is_closed());
        }
    }

    /// Close every queue and hand back the tasks, which send what they hold
    /// and end.
    pub(crate) fn close(mut self) -> (JoinSet<()>, std::time::Duration) {
        self.queues.clear();
        (std::mem::take(&mut self.tasks), self.config.send_timeout)
    }
}

/// One peer's link task.
async fn link(
    to: SocketAddr,
    mut queue: mpsc::Receiver<Envelope>,
    config: Arc<TransportConfig>,
    stats: Arc<TransportStats>,
    tls: Option<ClientTlsConfig>,
) {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{to}")).and_then(|e| match tls {
        Some(tls) => e.tls_config(tls),
        None => Ok(e),
    });
    let endpoint = match endpoint {
        Ok(e) => {
            let e = e.connect_timeout(config.connect_timeout).tcp_nodelay(true);
            match config.keepalive_interval {
                Some(every) => e
                    .http2_keep_alive_interval(every)
                    .keep_alive_timeout(config.keepalive_timeout)
                    .keep_alive_while_idle(true),
                None => e,
            }
        }
        Err(e) => {
            warn!(peer = %to, %e, "cannot address peer");
            return;
        }
    };
    let mut backoff = config.backoff_min;
    let mut failures = 0u32;
    // The newest envelope that queued while the last attempt backed off.
    let mut retry: Option<Envelope> = None;
    loop {
        // Connect only when there is something to send.
        let first = match retry.take() {
            Some(env) => env,
            None => match tokio::time::timeout(config.idle_close, queue.recv()).await {
                Ok(Some(env)) => env,
                Ok(None) | Err(_) => return,
            },
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => {
                bump(&stats.connect_failures);
                bump(&stats.send_failed);
                failures += 1;
                if failures == 1 {
                    warn!(peer = %to, error = %causes(&e), "cannot connect to peer; retrying with backoff");
                } else {
                    debug!(peer = %to, error = %causes(&e), failures, "cannot connect to peer");
                }
                // What queued meanwhile is stale by the time we reconnect,
                // but for the newest envelope, which the next attempt
                // carries: a knock on a member that just came back must
                // not wait for the message after it.
                tokio::time::sleep(backoff).await;
                while let Ok(env) = queue.try_recv() {
                    if retry.replace(env).is_some() {
                        bump(&stats.send_failed);
                    }
                }
                backoff = (backoff * 2).min(config.backoff_max);
                continue;
            }
        };
        if failures > 0 {
            debug!(peer = %to, failures, "connected to peer");
        }
        failures = 0;
        backoff = config.backoff_min;
        bump(&stats.connects);
        let (tx, rx) = mpsc::channel::<Envelope>(64);
        let mut client = PeerClient::new(channel).max_encoding_message_size(usize::MAX);
        let mut call = Box::pin(async move { client.stream(ReceiverStream::new(rx)).await });
        let mut next = Some(first);
        loop {
            let env = match next.take() {
                Some(env) => env,
                None => {
                    tokio::select! {
                        biased;
                        res = &mut call => {
                            // The peer ended the stream: it stopped or refused us.
                            debug!(peer = %to, ?res, "peer stream ended");
                            break;
                        }
                        msg = tokio::time::timeout(config.idle_close, queue.recv()) => match msg {
                            Ok(Some(env)) => env,
                            Ok(None) | Err(_) => {
                                // Closed or idle: finish the stream politely.
                                drop(tx);
                                let _ = tokio::time::timeout(config.send_timeout, call).await;
                                return;
                            }
                        },
                    }
                }
            };
            let len = env.encoded_len() as u64;
            match tokio::time::timeout(config.send_timeout, tx.send(env)).await {
                Ok(Ok(())) => {
                    bump(&stats.sent);
                    add(&stats.bytes_sent, len);
                }
                _ => {
                    bump(&stats.send_failed);
                    debug!(peer = %to, "peer stream stalled or closed; reopening");
                    break;
                }
            }
        }
    }
}

/// An error with its causes, `outer: inner: root`: tonic's own text says
/// only "transport error", while the cause says what failed (refused, a
/// peer certificate another CA signed, a name that does not match).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        next = cause.source();
    }
    text
}
