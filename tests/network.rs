//! End-to-end tests over real sockets on 127.0.0.1: agents on ephemeral
//! ports, talking gRPC (and, for the tests listed in `over_each_transport!`,
//! UDP as well), driven through their handles and the client API.
//!
//! Waiting is done by polling a condition against a deadline derived from
//! the protocol's timings, never by sleeping a fixed time and hoping.

mod support;

use support::eventually;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumour::core::{
    Config, Datum, Delta, Eager, Fnv64, Identity, MemberState, Message, Record, Signature,
    Versioned,
};
use rumour::proto::v1 as pb;
use rumour::proto::v1::rumour_client::RumourClient;
use rumour::transport::{unix_micros, Agent, AgentConfig, ApiError, Transport};
use tonic::Code;

/// Each listed test, `async fn NAME(t: Transport)`, runs once per
/// transport, as `NAME::grpc` and `NAME::udp`.
macro_rules! over_each_transport {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn grpc() {
                super::$test(super::Transport::Grpc).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn udp() {
                super::$test(super::Transport::Udp).await
            }
        }
    )*};
}

// The rest, which exercise failure detection and reaping at length or the
// core's own rules, run over gRPC only: the test time stays in bounds.
over_each_transport!(
    a_cluster_forms_from_one_seed_and_a_put_reaches_every_node,
    a_killed_node_dies_everywhere_and_its_restart_replaces_its_namespace,
    a_graceful_leave_shows_as_left,
    watch_delivers_events_in_order_and_fresh_reads_reach_the_owner,
    client_errors_map_to_grpc_codes_and_change_nothing,
    malformed_and_oversized_peer_messages_are_refused_counted_and_survived,
);

/// The protocol's timings, the same on both transports.
fn protocol() -> Config {
    Config::local()
}

/// A loopback agent's config on transport `t`, with its defaults.
fn config(t: Transport, name: &str, protocol: Config) -> AgentConfig {
    let mut config = AgentConfig::loopback(name, t.defaults(protocol));
    config.peer_transport = t;
    config
}

/// Each test agent's key pair, drawn from its name, so that a restart can
/// keep it.
fn identity(name: &str) -> Identity {
    let mut h = Fnv64::default();
    h.write(name.as_bytes());
    Identity::from_seed(h.finish())
}

async fn start(t: Transport, name: &str, join: Option<&Agent>) -> Agent {
    let mut config = config(t, name, protocol());
    config.identity = Some(identity(name));
    if let Some(seed) = join {
        config.join = vec![seed.peer_addr().to_string()];
    }
    Agent::start(config).await.expect("agent starts")
}

async fn cluster(t: Transport, n: usize) -> Vec<Agent> {
    let seed = start(t, "node-0", None).await;
    let mut agents = vec![seed];
    for i in 1..n {
        let a = start(t, &format!("node-{i}"), Some(&agents[0])).await;
        agents.push(a);
    }
    agents
}

async fn state_of(agent: &Agent, name: &str) -> Option<(MemberState, u32)> {
    agent
        .handle()
        .members()
        .await
        .ok()?
        .into_iter()
        .find(|(m, _)| m.id.name() == name)
        .map(|(m, _)| (m.state, m.incarnation.0))
}

/// Wait until every agent sees every agent alive.
async fn formed(agents: &[Agent]) {
    eventually("the cluster forms", convergence(), || async {
        for a in agents {
            if !all_see(agents, a.name(), MemberState::Alive).await {
                return false;
            }
        }
        true
    })
    .await;
}

async fn all_see(agents: &[Agent], name: &str, state: MemberState) -> bool {
    for a in agents {
        if state_of(a, name).await.map(|s| s.0) != Some(state) {
            return false;
        }
    }
    true
}

/// Time for every member to learn of a change: a few push-pull rounds.
fn convergence() -> Duration {
    protocol().push_pull_interval * 3
}

/// The failure-detection bound: a whole probe cycle, then the longest
/// suspicion, plus a probe period of slack per step.
fn detection_bound(n: usize) -> Duration {
    let c = protocol();
    c.probe_period * (n as u32 + 2) + c.suspicion_max + c.probe_period * 2
}

async fn client(agent: &Agent) -> RumourClient<tonic::transport::Channel> {
    RumourClient::connect(format!("http://{}", agent.api_addr()))
        .await
        .expect("client connects")
}

async fn a_cluster_forms_from_one_seed_and_a_put_reaches_every_node(t: Transport) {
    let agents = cluster(t, 5).await;
    eventually(
        "every node sees five live members",
        convergence(),
        || async {
            for a in &agents {
                let live = a
                    .handle()
                    .status()
                    .await
                    .map(|s| s.live_members)
                    .unwrap_or(0);
                if live != 5 {
                    return false;
                }
            }
            true
        },
    )
    .await;

    let version = agents[2]
        .handle()
        .put("", "greeting", b"hello")
        .await
        .unwrap();
    assert!(version > 0);
    eventually("the put is readable everywhere", convergence(), || async {
        for a in &agents {
            match a.handle().get("node-2", "greeting").await {
                Ok(r) if &*r.entry.value == b"hello" && r.entry.version == version => {}
                _ => return false,
            }
        }
        true
    })
    .await;

    // A record too large for a datagram still arrives: on UDP it goes
    // alone, by stream.
    let big = vec![7u8; 10_000];
    let big_version = agents[2].handle().put("", "big", &big).await.unwrap();
    eventually(
        "the large put is readable everywhere",
        convergence(),
        || async {
            for a in &agents {
                match a.handle().get("node-2", "big").await {
                    Ok(r) if *r.entry.value == big[..] && r.entry.version == big_version => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
    let over = agents[2]
        .handle()
        .transport_stats()
        .datagrams_over_limit
        .load(std::sync::atomic::Ordering::Relaxed);
    match t {
        Transport::Grpc => assert_eq!(over, 0),
        Transport::Udp => assert!(over > 0, "the large record went by datagram"),
    }

    // Through the gRPC API too.
    let mut c = client(&agents[4]).await;
    let r = c
        .get(pb::GetRequest {
            namespace: "node-2".into(),
            key: "greeting".into(),
            fresh: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.value, b"hello");
    assert_eq!(r.version, version);
    let members = c
        .members(pb::MembersRequest { all: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 5);
    assert!(members
        .members
        .iter()
        .all(|m| m.state == pb::MemberState::Alive as i32));
    // Probes and rumours went by datagram on UDP, and only there.
    for a in &agents {
        let datagrams = a
            .handle()
            .transport_stats()
            .datagrams_received
            .load(std::sync::atomic::Ordering::Relaxed);
        match t {
            Transport::Grpc => assert_eq!(datagrams, 0, "{}", a.name()),
            Transport::Udp => assert!(datagrams > 0, "{} received none", a.name()),
        }
    }
    for a in agents {
        a.kill();
    }
}

async fn a_killed_node_dies_everywhere_and_its_restart_replaces_its_namespace(t: Transport) {
    let mut agents = cluster(t, 4).await;
    formed(&agents).await;
    agents[3]
        .handle()
        .put("", "old", b"first life")
        .await
        .unwrap();
    eventually("the first life's entry spreads", convergence(), || async {
        for a in &agents[..3] {
            if a.handle().get("node-3", "old").await.is_err() {
                return false;
            }
        }
        true
    })
    .await;
    let (_, first_incarnation) = state_of(&agents[0], "node-3").await.unwrap();
    let addr = agents[3].peer_addr();

    let victim = agents.pop().unwrap();
    victim.kill();
    let killed_at = Instant::now();
    eventually(
        "the killed node is dead everywhere",
        detection_bound(4),
        || async { all_see(&agents, "node-3", MemberState::Dead).await },
    )
    .await;
    eprintln!("dead everywhere after {:?}", killed_at.elapsed());

    // Restart on the same address and key, as a new life.
    let mut config = config(t, "node-3", protocol());
    config.identity = Some(identity("node-3"));
    config.bind = addr;
    config.join = vec![agents[0].peer_addr().to_string()];
    let reborn = Agent::start(config).await.expect("restart");
    reborn
        .handle()
        .put("", "new", b"second life")
        .await
        .unwrap();
    agents.push(reborn);
    eventually(
        "the restart is alive everywhere, newer",
        convergence(),
        || async {
            for a in &agents {
                match state_of(a, "node-3").await {
                    Some((MemberState::Alive, inc)) if inc > first_incarnation => {}
                    _ => return false,
                }
            }
            true
        },
    )
    .await;
    eventually(
        "the new namespace replaced the old",
        convergence(),
        || async {
            for a in &agents[..3] {
                let new = a.handle().get("node-3", "new").await;
                let old = a.handle().get("node-3", "old").await;
                if new.is_err() || !matches!(old, Err(ApiError::NoKey { .. })) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for a in agents {
        a.kill();
    }
}

async fn a_graceful_leave_shows_as_left(t: Transport) {
    let mut agents = cluster(t, 3).await;
    formed(&agents).await;
    let leaver = agents.pop().unwrap();
    let mut c = client(&leaver).await;
    c.shutdown(pb::ShutdownRequest {}).await.unwrap();
    leaver.wait().await;
    eventually("the leaver shows as left", convergence(), || async {
        all_see(&agents, "node-2", MemberState::Left).await
    })
    .await;
    for a in agents {
        a.kill();
    }
}

async fn watch_delivers_events_in_order_and_fresh_reads_reach_the_owner(t: Transport) {
    let before_start = unix_micros();
    let agents = cluster(t, 2).await;
    formed(&agents).await;
    // Status says when the node started and when it last changed its count
    // of live members (here when the other joined), by the wall clock.
    let status = client(&agents[0])
        .await
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.live_members, 2);
    let (started, since) = (
        status.started_unix_micros,
        status.live_members_since_unix_micros,
    );
    assert!(
        before_start <= started && started <= since && since <= unix_micros(),
        "started {started}, live count since {since}, test began {before_start}"
    );
    let mut watcher = client(&agents[0]).await;
    let mut stream = watcher
        .watch(pb::WatchRequest {
            kinds: vec![pb::EventKind::Entry as i32],
            namespace: "node-1".into(),
            key_prefix: "k".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut versions = Vec::new();
    let before_puts = unix_micros();
    for i in 0..20 {
        let v = agents[1]
            .handle()
            .put("", &format!("k{i}"), format!("v{i}").as_bytes())
            .await
            .unwrap();
        versions.push(v);
        // Not matched by the prefix filter.
        agents[1]
            .handle()
            .put("", &format!("x{i}"), b"-")
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut last_seq = 0;
    while seen.len() < versions.len() {
        let ev = tokio::time::timeout(convergence(), stream.message())
            .await
            .expect("watch events arrive")
            .unwrap()
            .expect("stream open");
        assert!(ev.seq > last_seq, "sequence numbers increase");
        last_seq = ev.seq;
        // Each event carries when the watched agent took it in.
        assert!(
            before_puts <= ev.at_unix_micros && ev.at_unix_micros <= unix_micros(),
            "taken in at {}, puts began {before_puts}",
            ev.at_unix_micros
        );
        match ev.event {
            Some(pb::watch_event::Event::Entry(e)) => {
                assert_eq!(e.namespace, "node-1");
                assert!(e.key.starts_with('k'), "{}", e.key);
                seen.push(e.version);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, versions, "entry events in version order");

    // A fresh read is answered by the owner.
    agents[1].handle().put("", "fresh", b"now").await.unwrap();
    let mut c = client(&agents[0]).await;
    let r = c
        .get(pb::GetRequest {
            namespace: "node-1".into(),
            key: "fresh".into(),
            fresh: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.source, pb::Source::Owner as i32);
    assert_eq!(r.value, b"now");
    for a in agents {
        a.kill();
    }
}

async fn client_errors_map_to_grpc_codes_and_change_nothing(t: Transport) {
    let agent = start(t, "solo", None).await;
    let mut c = client(&agent).await;
    let put = |ns: &str, key: &str, value: Vec<u8>| pb::PutRequest {
        namespace: ns.into(),
        key: key.into(),
        value,
    };
    let e = c
        .put(put("someone-else", "k", b"v".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("someone-else"), "{}", e.message());
    let e = c.put(put("", "", b"v".to_vec())).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = c
        .put(put(
            "",
            "k",
            vec![0; t.defaults(protocol()).max_value_len + 1],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("over the limit"), "{}", e.message());
    let e = c
        .get(pb::GetRequest {
            namespace: String::new(),
            key: "missing".into(),
            fresh: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = c
        .list(pb::ListRequest {
            namespace: "nobody".into(),
            prefix: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = c
        .join(pb::JoinRequest {
            addresses: vec!["not an address".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    // Nothing was written.
    let list = c
        .list(pb::ListRequest {
            namespace: String::new(),
            prefix: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(list.entries.is_empty());
    agent.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_seed_is_retried_while_the_api_serves() {
    // A port nobody listens on: bind, note it, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let seed = dead.local_addr().unwrap();
    drop(dead);
    let mut config = AgentConfig::loopback("lonely", protocol());
    config.join = vec![seed.to_string()];
    let agent = Agent::start(config).await.unwrap();
    let h = agent.handle();
    eventually(
        "join attempts keep failing and are counted",
        convergence(),
        || async {
            h.transport_stats()
                .connect_failures
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 2
        },
    )
    .await;
    // The API still serves.
    h.put("", "k", b"v").await.unwrap();
    assert_eq!(&*h.get("", "k").await.unwrap().entry.value, b"v");
    agent.kill();
}

async fn malformed_and_oversized_peer_messages_are_refused_counted_and_survived(t: Transport) {
    use std::sync::atomic::Ordering::Relaxed;
    let agents = cluster(t, 2).await;
    formed(&agents).await;
    let target = &agents[0];
    let handle = target.handle();
    let stats = handle.transport_stats();
    let nack = Some(pb::envelope::Body::Nack(pb::Nack { seq: 1 }));
    let envelope = |from: Option<(Vec<u8>, u32)>, body| pb::Envelope {
        from: from.map(|(ip, port)| pb::Address { ip, port }),
        body,
        sealed: None,
    };
    let bad = vec![
        // No sender: refused from a stream, where the connection's source
        // port is not the sender's; a datagram's source stands in for it
        // (`a_datagram_that_names_no_sender_is_answered_at_its_source`).
        envelope(None, nack.clone()),
        // A three-byte IP address.
        envelope(Some((vec![1, 2, 3], 80)), nack.clone()),
        // No body.
        envelope(Some((vec![127, 0, 0, 1], 9)), None),
        // Well formed, but naming a sender on another host than the one
        // it came from: replies would be reflected at a third party.
        envelope(Some((vec![192, 0, 2, 1], 7946)), nack),
    ];
    // Over the size limit, checked before decoding: the stream's inbound
    // limit (on the length prefix), or the datagram limit.
    let limit = match t {
        Transport::Grpc => config(t, "x", protocol()).transport.max_inbound_message,
        Transport::Udp => config(t, "x", protocol())
            .protocol
            .datagram_size
            .expect("UDP packs to a datagram size"),
    };
    let query = pb::Query {
        id: 1,
        key: "k".repeat(limit + 1),
    };
    let huge = envelope(
        Some((vec![127, 0, 0, 1], 9)),
        Some(pb::envelope::Body::Query(query)),
    );
    match t {
        Transport::Grpc => {
            use rumour::proto::v1::peer_client::PeerClient;
            let mut peer = PeerClient::connect(format!("http://{}", target.peer_addr()))
                .await
                .unwrap();
            let summary = peer
                .stream(tokio_stream::iter(bad))
                .await
                .expect("the stream is served")
                .into_inner();
            assert_eq!((summary.received, summary.rejected), (0, 4));
            let err = peer
                .stream(tokio_stream::iter(vec![huge]))
                .await
                .expect_err("an oversized message ends the stream");
            assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        }
        Transport::Udp => {
            use prost::Message as _;
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut datagrams: Vec<Vec<u8>> = bad.iter().map(|e| e.encode_to_vec()).collect();
            datagrams.push(huge.encode_to_vec());
            // Not an envelope at all, one cut short, and an empty one (an
            // envelope of nothing): all malformed.
            let whole = rumour::proto::encode_envelope(
                "127.0.0.1:9".parse().unwrap(),
                &Message::Nack(rumour::core::Nack { seq: 2 }),
            )
            .encode_to_vec();
            datagrams.push(vec![0xff; 64]);
            datagrams.push(whole[..whole.len() - 1].to_vec());
            datagrams.push(Vec::new());
            for d in &datagrams {
                socket.send_to(d, target.peer_addr()).await.unwrap();
            }
        }
    }
    let malformed = match t {
        Transport::Grpc => 3,
        Transport::Udp => 5,
    };
    eventually("every bad message is counted", convergence(), || async {
        stats.rejected_malformed.load(Relaxed) >= malformed
            && stats.rejected_address_mismatch.load(Relaxed) >= 1
            && stats.rejected_oversized.load(Relaxed) >= 1
    })
    .await;
    assert_eq!(stats.rejected_malformed.load(Relaxed), malformed);
    assert_eq!(stats.rejected_address_mismatch.load(Relaxed), 1);
    assert_eq!(stats.rejected_oversized.load(Relaxed), 1);

    // The node keeps serving peers and clients.
    target.handle().put("", "still", b"here").await.unwrap();
    eventually("a later put still spreads", convergence(), || async {
        agents[1].handle().get("node-0", "still").await.is_ok()
    })
    .await;
    assert!(all_see(&agents, "node-0", MemberState::Alive).await);
    for a in agents {
        a.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_that_names_no_sender_is_answered_at_its_source() {
    // Agents on UDP, bound to the address they advertise, leave the sender
    // out of a plain envelope: the datagram's source says it. A ping with no
    // sender, from a socket outside the cluster, is answered there; and the
    // agents themselves form a cluster and spread a put that way (the
    // other UDP tests), each datagram some 12 bytes shorter than an
    // envelope that names its sender.
    use prost::Message as _;
    let agent = start(Transport::Udp, "node-0", None).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ping = Message::Ping(rumour::core::Ping {
        seq: 7,
        target: "node-0".into(),
        target_key: None,
        updates: Vec::new(),
    });
    let bytes = rumour::proto::datagram_envelope(&ping).encode_to_vec();
    let named = rumour::proto::encode_envelope(socket.local_addr().unwrap(), &ping);
    assert!(bytes.len() + 10 <= named.encode_to_vec().len());
    socket.send_to(&bytes, agent.peer_addr()).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, source) = tokio::time::timeout(convergence(), socket.recv_from(&mut buf))
        .await
        .expect("an answer within the convergence bound")
        .unwrap();
    assert_eq!(source, agent.peer_addr());
    let (from, msg) = rumour::proto::decode_datagram(&buf[..n], n, source).unwrap();
    assert_eq!(from, agent.peer_addr());
    assert!(matches!(msg, Message::Ack(ref a) if a.seq == 7), "{msg:?}");
    // The answer itself named no sender either.
    assert!(pb::Envelope::decode(&buf[..n]).unwrap().from.is_none());
    agent.kill();
}

/// Send `msgs` to `agent`'s peer port as a raw client outside the cluster
/// would, from a made-up address.
async fn send_raw(agent: &Agent, msgs: Vec<Message>) {
    let from: SocketAddr = "127.0.0.1:9".parse().expect("an address");
    let envelopes: Vec<pb::Envelope> = msgs
        .iter()
        .map(|m| rumour::proto::encode_envelope(from, m))
        .collect();
    let (received, _) = support::send_raw(agent, envelopes).await;
    assert_eq!(received, msgs.len() as u64, "every envelope decoded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_never_lands_and_hides_no_real_write() {
    // The forgery of the signed-records issue, over real sockets: a client
    // outside the cluster pushes a record into b's namespace at b's
    // generation and next version, unsigned and signed with another key.
    let agents = cluster(Transport::Grpc, 3).await;
    formed(&agents).await;
    let (vm, b, c) = (&agents[0], &agents[1], &agents[2]);
    let generation = b.handle().status().await.expect("status").generation;
    // Signed by `signer`, or carrying no signature at all.
    let forged = |signer: Option<&Identity>| {
        let record = Record::Entry {
            key: Arc::from("pwned"),
            value: Some(Arc::from(&b"forged"[..])),
        };
        let v = match signer {
            Some(s) => s.versioned(b.name(), generation, 1, record),
            None => Versioned {
                version: 1,
                record,
                signature: Signature::default(),
            },
        };
        let d = Delta::single(Arc::from(b.name()), generation, v);
        Message::Eager(Eager {
            data: vec![Datum::Delta(d)],
            ..Eager::default()
        })
    };
    let stranger = Identity::from_seed(98);
    let member_c = identity(c.name());
    send_raw(
        vm,
        vec![
            forged(None),
            forged(Some(&stranger)),
            forged(Some(&member_c)),
        ],
    )
    .await;
    eventually("vm counts three refusals", convergence(), || async {
        support::status_counter(vm, "records_bad_signature").await == 3
    })
    .await;

    // b's real first write takes version 1 and reaches every replica.
    assert_eq!(
        b.handle().put("", "real-key", b"real-value").await.unwrap(),
        1
    );
    eventually("b's real write reaches vm and c", convergence(), || async {
        for a in [vm, c] {
            match a.handle().get(b.name(), "real-key").await {
                Ok(r) if &*r.entry.value == b"real-value" => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    for a in &agents {
        assert!(
            a.handle().get(b.name(), "pwned").await.is_err(),
            "{} holds the forged record",
            a.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaped_member_is_knocked_on_until_it_answers_again() {
    // b dies, is declared dead and forgotten by a: it goes on a's reconnect
    // list. b then restarts on its address without any seed; a's next knock
    // reaches it, and the two know each other again.
    let quick = Config {
        dead_reap_after: Duration::from_secs(1),
        reconnect_interval: Duration::from_millis(500),
        push_pull_interval: Duration::from_millis(500),
        ..protocol()
    };
    let start_with = |name: &str, join: Option<&Agent>, bind: Option<SocketAddr>| {
        let mut config = AgentConfig::loopback(name, quick.clone());
        config.identity = Some(identity(name));
        if let Some(seed) = join {
            config.join = vec![seed.peer_addr().to_string()];
        }
        if let Some(bind) = bind {
            config.bind = bind;
        }
        Agent::start(config)
    };
    let a = start_with("knock-a", None, None).await.expect("a starts");
    let b = start_with("knock-b", Some(&a), None)
        .await
        .expect("b starts");
    let agents = [a, b];
    formed(&agents).await;
    let [a, b] = agents;
    let b_addr = b.peer_addr();
    b.kill();
    let bound = detection_bound(2) + quick.dead_reap_after * 2;
    eventually("a forgets b and keeps its address", bound, || async {
        let list = a.handle().reconnect_list().await.unwrap();
        state_of(&a, "knock-b").await.is_none()
            && list
                .iter()
                .any(|(n, addr, _, _)| n == "knock-b" && *addr == b_addr)
    })
    .await;

    let b = start_with("knock-b", None, Some(b_addr))
        .await
        .expect("b restarts");
    eventually("a knocks and the two meet again", convergence(), || async {
        state_of(&a, "knock-b").await.map(|s| s.0) == Some(MemberState::Alive)
            && state_of(&b, "knock-a").await.map(|s| s.0) == Some(MemberState::Alive)
    })
    .await;
    assert!(a.handle().reconnect_list().await.unwrap().is_empty());
    assert!(support::status_counter(&a, "reconnect_attempts").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_is_knocked_on_again_once_members_are_missing() {
    // b joined through a. a dies, and b declares it dead and forgets it;
    // its reconnect entry expires at once (reconnect_timeout 1 ms), so only
    // the seed b was started with is left to find a again. a restarts on
    // its address with no seed of its own: b, whose live view has lost a
    // member it once had, knocks on its seed again and the two meet.
    let quick = Config {
        dead_reap_after: Duration::from_secs(1),
        reconnect_interval: Duration::from_millis(500),
        reconnect_timeout: Duration::from_millis(1),
        push_pull_interval: Duration::from_millis(500),
        ..protocol()
    };
    let start_with = |name: &str, join: Option<SocketAddr>, bind: Option<SocketAddr>| {
        let mut config = AgentConfig::loopback(name, quick.clone());
        config.identity = Some(identity(name));
        if let Some(seed) = join {
            config.join = vec![seed.to_string()];
        }
        if let Some(bind) = bind {
            config.bind = bind;
        }
        Agent::start(config)
    };
    let a = start_with("seed-a", None, None).await.expect("a starts");
    let a_addr = a.peer_addr();
    let b = start_with("seed-b", Some(a_addr), None)
        .await
        .expect("b starts");
    let agents = [a, b];
    formed(&agents).await;
    let [a, b] = agents;
    a.kill();
    let bound = detection_bound(2) + quick.dead_reap_after * 2;
    eventually(
        "b forgets a, and its reconnect entry expires",
        bound,
        || async {
            state_of(&b, "seed-a").await.is_none()
                && b.handle().reconnect_list().await.unwrap().is_empty()
        },
    )
    .await;
    let knocks = support::status_counter(&b, "reconnect_attempts").await;

    let a = start_with("seed-a", None, Some(a_addr))
        .await
        .expect("a restarts");
    eventually(
        "b knocks on its seed and the two meet again",
        convergence(),
        || async {
            state_of(&b, "seed-a").await.map(|s| s.0) == Some(MemberState::Alive)
                && state_of(&a, "seed-b").await.map(|s| s.0) == Some(MemberState::Alive)
        },
    )
    .await;
    assert!(support::status_counter(&b, "reconnect_attempts").await > knocks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_forget_frees_a_dead_name_for_a_new_key_agent_by_agent() {
    // Scenario: node-2 is killed and its key lost; it comes back on the same
    // address under a new key. node-0 and node-1 hold the old identity dead
    // and refuse the new one. `Forget` of a live member or of the agent
    // itself is refused; once node-0's operator forgets node-2, node-0
    // takes the new node-2, while node-1, not told, still refuses it.
    let mut agents = cluster(Transport::Grpc, 3).await;
    formed(&agents).await;
    let addr = agents[2].peer_addr();
    agents.pop().unwrap().kill();
    eventually("node-2 is dead at both", detection_bound(3), || async {
        all_see(&agents, "node-2", MemberState::Dead).await
    })
    .await;
    // On the cluster's transport: an agent on another one reaches it only
    // through what happens to go by stream.
    let mut config = config(Transport::Grpc, "node-2", protocol());
    config.identity = Some(Identity::from_seed(0x5eed));
    config.bind = addr;
    config.join = vec![agents[0].peer_addr().to_string()];
    let reborn = Agent::start(config).await.expect("restart under a new key");
    eventually("both refuse the new key", convergence(), || async {
        support::status_counter(&agents[0], "identity_conflicts").await > 0
            && support::status_counter(&agents[1], "identity_conflicts").await > 0
    })
    .await;
    assert!(all_see(&agents, "node-2", MemberState::Dead).await);

    let mut api = client(&agents[0]).await;
    for name in ["node-1", "node-0"] {
        let refused = api
            .forget(pb::ForgetRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Code::FailedPrecondition,
            "{name}: {refused:?}"
        );
    }
    let empty = api.forget(pb::ForgetRequest { name: "".into() }).await;
    assert_eq!(empty.unwrap_err().code(), Code::InvalidArgument);
    let forgot = api
        .forget(pb::ForgetRequest {
            name: "node-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(forgot.held);
    eventually("node-0 takes the new node-2", convergence(), || async {
        state_of(&agents[0], "node-2").await.map(|s| s.0) == Some(MemberState::Alive)
    })
    .await;
    assert_eq!(
        state_of(&agents[1], "node-2").await.map(|s| s.0),
        Some(MemberState::Dead),
        "node-1 was not told, and holds the old identity"
    );
    reborn.kill();
    for a in agents {
        a.kill();
    }
}
