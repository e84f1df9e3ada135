//! Fair intake under a flood, over real sockets on 127.0.0.1: three
//! `rumour agent` processes (the binary, `--preset local`, no cluster key)
//! while one raw peer connection sends to one of them, as fast as it can,
//! a mix of garbage and valid-looking envelopes.
//!
//! The flood lasts `RUMOUR_FLOOD_SECS` seconds (default 15, to keep CI
//! short; the figure is 20). Nothing here is a timed performance
//! assertion: the test waits on conditions against deadlines counted in
//! gossip intervals, and prints the flooded agent's CPU and memory (read
//! from /proc) for the README.

mod support;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumour::core::Config;
use rumour::proto::v1 as pb;
use rumour::proto::v1::envelope::Body;
use rumour::proto::v1::member_event::Change;
use rumour::proto::v1::peer_client::PeerClient;
use rumour::proto::v1::rumour_client::RumourClient;
use rumour::proto::v1::watch_event::Event;
use tonic::transport::Channel;

const RUMOUR: &str = env!("CARGO_BIN_EXE_rumour");

/// How long the flood lasts: `RUMOUR_FLOOD_SECS`, or 15 s.
fn flood_time() -> Duration {
    let secs = std::env::var("RUMOUR_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    Duration::from_secs(secs)
}

fn gossip_interval() -> Duration {
    Config::local().gossip_interval
}

/// How long a put may take to reach every replica under the flood: 30
/// gossip intervals (3 s with the local preset), far above what a clean
/// cluster takes and far below what a starved intake took.
fn put_bound() -> Duration {
    gossip_interval() * 30
}

/// A directory of this test's own, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("rumour-flood-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running `rumour agent` process, killed when dropped.
struct Agent {
    name: String,
    peer: String,
    api: RumourClient<Channel>,
    log: PathBuf,
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

impl Agent {
    /// Start agent `name` (joining `join`), and wait until its API answers
    /// as it. Ports are picked free just before; if one was taken in
    /// between, it starts again on others.
    async fn start(dir: &Path, name: &str, join: Option<&str>) -> Agent {
        for attempt in 0..5 {
            let peer = format!("127.0.0.1:{}", free_port());
            let api_addr = format!("127.0.0.1:{}", free_port());
            let log = dir.join(format!("{name}.{attempt}.log"));
            let mut cmd = Command::new(RUMOUR);
            cmd.args(["agent", "--name", name, "--preset", "local"])
                .args(["--bind", &peer, "--api", &api_addr])
                .env("RUST_LOG", "warn")
                .env("XDG_DATA_HOME", dir)
                .env_remove("RUMOUR_KEY")
                .env_remove("RUMOUR_API_TOKEN")
                .env_remove("RUMOUR_DATA_DIR")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("create the log"));
            if let Some(seed) = join {
                cmd.args(["--join", seed]);
            }
            let mut child = cmd.spawn().expect("spawn rumour agent");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if child.try_wait().expect("child status").is_some() {
                    break;
                }
                if let Ok(mut api) = RumourClient::connect(format!("http://{api_addr}")).await {
                    if let Ok(s) = api.status(pb::StatusRequest {}).await {
                        if s.get_ref().peer_address == peer {
                            return Agent {
                                name: name.into(),
                                peer,
                                api,
                                log,
                                child,
                            };
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("agent {name} did not start in 5 attempts");
    }

    async fn counters(&self) -> BTreeMap<String, u64> {
        let status = self.api.clone().status(pb::StatusRequest {}).await;
        status
            .map(|s| s.into_inner().counters.into_iter().collect())
            .unwrap_or_default()
    }

    async fn alive(&self) -> Vec<String> {
        let members = self
            .api
            .clone()
            .members(pb::MembersRequest { all: false })
            .await;
        let mut names: Vec<String> = members
            .map(|m| m.into_inner().members)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.state == pb::MemberState::Alive as i32)
            .map(|m| m.name)
            .collect();
        names.sort();
        names
    }

    /// CPU seconds (user + system) and resident memory now and at peak,
    /// in KiB, from /proc.
    fn usage(&self) -> (f64, u64, u64) {
        let pid = self.child.id();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
        // Clock ticks are 100 a second on Linux.
        let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (cpu, kib("VmRSS:"), kib("VmHWM:"))
    }
}

/// Member changes of honest agents that an agent reported while watched.
#[derive(Default)]
struct Seen {
    suspected: Vec<String>,
    died: Vec<String>,
}

/// Watch `agent`'s member events, noting suspicions and deaths of the
/// names in `honest`, until `stop`.
fn watch(
    agent: &Agent,
    honest: Vec<String>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<()> {
    let mut api = agent.api.clone();
    let me = agent.name.clone();
    tokio::spawn(async move {
        let mut events = api
            .watch(pb::WatchRequest {
                kinds: vec![pb::EventKind::Member as i32],
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner();
        while let Ok(Some(ev)) = events.message().await {
            let Some(Event::Member(m)) = ev.event else {
                continue;
            };
            let name = m.member.map(|m| m.name).unwrap_or_default();
            if !honest.contains(&name) {
                continue;
            }
            let mut seen = seen.lock().unwrap();
            match Change::try_from(m.change) {
                Ok(Change::Suspected) => seen.suspected.push(format!("{me} suspected {name}")),
                Ok(Change::Died) => seen.died.push(format!("{me} declared {name} dead")),
                _ => {}
            }
        }
    })
}

fn from(port: u32) -> Option<pb::Address> {
    Some(pb::Address {
        ip: vec![127, 0, 0, 1],
        port,
    })
}

/// The `i`th envelope of the flood: garbage (an address of 3 bytes, no
/// body, random bytes sealed at an agent without a key) and valid-looking
/// messages (probes for nobody, acks and nacks of nothing, membership
/// rumours whose signatures are wrong, queries, prunes), all from an
/// address where nobody listens.
fn flood_envelope(i: u64) -> pb::Envelope {
    let seq = i as u32;
    let body = |b| pb::Envelope {
        from: from(9),
        body: Some(b),
        sealed: None,
    };
    match i % 9 {
        0 => pb::Envelope {
            from: Some(pb::Address {
                ip: vec![1, 2, 3],
                port: 9,
            }),
            body: Some(Body::Nack(pb::Nack { seq })),
            sealed: None,
        },
        1 => pb::Envelope {
            from: from(9),
            body: None,
            sealed: None,
        },
        2 => pb::Envelope {
            sealed: Some(pb::Sealed {
                nonce: i.to_le_bytes().repeat(3),
                ciphertext: (0..64).map(|b| (b as u64 ^ i) as u8).collect(),
                sent_unix_ms: i,
            }),
            ..Default::default()
        },
        3 => body(Body::Ping(pb::Ping {
            seq,
            target: format!("ghost-{}", i % 100),
            ..Default::default()
        })),
        4 => body(Body::Ack(pb::Ack {
            seq,
            updates: vec![],
        })),
        5 => body(Body::Nack(pb::Nack { seq })),
        6 => body(Body::Gossip(pb::Gossip {
            updates: vec![pb::MemberUpdate {
                name: format!("fake-{}", i % 1000),
                addr: from(10_000 + (i % 1000) as u32),
                incarnation: 1,
                state: pb::State::Alive as i32,
                by: String::new(),
                key: vec![7; 32],
                signature: vec![9; 64],
            }],
        })),
        7 => body(Body::Query(pb::Query {
            id: seq,
            key: format!("k{}", i % 50),
        })),
        _ => body(Body::Prune(pb::Prune {})),
    }
}

/// Send the flood to `peer` on one raw stream until `until`; how many
/// envelopes went out.
async fn flood(peer: String, until: Instant, sent: Arc<AtomicU64>) {
    let mut client = PeerClient::connect(format!("http://{peer}"))
        .await
        .expect("the flooder connects")
        .max_encoding_message_size(usize::MAX);
    let counted = sent.clone();
    let envelopes = tokio_stream::iter((0u64..).map_while(move |i| {
        if i % 256 == 0 && Instant::now() >= until {
            return None;
        }
        counted.fetch_add(1, Relaxed);
        Some(flood_envelope(i))
    }));
    // The stream's end (or the agent refusing it) ends the flood.
    let _ = client.stream(envelopes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_peer_flood_kills_no_honest_member_and_puts_still_reach_every_replica() {
    // Scenario: agents a, b and c form a cluster. A raw connection floods
    // a. Meanwhile b writes a key every few gossip intervals, and each
    // write must reach a and c within the bound; no agent may declare an
    // honest one dead, and all three stay alive in every view.
    let scratch = Scratch::new();
    let a = Agent::start(&scratch.0, "a", None).await;
    let b = Agent::start(&scratch.0, "b", Some(&a.peer)).await;
    let c = Agent::start(&scratch.0, "c", Some(&a.peer)).await;
    let agents = [&a, &b, &c];
    let honest: Vec<String> = agents.iter().map(|x| x.name.clone()).collect();
    support::eventually("the cluster forms", Duration::from_secs(30), || async {
        for x in agents {
            if x.alive().await != honest {
                return false;
            }
        }
        true
    })
    .await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let watchers: Vec<_> = agents
        .iter()
        .map(|x| watch(x, honest.clone(), seen.clone()))
        .collect();
    let before = a.counters().await;
    let (cpu0, _, _) = a.usage();
    let started = Instant::now();
    let until = started + flood_time();
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = tokio::spawn(flood(a.peer.clone(), until, sent.clone()));

    // Puts on b, one every 5 gossip intervals, each waited for at a and c.
    let mut delays: Vec<Duration> = Vec::new();
    let mut rss_max = 0;
    let mut i = 0;
    while Instant::now() < until {
        let key = format!("k{i}");
        let value = format!("v{i}").into_bytes();
        let put_at = Instant::now();
        b.api
            .clone()
            .put(pb::PutRequest {
                key: key.clone(),
                value: value.clone(),
                namespace: String::new(),
            })
            .await
            .expect("a put on b");
        support::eventually(
            &format!("put {key} on b reaches a and c under the flood"),
            put_bound(),
            || async {
                for x in [&a, &c] {
                    let got = x
                        .api
                        .clone()
                        .get(pb::GetRequest {
                            namespace: "b".into(),
                            key: key.clone(),
                            fresh: false,
                        })
                        .await;
                    match got {
                        Ok(r) if r.get_ref().value == value => {}
                        _ => return false,
                    }
                }
                true
            },
        )
        .await;
        delays.push(put_at.elapsed());
        rss_max = rss_max.max(a.usage().1);
        i += 1;
        let next = put_at + gossip_interval() * 5;
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
    flooder.await.expect("the flooder ends");
    let elapsed = started.elapsed();
    let (cpu1, rss, hwm) = a.usage();
    let after = a.counters().await;

    // Everyone is still alive everywhere, and no one was declared dead.
    for x in agents {
        assert_eq!(x.alive().await, honest, "{}'s view after the flood", x.name);
    }
    for w in watchers {
        w.abort();
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.died.is_empty(),
        "honest members declared dead: {:?}; a's log:\n{}",
        seen.died,
        fs::read_to_string(&a.log).unwrap_or_default()
    );

    // The flood arrived, and each of its kinds was handled as such.
    let delta = |k: &str| {
        let k = format!("transport_{k}");
        after.get(&k).copied().unwrap_or(0) - before.get(&k).copied().unwrap_or(0)
    };
    for k in ["rejected_malformed", "rejected_unauthenticated", "received"] {
        assert!(delta(k) > 0, "{k} did not move: the flood did not arrive");
    }

    delays.sort();
    let in_intervals = |d: Duration| d.as_secs_f64() / gossip_interval().as_secs_f64();
    let sent = sent.load(Relaxed);
    println!(
        "flood: {sent} envelopes offered in {:.1} s on one connection; agent a took {} and refused {} \
         (malformed {}, unauthenticated {}); intake: paced {} times, membership lane full {}, \
         data lane full {}, shed {}",
        elapsed.as_secs_f64(),
        delta("received"),
        delta("rejected_malformed") + delta("rejected_unauthenticated"),
        delta("rejected_malformed"),
        delta("rejected_unauthenticated"),
        delta("intake_paced"),
        delta("intake_membership_full"),
        delta("intake_data_full"),
        delta("intake_shed"),
    );
    println!(
        "flood: agent a CPU {:.0}% of one core over the flood, RSS {} MiB at the end, \
         {} MiB at most while sampled, peak (VmHWM) {} MiB",
        100.0 * (cpu1 - cpu0) / elapsed.as_secs_f64(),
        rss / 1024,
        rss_max.max(rss) / 1024,
        hwm / 1024
    );
    println!(
        "flood: {} puts on b reached a and c in median {:.1}, p99 {:.1}, max {:.1} gossip \
         intervals (bound {:.0}); suspicions of honest members: {} {:?}; deaths: 0",
        delays.len(),
        in_intervals(delays[delays.len() / 2]),
        in_intervals(delays[(delays.len() * 99).div_ceil(100) - 1]),
        in_intervals(*delays.last().expect("at least one put")),
        in_intervals(put_bound()),
        seen.suspected.len(),
        seen.suspected,
    );
}
