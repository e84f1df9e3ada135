//! The cluster key over real sockets on 127.0.0.1: agents that share a key
//! (and label) form a cluster and replicate; an agent with another key,
//! another label or no key never joins them, and what it sends is counted
//! as `rejected_unauthenticated`; a raw plaintext peer client changes
//! nothing at a keyed agent; a keyring [new, old] opens what `old` sealed;
//! a captured sealed envelope sent again, or sent outside the replay
//! window, changes nothing and is counted.
//!
//! Waiting is done by polling a condition against a deadline derived from
//! the protocol's timings, never by sleeping a fixed time and hoping. That
//! something does *not* happen is checked once something that must happen
//! after it has (a put replicated across the keyed agents, refusals
//! counted), never after a sleep.

mod support;

use support::{eventually, send_raw};

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use prost::Message as _;
use rumour::core::{Config, MemberState};
use rumour::proto::v1 as pb;
use rumour::transport::{Agent, AgentConfig, ClusterKey, Keyring};

fn protocol() -> Config {
    Config::local()
}

fn key(byte: u8) -> ClusterKey {
    ClusterKey::from_bytes(&[byte; 32]).expect("32 bytes")
}

async fn start(name: &str, keyring: Option<Keyring>, join: Option<&Agent>) -> Agent {
    let mut config = AgentConfig::loopback(name, protocol());
    config.keyring = keyring;
    if let Some(seed) = join {
        config.join = vec![seed.peer_addr().to_string()];
    }
    Agent::start(config).await.expect("agent starts")
}

/// `n` agents with `keyring`, the first the seed of the others.
async fn cluster(prefix: &str, n: usize, keyring: &Keyring) -> Vec<Agent> {
    let seed = start(&format!("{prefix}-0"), Some(keyring.clone()), None).await;
    let mut agents = vec![seed];
    for i in 1..n {
        let a = start(
            &format!("{prefix}-{i}"),
            Some(keyring.clone()),
            Some(&agents[0]),
        )
        .await;
        agents.push(a);
    }
    agents
}

/// Time for every member to learn of a change: a few push-pull rounds.
fn convergence() -> Duration {
    protocol().push_pull_interval * 3
}

async fn names(agent: &Agent) -> Vec<String> {
    agent
        .handle()
        .members()
        .await
        .expect("members")
        .into_iter()
        .map(|(m, _)| m.id.name().to_string())
        .collect()
}

async fn live(agent: &Agent) -> usize {
    agent
        .handle()
        .status()
        .await
        .map(|s| s.live_members)
        .unwrap_or(0)
}

fn refused(agent: &Agent) -> u64 {
    agent
        .handle()
        .transport_stats()
        .rejected_unauthenticated
        .load(Relaxed)
}

/// Wait until every agent sees all of them alive.
async fn formed(agents: &[Agent]) {
    eventually("the keyed cluster forms", convergence(), || async {
        for a in agents {
            if live(a).await != agents.len() {
                return false;
            }
        }
        true
    })
    .await;
}

/// A put on the first agent reaches every other.
async fn replicates(agents: &[Agent], key: &str) {
    agents[0].handle().put("", key, b"sealed").await.unwrap();
    let owner = agents[0].name().to_string();
    eventually("the put reaches every agent", convergence(), || async {
        for a in &agents[1..] {
            match a.handle().get(&owner, key).await {
                Ok(r) if &*r.entry.value == b"sealed" => {}
                _ => return false,
            }
        }
        true
    })
    .await;
}

/// An envelope from `127.0.0.1:9` whose gossip says member `name` is alive
/// there.
fn announcing(name: &str) -> pb::Envelope {
    // A correctly signed announcement under a key of the sender's own: what
    // stops it at a keyed agent is the cluster key, nothing else.
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().expect("an address");
    let id = rumour::core::NodeId::new(name, addr).expect("a valid name");
    let news = rumour::core::Identity::from_seed(name.len() as u64).member_update(
        &id,
        rumour::core::Incarnation(1),
        rumour::core::MemberState::Alive,
        None,
    );
    let msg = rumour::core::Message::Gossip(rumour::core::Gossip {
        updates: vec![news],
    });
    rumour::proto::encode_envelope(addr, &msg)
}

/// The wall clock in Unix milliseconds, as a sealing agent stamps it.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64
}

/// `plain` sealed with `ring`'s primary key and this nonce, stamped now, by
/// hand: the wire form a keyed agent sends.
fn seal(ring: &Keyring, nonce: [u8; 24], plain: &pb::Envelope) -> pb::Envelope {
    seal_at(ring, nonce, unix_ms(), plain)
}

/// `plain` sealed with `ring`'s primary key and this nonce, stamped as sent
/// at `sent_unix_ms`.
fn seal_at(
    ring: &Keyring,
    nonce: [u8; 24],
    sent_unix_ms: u64,
    plain: &pb::Envelope,
) -> pb::Envelope {
    pb::Envelope {
        sealed: Some(pb::Sealed {
            nonce: nonce.to_vec(),
            ciphertext: ring.seal(&nonce, sent_unix_ms, &plain.encode_to_vec()),
            sent_unix_ms,
        }),
        ..Default::default()
    }
}

fn counter(agent: &Agent, name: &str) -> u64 {
    agent
        .handle()
        .transport_stats()
        .snapshot()
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .expect("a transport counter")
}

/// What an agent holds of its members: name and incarnation (a fake
/// member's state moves on by itself as probes of it fail; what an
/// announcement could change is whether it is held, and at which
/// incarnation).
async fn view(agent: &Agent) -> Vec<(String, u32)> {
    let mut v: Vec<_> = agent
        .handle()
        .members()
        .await
        .expect("members")
        .into_iter()
        .map(|(m, _)| (m.id.name().to_string(), m.incarnation.0))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_with_one_key_form_a_cluster_and_replicate_a_put() {
    let ring = Keyring::new(ClusterKey::generate().unwrap(), "");
    let agents = cluster("keyed", 3, &ring).await;
    formed(&agents).await;
    replicates(&agents, "k").await;
    for a in &agents {
        assert_eq!(
            refused(a),
            0,
            "{} refused a message of its own cluster",
            a.name()
        );
        let sent = a.handle().transport_stats().sent.load(Relaxed);
        assert!(sent > 0);
    }
    for a in agents {
        a.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_another_key_label_or_none_never_joins_and_is_counted() {
    let ring = Keyring::new(key(1), "production");
    let agents = cluster("inner", 2, &ring).await;
    formed(&agents).await;
    let outsiders = vec![
        ("other-key", Some(Keyring::new(key(2), "production"))),
        ("other-label", Some(Keyring::new(key(1), "staging"))),
        ("no-key", None),
    ];
    for (name, outsider_ring) in outsiders {
        let before = refused(&agents[0]);
        let outsider = start(name, outsider_ring.clone(), Some(&agents[0])).await;
        // The seed refuses its join attempts (retried with backoff)...
        eventually(
            &format!("the seed refuses {name}'s joins"),
            convergence(),
            || async { refused(&agents[0]) >= before + 2 },
        )
        .await;
        // ...and the keyed cluster goes on: a put made now replicates
        // through rounds that would have carried the outsider too.
        replicates(&agents, &format!("after-{name}")).await;
        for a in &agents {
            assert!(
                !names(a).await.contains(&name.to_string()),
                "{} let {name} in",
                a.name()
            );
            assert_eq!(live(a).await, 2, "{}", a.name());
        }
        assert_eq!(
            names(&outsider).await,
            vec![name.to_string()],
            "{name} learned of the keyed cluster"
        );
        assert!(
            outsider
                .handle()
                .get(agents[0].name(), &format!("after-{name}"))
                .await
                .is_err(),
            "{name} holds the cluster's data"
        );
        outsider.kill();
    }
    for a in agents {
        a.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_plaintext_peer_client_changes_nothing_at_a_keyed_agent() {
    let ring = Keyring::new(key(1), "");
    let keyed = start("keyed", Some(ring.clone()), None).await;
    let open = start("open", None, None).await;

    // Control: at an agent without a key, the same envelope adds a member.
    assert_eq!(send_raw(&open, vec![announcing("intruder")]).await, (1, 0));
    eventually(
        "the open agent takes the fake member",
        convergence(),
        || async { names(&open).await.contains(&"intruder".to_string()) },
    )
    .await;

    // At the keyed agent: plaintext, sealed with another key, sealed with
    // the right key but tampered with, and sealed with the right key but
    // another label are all refused before decoding, and counted.
    let mut tampered = seal(&ring, [7; 24], &announcing("intruder"));
    tampered.sealed.as_mut().unwrap().ciphertext[3] ^= 1;
    let refused_ones = vec![
        announcing("intruder"),
        seal(&Keyring::new(key(2), ""), [1; 24], &announcing("intruder")),
        tampered,
        seal(&Keyring::new(key(1), "x"), [2; 24], &announcing("intruder")),
    ];
    assert_eq!(send_raw(&keyed, refused_ones).await, (0, 4));
    assert_eq!(refused(&keyed), 4);
    // The same envelope sealed with the key goes through: the refusals
    // were for the seal, not the content. The node handles envelopes of a
    // stream in order, so once "welcome" is a member, "intruder" would be.
    let welcome = seal(&ring, [3; 24], &announcing("welcome"));
    assert_eq!(send_raw(&keyed, vec![welcome]).await, (1, 0));
    eventually(
        "the sealed announcement is taken",
        convergence(),
        || async { names(&keyed).await.contains(&"welcome".to_string()) },
    )
    .await;
    assert!(!names(&keyed).await.contains(&"intruder".to_string()));
    let status = keyed.handle().status().await.unwrap();
    let counter = status
        .counters
        .iter()
        .find(|(k, _)| k == "transport_rejected_unauthenticated")
        .expect("the counter is in the status");
    assert_eq!(counter.1, 4);
    assert_eq!(
        status
            .counters
            .iter()
            .find(|(k, _)| k == "transport_rejected_malformed")
            .unwrap()
            .1,
        0,
        "refused as unauthenticated, not decoded as malformed"
    );
    // The open agent refuses sealed envelopes: it has no key to open them.
    let before = refused(&open);
    let sealed = seal(&ring, [4; 24], &announcing("sealed-at-open"));
    assert_eq!(send_raw(&open, vec![sealed]).await, (0, 1));
    assert_eq!(refused(&open), before + 1);
    keyed.kill();
    open.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyring_new_old_opens_what_old_sealed() {
    let (old, new) = (key(10), key(20));
    let mut rotated = Keyring::new(new.clone(), "");
    rotated.install(old.clone());
    let agent = start("rotated", Some(rotated), None).await;

    // A raw envelope sealed with the old key opens.
    let by_old = seal(
        &Keyring::new(old.clone(), ""),
        [5; 24],
        &announcing("old-peer"),
    );
    assert_eq!(send_raw(&agent, vec![by_old]).await, (1, 0));
    eventually("the old key's envelope is taken", convergence(), || async {
        names(&agent).await.contains(&"old-peer".to_string())
    })
    .await;
    assert_eq!(refused(&agent), 0);

    // Mid-rotation, agents sealing with different primaries still form a
    // cluster: one has [old, new], the other [new, old].
    let mut midway = Keyring::new(old, "");
    midway.install(new);
    let lagging = start("lagging", Some(midway), Some(&agent)).await;
    let both = [agent, lagging];
    eventually("the rotating pair forms", convergence(), || async {
        for a in &both {
            let Ok(ms) = a.handle().members().await else {
                return false;
            };
            let alive = ms
                .iter()
                .filter(|(m, _)| {
                    m.state == MemberState::Alive
                        && (m.id.name() == "rotated" || m.id.name() == "lagging")
                })
                .count();
            if alive != 2 {
                return false;
            }
        }
        true
    })
    .await;
    both[1].handle().put("", "r", b"sealed").await.unwrap();
    eventually("a put crosses the rotation", convergence(), || async {
        both[0].handle().get("lagging", "r").await.is_ok()
    })
    .await;
    assert_eq!(refused(&both[0]), 0);
    assert_eq!(refused(&both[1]), 0);
    for a in both {
        a.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_sealed_envelope_changes_nothing_and_is_counted() {
    // Scenario: a sender with the key (here, the test) seals a gossip that
    // announces member "captured"; an eavesdropper records the bytes. The
    // agent takes the genuine delivery once. The same bytes sent again, on
    // the same stream or a new one, are refused as replayed and counted,
    // and the agent's view stays as it was. An envelope sealed with the key
    // but stamped more than the replay window ago is refused as stale.
    let ring = Keyring::new(key(1), "");
    let agent = start("replayed", Some(ring.clone()), None).await;
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(&[0x5a; 16]);
    let captured = seal(&ring, nonce, &announcing("captured"));

    assert_eq!(send_raw(&agent, vec![captured.clone()]).await, (1, 0));
    eventually("the genuine delivery is taken", convergence(), || async {
        names(&agent).await.contains(&"captured".to_string())
    })
    .await;
    let before = view(&agent).await;
    let received = counter(&agent, "received");

    // Replayed twice on one stream, then on a stream of its own.
    assert_eq!(
        send_raw(&agent, vec![captured.clone(), captured.clone()]).await,
        (0, 2)
    );
    assert_eq!(send_raw(&agent, vec![captured]).await, (0, 1));
    assert_eq!(counter(&agent, "rejected_replayed"), 3);
    assert_eq!(counter(&agent, "received"), received, "nothing taken");
    assert_eq!(counter(&agent, "rejected_unauthenticated"), 0, "it opened");

    // Stamped a window and a second ago, with a nonce never seen: stale.
    let old = unix_ms() - rumour::transport::REPLAY_WINDOW.as_millis() as u64 - 1_000;
    nonce[23] = 1;
    let stale = seal_at(&ring, nonce, old, &announcing("stale"));
    assert_eq!(send_raw(&agent, vec![stale]).await, (0, 1));
    assert_eq!(counter(&agent, "rejected_stale"), 1);

    // The next envelope of the same sender life goes through: the refusals
    // were for the replay, not the sender. Once "after" is a member, the
    // node handled everything sent before it.
    nonce[23] = 2;
    let next = seal(&ring, nonce, &announcing("after"));
    assert_eq!(send_raw(&agent, vec![next]).await, (1, 0));
    eventually("the next envelope is taken", convergence(), || async {
        names(&agent).await.contains(&"after".to_string())
    })
    .await;
    let after: Vec<_> = view(&agent)
        .await
        .into_iter()
        .filter(|(n, ..)| n != "after")
        .collect();
    assert_eq!(after, before, "the replays changed the view");
    assert!(!names(&agent).await.contains(&"stale".to_string()));
    let status = agent.handle().status().await.unwrap();
    for (name, want) in [
        ("transport_rejected_replayed", 3),
        ("transport_rejected_stale", 1),
    ] {
        let got = status.counters.iter().find(|(k, _)| k == name);
        assert_eq!(got.map(|(_, v)| *v), Some(want), "{name} in the status");
    }
    agent.kill();
}
