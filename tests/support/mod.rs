//! Helpers shared by the integration tests: how many proptest cases to run
//! and which seed to use, both read from the environment, and the line that
//! tells how to replay a failed seeded test.
//!
//! Every file under `tests/` is a crate of its own and uses only some of
//! these, so each helper allows `dead_code`.

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use proptest::prelude::ProptestConfig;

/// Proptest cases per property when `PROPTEST_CASES` does not say: sized for CI.
const DEFAULT_CASES: u32 = 12;

/// The seed of a seeded test when `RUMOUR_SEED` does not say.
const DEFAULT_SEED: u64 = 1;

/// The number of cases per property: `PROPTEST_CASES`, or 12.
#[allow(dead_code)]
pub fn cases() -> u32 {
    from_env("PROPTEST_CASES", DEFAULT_CASES)
}

/// The configuration of the property suites: [`cases`] cases, and no
/// failure persistence file (a failure prints its own replay).
#[allow(dead_code)]
pub fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The seed of every seeded test, 1 unless `RUMOUR_SEED` says otherwise: set
/// it to run the same tests over another seed, or to replay a failure.
#[allow(dead_code)]
pub fn seed() -> u64 {
    from_env("RUMOUR_SEED", DEFAULT_SEED)
}

/// The command that replays the running test of the test file `target`
/// (its name under `tests/`, without `.rs`) with this [`seed`], as
/// `replay: RUMOUR_SEED=… cargo test --test TARGET -- --exact TEST`.
#[allow(dead_code)]
pub fn replay_line(target: &str) -> String {
    let test = std::thread::current().name().unwrap_or("").to_owned();
    format!(
        "replay: RUMOUR_SEED={} cargo test --test {target} -- --exact {test}",
        seed()
    )
}

/// The variable `name` parsed, or `default` if it is unset or does not parse.
fn from_env<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Poll `check` every 20 ms until it holds or `within` passes (for tests
/// over real sockets, which wait on a condition, never on a fixed sleep).
#[allow(dead_code)]
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: not true within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Send `envelopes` on one raw peer stream to `agent`, as a client outside
/// the cluster would; the stream's summary (received, rejected).
#[allow(dead_code)]
pub async fn send_raw(
    agent: &rumour::transport::Agent,
    envelopes: Vec<rumour::proto::v1::Envelope>,
) -> (u64, u64) {
    use rumour::proto::v1::peer_client::PeerClient;
    let mut peer = PeerClient::connect(format!("http://{}", agent.peer_addr()))
        .await
        .expect("peer client connects");
    let s = peer
        .stream(tokio_stream::iter(envelopes))
        .await
        .expect("the stream is served")
        .into_inner();
    (s.received, s.rejected)
}

/// A counter of an agent's node as `rumour status` shows it (0 if absent).
#[allow(dead_code)]
pub async fn status_counter(agent: &rumour::transport::Agent, name: &str) -> u64 {
    let status = agent.handle().status().await.expect("status");
    status
        .counters
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| *v)
}

/// A peer port of someone outside the cluster, listening on 127.0.0.1: it
/// takes every stream an agent opens to it and counts the encoded bytes
/// of the envelopes that arrive (the measure of the agents' `bytes_sent`).
#[allow(dead_code)]
pub struct Outsider {
    /// Where it listens: the sender address its envelopes name.
    pub addr: std::net::SocketAddr,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

#[allow(dead_code)]
impl Outsider {
    /// Bind 127.0.0.1:0 and serve.
    pub async fn listen() -> Outsider {
        use rumour::proto::v1::peer_server::PeerServer;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds loopback");
        let addr = listener.local_addr().expect("bound");
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let service = PeerServer::new(Counting(bytes.clone()));
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Outsider {
            addr,
            bytes,
            server,
        }
    }

    /// The encoded bytes of every envelope that arrived so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `from`, as an envelope's sender address.
    pub fn address(&self) -> rumour::proto::v1::Address {
        rumour::proto::v1::Address {
            ip: vec![127, 0, 0, 1],
            port: u32::from(self.addr.port()),
        }
    }
}

impl Drop for Outsider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Counting(std::sync::Arc<std::sync::atomic::AtomicU64>);

#[tonic::async_trait]
impl rumour::proto::v1::peer_server::Peer for Counting {
    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<rumour::proto::v1::Envelope>>,
    ) -> Result<tonic::Response<rumour::proto::v1::StreamSummary>, tonic::Status> {
        use prost::Message as _;
        let mut stream = request.into_inner();
        while let Some(env) = stream.message().await? {
            self.0.fetch_add(
                env.encoded_len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        Ok(tonic::Response::new(Default::default()))
    }
}
