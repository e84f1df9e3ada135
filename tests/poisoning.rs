//! Poisoning over real sockets on 127.0.0.1, the probe of the keyring issue:
//! three agents without a cluster key, and a raw peer client that announces
//! 2,000 fake members (each correctly signed under a key of its own) in 20
//! gossip envelopes to each agent. Without a key nothing stops a
//! self-signed announcement; what bounds it is the introduction cap: each
//! agent takes at most `max_introductions` new members from one host per
//! reap delay, and refuses and counts the rest (`introductions_capped`).
//! (With a key an outsider adds nothing at all: see
//! `a_raw_plaintext_peer_client_changes_nothing_at_a_keyed_agent` in
//! tests/cluster_key.rs.) That fakes are declared dead and reaped for good
//! is shown in the core, where time is simulated:
//! `a_stranger_adds_at_most_the_cap_and_its_fakes_are_reaped_for_good`.
//!
//! Waiting is done by polling a condition against a deadline, never by
//! sleeping a fixed time.

mod support;

use support::{eventually, send_raw, status_counter};

use std::time::Duration;

use rumour::core::{Config, Gossip, Identity, Incarnation, MemberState, Message, NodeId};
use rumour::proto::v1 as pb;
use rumour::transport::{Agent, AgentConfig};

/// The cap under test: small, so that the refusals are most of the attack.
const CAP: u32 = 100;
const FAKES: u16 = 2_000;

fn protocol() -> Config {
    Config {
        max_introductions: CAP,
        ..Config::local()
    }
}

async fn start(name: &str, join: Option<&Agent>) -> Agent {
    let mut config = AgentConfig::loopback(name, protocol());
    if let Some(seed) = join {
        config.join = vec![seed.peer_addr().to_string()];
    }
    Agent::start(config).await.expect("agent starts")
}

/// 20 envelopes from `127.0.0.1:9`, each announcing 100 fake members alive
/// at loopback ports where nothing listens.
fn announcements() -> Vec<pb::Envelope> {
    let from: std::net::SocketAddr = "127.0.0.1:9".parse().expect("an address");
    let fakes: Vec<_> = (0..FAKES)
        .map(|i| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 40_000 + i));
            let id = NodeId::new(&format!("fake-{i}"), addr).expect("a valid name");
            Identity::from_seed(10_000 + i as u64).member_update(
                &id,
                Incarnation(0),
                MemberState::Alive,
                None,
            )
        })
        .collect();
    fakes
        .chunks(100)
        .map(|chunk| {
            let msg = Message::Gossip(Gossip {
                updates: chunk.to_vec(),
            });
            rumour::proto::encode_envelope(from, &msg)
        })
        .collect()
}

async fn fakes_held(agent: &Agent) -> usize {
    let members = agent.handle().members().await.expect("members");
    members
        .iter()
        .filter(|(m, _)| m.id.name().starts_with("fake-"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_agent_takes_at_most_the_cap_of_fake_members_from_one_host() {
    let seed = start("p-0", None).await;
    let agents = vec![
        start("p-1", Some(&seed)).await,
        start("p-2", Some(&seed)).await,
        seed,
    ];
    eventually(
        "the cluster forms",
        protocol().push_pull_interval * 3,
        || async {
            for a in &agents {
                match a.handle().status().await {
                    Ok(s) if s.live_members == agents.len() => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;

    for a in &agents {
        assert_eq!(send_raw(a, announcements()).await, (20, 0));
    }
    // Every announcement is either taken or refused and counted; once the
    // counts add up, every envelope has been handled.
    for a in &agents {
        eventually(
            "every announcement handled",
            Duration::from_secs(20),
            || async {
                let capped = status_counter(a, "introductions_capped").await;
                let taken = fakes_held(a).await as u64;
                // A fake may already be reaped only after a reap delay, far
                // beyond this wait, so held + capped covers all.
                capped + taken >= FAKES as u64
            },
        )
        .await;
    }
    // Every fake held anywhere came in through one agent's capped intake
    // from this host (the attacker and the other agents share it here; an
    // answer to an agent's own push-pull may then carry another agent's
    // fakes), so the cluster holds at most three caps' worth.
    let mut all = std::collections::BTreeSet::new();
    for a in &agents {
        let members = a.handle().members().await.expect("members");
        all.extend(
            members
                .iter()
                .map(|(m, _)| m.id.name().to_string())
                .filter(|n| n.starts_with("fake-")),
        );
    }
    let bound = agents.len() * CAP as usize;
    assert!(
        !all.is_empty() && all.len() <= bound,
        "{} fakes held in all (bound {bound})",
        all.len()
    );
    for a in &agents {
        let capped = status_counter(a, "introductions_capped").await;
        assert!(
            capped >= (FAKES as usize - bound) as u64,
            "{} refused {capped}",
            a.name()
        );
    }
    for a in agents {
        a.kill();
    }
}
