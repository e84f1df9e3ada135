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
