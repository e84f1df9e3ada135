//! The cluster keyring rotated live, over real sockets on 127.0.0.1: key
//! commands reach every live member, a rotation (install, use, remove)
//! under writes loses no put and suspects no one, a restarted agent keeps
//! the keys it was told about, and bad commands change nothing anywhere.
//!
//! Waiting is done by polling a condition against a deadline, never by
//! sleeping; that something did *not* happen (a suspicion, a join with a
//! removed key) is checked once something that must come after it has.

mod support;

use support::eventually;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rumour::core::{Config, Event};
use rumour::proto::v1 as pb;
use rumour::proto::v1::peer_client::PeerClient;
use rumour::proto::v1::rumour_client::RumourClient;
use rumour::transport::{Agent, AgentConfig, ClusterKey, KeyOp, KeyReport, Keyring};
use tonic::Code;

fn key(byte: u8) -> ClusterKey {
    ClusterKey::from_bytes(&[byte; 32]).expect("32 bytes")
}

/// A directory of this test's own under the system temp dir, removed when
/// the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("rumour-keys-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Start agent `name` with `keys` (the first the primary; none: no key),
/// keeping its data in `dir` if given, joining through `seed` if given.
async fn start(name: &str, keys: &[ClusterKey], dir: Option<&Path>, seed: Option<&Agent>) -> Agent {
    let mut config = AgentConfig::loopback(name, Config::local());
    config.keyring = keys.split_first().map(|(primary, rest)| {
        let mut ring = Keyring::new(primary.clone(), "");
        for k in rest {
            ring.install(k.clone());
        }
        ring
    });
    config.data_dir = dir.map(|d| d.join(name));
    if let Some(seed) = seed {
        config.join = vec![seed.peer_addr().to_string()];
    }
    Agent::start(config).await.expect("agent starts")
}

/// `n` agents named `prefix-i` with `keys`, the first the seed of the others.
async fn cluster(prefix: &str, n: usize, keys: &[ClusterKey], dir: Option<&Path>) -> Vec<Agent> {
    let mut agents = vec![start(&format!("{prefix}-0"), keys, dir, None).await];
    for i in 1..n {
        let a = start(&format!("{prefix}-{i}"), keys, dir, Some(&agents[0])).await;
        agents.push(a);
    }
    agents
}

async fn live(agent: &Agent) -> usize {
    agent
        .handle()
        .status()
        .await
        .map(|s| s.live_members)
        .unwrap_or(0)
}

/// Wait until each of `agents` sees `n` live members.
async fn formed(agents: &[&Agent], n: usize) {
    eventually("the cluster forms", Duration::from_secs(10), || async {
        for a in agents {
            if live(a).await != n {
                return false;
            }
        }
        true
    })
    .await;
}

async fn counter(agent: &Agent, name: &str) -> u64 {
    let s = agent.handle().status().await.expect("status");
    s.counters
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| *v)
}

/// A key command through `agent`, which must reach every member and be
/// done by all; returns the report, checked to have come well before the
/// 5 s timeout.
async fn everywhere(agent: &Agent, op: KeyOp, k: &ClusterKey) -> KeyReport {
    let started = Instant::now();
    let report = agent
        .handle()
        .keys(op, &k.to_base64(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{op:?}: {e}"));
    assert!(report.all_done(), "{op:?}: {report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{op:?} waited {:?}: it must return once all answered",
        started.elapsed()
    );
    report
}

/// (fingerprint, members holding it, members using it as primary), most
/// used first.
fn counts(report: &KeyReport) -> Vec<(String, usize, usize)> {
    report
        .counts()
        .into_iter()
        .map(|c| (c.fingerprint, c.members, c.primary))
        .collect()
}

/// Count every suspicion and death any of `agents` sees from now on.
fn watch_suspicions(agents: &[Agent]) -> Arc<AtomicU64> {
    let seen = Arc::new(AtomicU64::new(0));
    for a in agents {
        let mut events = a.handle().subscribe();
        let seen = seen.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(e) => {
                        if matches!(e.event, Event::MemberSuspected(_) | Event::MemberDied(_)) {
                            seen.fetch_add(1, Relaxed);
                        }
                    }
                    // Missed events might have been suspicions: count them.
                    Err(RecvError::Lagged(_)) => {
                        seen.fetch_add(1_000_000, Relaxed);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_rotation_loses_no_put_suspects_no_one_and_survives_a_restart() {
    // Scenario: five agents share key `old`, each keeping a data dir. While
    // two of them write without pause, the operator installs `new`, makes
    // it primary and removes `old`, each step through a different agent.
    let scratch = Scratch::new("rotation");
    let dir = Some(scratch.0.as_path());
    let (old, new) = (key(1), key(2));
    let agents = cluster("r", 5, std::slice::from_ref(&old), dir).await;
    formed(&agents.iter().collect::<Vec<_>>(), 5).await;
    let suspicions = watch_suspicions(&agents);
    let mut incarnations = Vec::new();
    let mut refutations = Vec::new();
    for a in &agents {
        incarnations.push(a.handle().status().await.unwrap().me.incarnation);
        refutations.push(counter(a, "refutations").await);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in [0, 3] {
        let (handle, stop) = (agents[w].handle(), stop.clone());
        let owner = agents[w].name().to_string();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u64;
            while !stop.load(Relaxed) {
                let k = format!("k{i}");
                if handle.put("", &k, k.as_bytes()).await.is_ok() {
                    acked.push(k);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (owner, acked)
        }));
    }

    let (o, n) = (old.fingerprint(), new.fingerprint());
    let r = agents[4]
        .handle()
        .keys(KeyOp::List, "", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(counts(&r), vec![(o.clone(), 5, 5)]);
    let r = everywhere(&agents[1], KeyOp::Install, &new).await;
    assert_eq!(counts(&r), vec![(o.clone(), 5, 5), (n.clone(), 5, 0)]);
    let r = everywhere(&agents[2], KeyOp::Use, &new).await;
    assert_eq!(counts(&r), vec![(n.clone(), 5, 5), (o.clone(), 5, 0)]);
    let r = everywhere(&agents[3], KeyOp::Remove, &old).await;
    assert_eq!(counts(&r), vec![(n.clone(), 5, 5)]);
    // Writes go on under the new key alone for a moment.
    let marks = agents[0].handle().status().await.unwrap().version;
    eventually(
        "writes go on after the rotation",
        Duration::from_secs(5),
        || async { agents[0].handle().status().await.unwrap().version > marks + 20 },
    )
    .await;
    stop.store(true, Relaxed);

    let mut written = Vec::new();
    for w in writers {
        written.push(w.await.unwrap());
    }
    assert!(
        written.iter().all(|(_, acked)| acked.len() > 20),
        "writes ran"
    );
    eventually(
        "every acknowledged put is at every replica",
        Duration::from_secs(15),
        || async {
            for (owner, acked) in &written {
                for a in &agents {
                    let (_, entries) = match a.handle().list(owner, "").await {
                        Ok(l) => l,
                        Err(_) => return false,
                    };
                    if entries.len() < acked.len() {
                        return false;
                    }
                }
            }
            true
        },
    )
    .await;
    for (owner, acked) in &written {
        let (_, entries) = agents[1].handle().list(owner, "").await.unwrap();
        for k in acked {
            assert!(entries.iter().any(|e| *e.key == **k), "{owner}/{k} lost");
        }
    }
    assert_eq!(suspicions.load(Relaxed), 0, "a member was suspected");
    for (i, a) in agents.iter().enumerate() {
        let refuted = counter(a, "refutations").await - refutations[i];
        assert_eq!(refuted, 0, "{} refuted a suspicion", a.name());
        let s = a.handle().status().await.unwrap();
        assert_eq!(s.me.incarnation, incarnations[i], "{}", a.name());
        assert_eq!(s.live_members, 5, "{}", a.name());
    }

    // An agent restarted on its data dir with only the new key rejoins.
    let mut agents = agents;
    let gone = agents.pop().unwrap();
    gone.shutdown().await;
    let back = start("r-4", std::slice::from_ref(&new), dir, Some(&agents[0])).await;
    agents.push(back);
    formed(&agents.iter().collect::<Vec<_>>(), 5).await;

    // One restarted with a stale flag (the removed key) keeps the keyring
    // its data dir holds, and rejoins too.
    let gone = agents.remove(3);
    gone.shutdown().await;
    let back = start("r-3", std::slice::from_ref(&old), dir, Some(&agents[0])).await;
    agents.push(back);
    formed(&agents.iter().collect::<Vec<_>>(), 5).await;
    let r = everywhere(&agents[4], KeyOp::List, &new).await;
    assert_eq!(counts(&r), vec![(n.clone(), 5, 5)]);

    // A fresh agent with only the removed key is refused.
    let refused_before = agents[0]
        .handle()
        .transport_stats()
        .rejected_unauthenticated
        .load(Relaxed);
    let outsider = start(
        "outsider",
        std::slice::from_ref(&old),
        None,
        Some(&agents[0]),
    )
    .await;
    eventually(
        "the outsider's join is refused",
        Duration::from_secs(10),
        || async {
            agents[0]
                .handle()
                .transport_stats()
                .rejected_unauthenticated
                .load(Relaxed)
                > refused_before
        },
    )
    .await;
    assert_eq!(live(&outsider).await, 1, "the outsider joined");
    for a in &agents {
        assert_eq!(live(a).await, 5, "{} took the outsider in", a.name());
    }
    outsider.kill();
    for a in agents {
        a.kill();
    }
}

async fn client(agent: &Agent) -> RumourClient<tonic::transport::Channel> {
    RumourClient::connect(format!("http://{}", agent.api_addr()))
        .await
        .expect("connect to the client API")
}

fn install(key: &str) -> pb::KeyRequest {
    pb::KeyRequest {
        key: key.to_string(),
        timeout_ms: 0,
    }
}

/// Every member's keys, as fingerprints, through `agent`'s client API.
async fn listed(c: &mut RumourClient<tonic::transport::Channel>) -> Vec<pb::MemberKeys> {
    c.list_keys(pb::ListKeysRequest { timeout_ms: 0 })
        .await
        .expect("list")
        .into_inner()
        .members
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_commands_change_nothing_on_any_member() {
    // Scenario: three agents share `k1`; `a-0` also holds `k2`. Malformed
    // keys, using a key not everyone holds, and removing the primary are
    // all refused by the agent called, before any member is asked.
    let (k1, k2) = (key(1), key(2));
    let a0 = start("a-0", &[k1.clone(), k2.clone()], None, None).await;
    let a1 = start("a-1", std::slice::from_ref(&k1), None, Some(&a0)).await;
    let a2 = start("a-2", std::slice::from_ref(&k1), None, Some(&a0)).await;
    formed(&[&a0, &a1, &a2], 3).await;
    let mut c = client(&a0).await;
    let before = listed(&mut c).await;
    assert_eq!(before.len(), 3);

    let secretish = "bm90IGEga2V5IGJ1dCBiYXNlNjQ=";
    for bad in ["not base64!", secretish, ""] {
        let e = c.install_key(install(bad)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
        assert!(bad.is_empty() || !e.message().contains(bad), "{e:?}");
    }
    let e = c.use_key(install(&k2.to_base64())).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("a-1") && e.message().contains("a-2"),
        "names who lacks the key: {e:?}"
    );
    for k in [&k1] {
        let e = c.remove_key(install(&k.to_base64())).await.unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        assert!(e.message().contains("primary"), "{e:?}");
    }
    let e = c.use_key(install(&key(9).to_base64())).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    for shown in [format!("{e:?}"), format!("{before:?}")] {
        assert!(!shown.contains(&k1.to_base64()) && !shown.contains(&k2.to_base64()));
    }
    // Nothing changed on any member.
    assert_eq!(listed(&mut c).await, before);
    let r = c
        .list_keys(pb::ListKeysRequest { timeout_ms: 0 })
        .await
        .unwrap()
        .into_inner();
    let held: Vec<(String, u32, u32)> = r
        .keys
        .iter()
        .map(|k| (k.fingerprint.clone(), k.members, k.primary))
        .collect();
    assert_eq!(
        held,
        vec![(k1.fingerprint(), 3, 3), (k2.fingerprint(), 1, 0)]
    );

    // A member that does not answer is named once the timeout passes.
    a2.kill();
    let started = Instant::now();
    let r = c
        .list_keys(pb::ListKeysRequest { timeout_ms: 300 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.no_answer, vec!["a-2".to_string()]);
    assert_eq!(r.members.len(), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
    a0.kill();
    a1.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_commands_need_a_keyed_agent_and_a_sealed_request() {
    // Scenario: an agent without a cluster key answers key calls with
    // FAILED_PRECONDITION, and a plaintext key command sent to its peer
    // port is refused and counted.
    let plain = start("plain", &[], None, None).await;
    let mut c = client(&plain).await;
    let e = c
        .list_keys(pb::ListKeysRequest { timeout_ms: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("no cluster key"), "{e:?}");
    let e = c
        .install_key(install(&key(1).to_base64()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    let forged = pb::Envelope {
        from: Some(pb::Address {
            ip: vec![127, 0, 0, 1],
            port: 9,
        }),
        body: Some(pb::envelope::Body::ClusterRequest(pb::ClusterRequest {
            id: 1,
            command: Some(pb::cluster_request::Command::Keys(pb::KeyCommand {
                op: pb::key_command::Op::Install as i32,
                key: key(1).as_bytes().to_vec(),
            })),
        })),
        sealed: None,
    };
    assert!(forged.encoded_len() > 0);
    let mut peer = PeerClient::connect(format!("http://{}", plain.peer_addr()))
        .await
        .expect("connect to the peer port");
    let _ = peer.stream(tokio_stream::iter(vec![forged])).await;
    eventually(
        "the plaintext key command is refused",
        Duration::from_secs(5),
        || async {
            plain
                .handle()
                .transport_stats()
                .rejected_unauthenticated
                .load(Relaxed)
                == 1
        },
    )
    .await;
    let e = c
        .list_keys(pb::ListKeysRequest { timeout_ms: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "still no keyring");
    plain.kill();
}
