//! Reflection over real sockets on 127.0.0.1: at an agent without a
//! cluster key, nothing vouches for the sender address written in an
//! envelope, and replies go there. An envelope naming another host than
//! its connection's is refused before the node sees it (counted as
//! `rejected_address_mismatch`), so it makes the agent send nothing to the
//! named host; one naming another loopback address is the same host and
//! is answered.

mod support;

use support::{eventually, send_raw};

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rumour::core::Config;
use rumour::proto::v1 as pb;
use rumour::proto::v1::envelope::Body;
use rumour::transport::{Agent, AgentConfig};

/// A probe of `target` that says its sender listens at `ip:9`.
fn ping_from(ip: [u8; 4], target: &str) -> pb::Envelope {
    pb::Envelope {
        from: Some(pb::Address {
            ip: ip.to_vec(),
            port: 9,
        }),
        body: Some(Body::Ping(pb::Ping {
            seq: 1,
            target: target.into(),
            ..Default::default()
        })),
        sealed: None,
    }
}

/// What the agent tried to send: envelopes sent, failed, and connection
/// attempts.
fn attempts(agent: &Agent) -> u64 {
    let handle = agent.handle();
    let s = handle.transport_stats();
    s.sent.load(Relaxed) + s.send_failed.load(Relaxed) + s.connects.load(Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_agent_refuses_a_sender_address_on_another_host() {
    // Scenario: a lone agent without a key. A raw client on 127.0.0.1
    // probes it, claiming to listen at 10.9.9.9:9: refused and counted,
    // and the agent sends nothing anywhere. The same probe claiming
    // 127.0.0.2:9 (loopback: the same host) is answered, so the refusal
    // was for the address, not the probe.
    let agent = Agent::start(AgentConfig::loopback("lone", Config::local()))
        .await
        .expect("agent starts");
    let handle = agent.handle();
    let stats = handle.transport_stats();

    let spoofed = vec![ping_from([10, 9, 9, 9], "lone"); 50];
    assert_eq!(send_raw(&agent, spoofed).await, (0, 50));
    assert_eq!(stats.rejected_address_mismatch.load(Relaxed), 50);
    assert_eq!(stats.received.load(Relaxed), 0, "the node saw none of them");
    assert_eq!(attempts(&agent), 0, "nothing was reflected");

    assert_eq!(
        send_raw(&agent, vec![ping_from([127, 0, 0, 2], "lone")]).await,
        (1, 0)
    );
    eventually(
        "the agent answers the loopback probe",
        Duration::from_secs(10),
        || async { attempts(&agent) > 0 },
    )
    .await;
    assert_eq!(stats.rejected_address_mismatch.load(Relaxed), 50);
    let status = agent.handle().status().await.expect("status");
    let counter = status
        .counters
        .iter()
        .find(|(k, _)| k == "transport_rejected_address_mismatch")
        .map(|(_, v)| *v);
    assert_eq!(counter, Some(50), "in the status");
    agent.kill();
}
