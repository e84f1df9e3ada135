//! Cluster-wide queries over real sockets on 127.0.0.1: `ping` reaches
//! every live member and ends with the last answer, a killed member is
//! named at the timeout, application answers come from subscribed clients,
//! and bad input is refused naming the limit (or ignored and counted).
//!
//! Waiting is done on conditions against a deadline, never by sleeping.
//! Set `RUMOUR_QUERY_FIGURES=1` (with `--nocapture`) to print the latency
//! of `ping` queries over a 20-agent cluster.

mod support;

use support::{eventually, send_raw, status_counter};

use std::time::{Duration, Instant};

use rumour::core::Config;
use rumour::proto::v1 as pb;
use rumour::proto::v1::rumour_client::RumourClient;
use rumour::transport::{Agent, AgentConfig, ClusterKey, Keyring, Query, QueryEvent, QueryReport};
use tonic::transport::Channel;
use tonic::Code;

/// Start agent `name` (joining through `seed`), with `tune` applied to its
/// configuration first.
async fn start(name: &str, seed: Option<&Agent>, tune: impl FnOnce(&mut AgentConfig)) -> Agent {
    let mut config = AgentConfig::loopback(name, Config::local());
    if let Some(seed) = seed {
        config.join = vec![seed.peer_addr().to_string()];
    }
    tune(&mut config);
    Agent::start(config).await.expect("agent starts")
}

/// `n` agents named `prefix-i`, the first the seed of the others, each
/// configured by `tune`, once every one sees all `n` live.
async fn cluster(prefix: &str, n: usize, tune: impl Fn(&mut AgentConfig)) -> Vec<Agent> {
    let mut agents = vec![start(&format!("{prefix}-0"), None, &tune).await];
    for i in 1..n {
        let a = start(&format!("{prefix}-{i}"), Some(&agents[0]), &tune).await;
        agents.push(a);
    }
    eventually("the cluster forms", Duration::from_secs(20), || async {
        for a in &agents {
            match a.handle().status().await {
                Ok(s) if s.live_members == n => {}
                _ => return false,
            }
        }
        true
    })
    .await;
    agents
}

async fn client(agent: &Agent) -> RumourClient<Channel> {
    RumourClient::connect(format!("http://{}", agent.api_addr()))
        .await
        .expect("connect to the client API")
}

fn request(name: &str, payload: &[u8], timeout: Duration, filter: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        name: name.into(),
        payload: payload.to_vec(),
        timeout_ms: u32::try_from(timeout.as_millis()).expect("a short timeout"),
        filter_name: filter.into(),
    }
}

/// A query through the client API: every answer as it came, then the
/// summary (checked to be the stream's last item).
async fn ask(
    c: &mut RumourClient<Channel>,
    r: pb::QueryRequest,
) -> Result<(Vec<pb::MemberAnswer>, pb::QuerySummary), tonic::Status> {
    use pb::query_response::Item;
    let mut stream = c.query(r).await?.into_inner();
    let mut answers = Vec::new();
    while let Some(item) = stream.message().await? {
        match item.item {
            Some(Item::Answer(a)) => answers.push(a),
            Some(Item::Summary(s)) => {
                assert!(stream.message().await?.is_none(), "the summary ends it");
                return Ok((answers, s));
            }
            None => panic!("an empty item"),
        }
    }
    panic!("the stream ended without a summary")
}

fn names(agents: &[Agent]) -> Vec<String> {
    let mut n: Vec<String> = agents.iter().map(|a| a.name().to_string()).collect();
    n.sort();
    n
}

fn answered(s: &pb::QuerySummary) -> Vec<String> {
    let mut n: Vec<String> = s.answered.iter().map(|m| m.member.clone()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_reaches_every_member_and_ends_with_the_last_answer() {
    // Scenario: five agents; a client asks `ping` through one of them with
    // a 30 s timeout. Every member answers with its name and incarnation,
    // the summary names all five and no one missing, and the stream ends
    // once the fifth answer is in: long before the timeout.
    let agents = cluster("p", 5, |_| {}).await;
    let timeout = Duration::from_secs(30);
    let mut c = client(&agents[2]).await;
    let started = Instant::now();
    let (answers, summary) = ask(&mut c, request("ping", b"", timeout, ""))
        .await
        .expect("ping");
    assert!(started.elapsed() < timeout, "it ended before the timeout");
    assert_eq!(summary.asked, 5);
    assert_eq!(answered(&summary), names(&agents));
    assert!(summary.no_answer.is_empty(), "{summary:?}");
    assert_eq!(answers.len(), 5);
    for a in &answers {
        assert!(a.error.is_empty(), "{a:?}");
        let text = String::from_utf8(a.payload.clone()).expect("text");
        let incarnation = text
            .strip_prefix(&format!("name={} incarnation=", a.member))
            .unwrap_or_else(|| panic!("{a:?}"));
        assert!(incarnation.parse::<u32>().is_ok(), "{a:?}");
        assert!(a.elapsed_us <= summary.elapsed_us, "{a:?} {summary:?}");
    }

    // The same through the library's handle.
    let report: QueryReport = agents[0]
        .handle()
        .query(Query {
            timeout,
            ..Query::new("ping")
        })
        .await
        .expect("ping")
        .collect()
        .await;
    assert_eq!(report.answers.len(), 5);
    assert!(report.summary.no_answer.is_empty());
    assert!(report.summary.elapsed < timeout);
    for a in agents {
        a.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_is_named_at_the_timeout() {
    // Scenario: five agents; one is killed (no leave), and a `ping` is
    // asked at once, while the others still count it live. Four answer;
    // at the 1 s timeout the query ends naming the fifth.
    let mut agents = cluster("k", 5, |_| {}).await;
    let killed = agents.pop().expect("five");
    let killed_name = killed.name().to_string();
    // Stopped before the query goes: a node task still running on the
    // other worker thread answered it once.
    killed.kill_and_wait().await;
    let timeout = Duration::from_secs(1);
    let mut stream = agents[0]
        .handle()
        .query(Query {
            timeout,
            ..Query::new("ping")
        })
        .await
        .expect("ping");
    assert_eq!(stream.asked().len(), 5, "asked while still counted live");
    let mut answers = Vec::new();
    let summary = loop {
        match stream.next().await.expect("a summary ends it") {
            QueryEvent::Answer(a) => answers.push(a.member),
            QueryEvent::Done(s) => break s,
        }
    };
    answers.sort();
    assert_eq!(answers, names(&agents));
    assert_eq!(summary.no_answer, vec![killed_name]);
    assert_eq!(summary.answered.len(), 4);
    assert!(summary.elapsed >= timeout, "it waited for the fifth");
    assert!(stream.next().await.is_none());
    for a in agents {
        a.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_answer_comes_from_a_subscribed_client() {
    // Scenario: three agents. Client B subscribes to query `x` at `a-2`
    // and answers each query it gets; client A asks `x` through `a-1`.
    // A gets B's answer for `a-2`, and an error from the two members
    // where nobody subscribes; with a name filter only `a-2` is asked.
    let agents = cluster("a", 3, |_| {}).await;
    let mut b = client(&agents[2]).await;
    let mut queries = b
        .subscribe_queries(pb::SubscribeQueriesRequest {
            names: vec!["x".into()],
        })
        .await
        .expect("subscribe")
        .into_inner();
    let answerer = {
        let mut b = b.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Ok(Some(q)) = queries.message().await {
                let mut payload = b"B answers ".to_vec();
                payload.extend_from_slice(&q.payload);
                let taken = b
                    .answer_query(pb::AnswerQueryRequest { id: q.id, payload })
                    .await
                    .expect("answer")
                    .into_inner()
                    .accepted;
                assert!(taken, "{q:?}");
                // A second answer to the same query is ignored, and counted.
                let again = b
                    .answer_query(pb::AnswerQueryRequest {
                        id: q.id,
                        payload: b"late".to_vec(),
                    })
                    .await
                    .expect("answer again")
                    .into_inner()
                    .accepted;
                assert!(!again);
                seen.push((q.name, q.asker, q.timeout_ms));
                if seen.len() == 2 {
                    return seen;
                }
            }
            seen
        })
    };

    let mut a = client(&agents[1]).await;
    let timeout = Duration::from_secs(20);
    let (answers, summary) = ask(&mut a, request("x", b"hello", timeout, ""))
        .await
        .expect("query x");
    assert!(summary.no_answer.is_empty(), "{summary:?}");
    assert_eq!(answers.len(), 3);
    for ans in &answers {
        if ans.member == "a-2" {
            assert_eq!(ans.payload, b"B answers hello", "{ans:?}");
            assert!(ans.error.is_empty());
        } else {
            assert!(ans.payload.is_empty());
            assert!(
                ans.error.contains("nobody subscribes to query \"x\""),
                "{ans:?}"
            );
        }
    }

    let (answers, summary) = ask(&mut a, request("x", b"again", timeout, "-2$"))
        .await
        .expect("query x on a-2 only");
    assert_eq!(summary.asked, 1);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].member, "a-2");
    assert_eq!(answers[0].payload, b"B answers again");

    let seen = answerer.await.expect("the answerer ran");
    assert_eq!(
        seen,
        vec![
            ("x".to_string(), "a-1".to_string(), 20_000),
            ("x".to_string(), "a-1".to_string(), 20_000)
        ]
    );
    assert_eq!(
        status_counter(&agents[2], "transport_query_answers_ignored").await,
        2,
        "each second answer"
    );
    // An answer to a query that never was is ignored and counted too.
    let taken = b
        .answer_query(pb::AnswerQueryRequest {
            id: 987_654,
            payload: Vec::new(),
        })
        .await
        .expect("answer")
        .into_inner()
        .accepted;
    assert!(!taken);
    assert_eq!(
        status_counter(&agents[2], "transport_query_answers_ignored").await,
        3
    );
    for a in agents {
        a.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused_naming_the_limit() {
    // Scenario: three agents with small query limits (16-byte payloads,
    // two answers per query, one query under way). Each bad query is
    // refused before any member is asked, with the code and the limit's
    // name; an answer to a query no one asked is ignored and counted.
    let agents = cluster("b", 3, |c| {
        c.transport.query_max_payload = 16;
        c.transport.query_max_answers = 2;
        c.transport.query_max_concurrent = 1;
    })
    .await;
    let mut c = client(&agents[0]).await;
    let t = Duration::from_secs(10);
    let refused = |r: Result<_, tonic::Status>| match r {
        Ok(_) => panic!("not refused"),
        Err(e) => e,
    };

    let e = refused(ask(&mut c, request("ping", &[0; 17], t, "^b-[01]$")).await);
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("query_max_payload"), "{e:?}");
    let e = refused(ask(&mut c, request("ping", b"", t, "b-(")).await);
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("regular expression"), "{e:?}");
    let e = refused(ask(&mut c, request("", b"", t, "")).await);
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = refused(ask(&mut c, request("ping", b"", t, "")).await);
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("query_max_answers") && e.message().contains("3 members"),
        "{e:?}"
    );
    // Narrowed to two members, it goes.
    let (answers, summary) = ask(&mut c, request("ping", b"", t, "^b-[01]$"))
        .await
        .expect("two members");
    assert_eq!((answers.len(), summary.asked), (2, 2));

    // One query under way (a subscriber at b-0 that does not answer) is
    // the limit: the next is refused until it ends.
    let subscription = agents[0]
        .handle()
        .subscribe_queries(&["slow".to_string()])
        .await
        .expect("subscribe");
    let slow = agents[0]
        .handle()
        .query(Query {
            timeout: Duration::from_millis(800),
            filter_name: "^b-0$".into(),
            ..Query::new("slow")
        })
        .await
        .expect("the first query");
    let e = refused(ask(&mut c, request("ping", b"", t, "^b-0$")).await);
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("query_max_concurrent"), "{e:?}");
    let report = slow.collect().await;
    assert_eq!(report.summary.no_answer, vec!["b-0".to_string()]);
    ask(&mut c, request("ping", b"", t, "^b-0$"))
        .await
        .expect("the limit is free again");
    drop(subscription);

    // Subscriptions: a built-in name, no name.
    for names in [vec!["ping".to_string()], vec![]] {
        let e = c
            .subscribe_queries(pb::SubscribeQueriesRequest { names })
            .await
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }
    // An answer over the payload limit.
    let e = c
        .answer_query(pb::AnswerQueryRequest {
            id: 1,
            payload: vec![0; 17],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("query_max_payload"), "{e:?}");
    // Answers to unknown queries: through the API, and a member's reply
    // to a request this agent never sent, on its peer port.
    let before = status_counter(&agents[0], "transport_query_answers_ignored").await;
    let taken = c
        .answer_query(pb::AnswerQueryRequest {
            id: 424_242,
            payload: Vec::new(),
        })
        .await
        .expect("answer")
        .into_inner()
        .accepted;
    assert!(!taken);
    assert_eq!(
        status_counter(&agents[0], "transport_query_answers_ignored").await,
        before + 1
    );
    let reply = pb::Envelope {
        from: Some(pb::Address {
            ip: vec![127, 0, 0, 1],
            port: 9,
        }),
        body: Some(pb::envelope::Body::ClusterReply(pb::ClusterReply {
            id: 424_242,
            name: "b-1".into(),
            answer: Some(pb::cluster_reply::Answer::Query(pb::QueryAnswer::default())),
        })),
        sealed: None,
    };
    assert_eq!(send_raw(&agents[0], vec![reply]).await, (1, 0));
    eventually(
        "the stray reply is counted",
        Duration::from_secs(5),
        || async { status_counter(&agents[0], "transport_cluster_replies_ignored").await == 1 },
    )
    .await;
    for a in agents {
        a.kill();
    }
}

fn raw_query(from: [u8; 4]) -> pb::Envelope {
    pb::Envelope {
        from: Some(pb::Address {
            ip: from.to_vec(),
            port: 9,
        }),
        body: Some(pb::envelope::Body::ClusterRequest(pb::ClusterRequest {
            id: 7,
            command: Some(pb::cluster_request::Command::Query(pb::QueryCommand {
                name: "ping".into(),
                payload: Vec::new(),
                timeout_ms: 0,
            })),
        })),
        sealed: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_agent_answers_plaintext_queries_only_to_the_senders_host() {
    // Scenario: an agent without a cluster key takes a plaintext query
    // naming its own host as the sender, but refuses one naming another
    // host (the answer would go there), counted as an address mismatch;
    // key commands stay refused in plaintext (tests/key_rotation.rs). An
    // agent with a key refuses the plaintext query as unauthenticated, and
    // a keyed cluster answers queries like a keyless one.
    let plain = start("plain", None, |_| {}).await;
    assert_eq!(
        send_raw(&plain, vec![raw_query([127, 0, 0, 1])]).await,
        (1, 0)
    );
    assert_eq!(
        send_raw(&plain, vec![raw_query([10, 9, 8, 7])]).await,
        (0, 1)
    );
    let handle = plain.handle();
    let t = handle.transport_stats();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(t.rejected_address_mismatch.load(Relaxed), 1);
    assert_eq!(t.rejected_unauthenticated.load(Relaxed), 0);
    plain.kill();

    let key = ClusterKey::from_bytes(&[5; 32]).expect("32 bytes");
    let keyed = cluster("s", 3, |c| c.keyring = Some(Keyring::new(key.clone(), ""))).await;
    assert_eq!(
        send_raw(&keyed[0], vec![raw_query([127, 0, 0, 1])]).await,
        (0, 1)
    );
    assert_eq!(
        keyed[0]
            .handle()
            .transport_stats()
            .rejected_unauthenticated
            .load(Relaxed),
        1
    );
    let report = keyed[1]
        .handle()
        .query(Query::new("ping"))
        .await
        .expect("ping")
        .collect()
        .await;
    assert_eq!(report.answers.len(), 3);
    assert!(report.summary.no_answer.is_empty());
    for a in keyed {
        a.kill();
    }
}

fn raw_app_query(from: [u8; 4], id: u64) -> pb::Envelope {
    let mut env = raw_query(from);
    env.body = Some(pb::envelope::Body::ClusterRequest(pb::ClusterRequest {
        id,
        command: Some(pb::cluster_request::Command::Query(pb::QueryCommand {
            name: "slow".into(),
            payload: Vec::new(),
            timeout_ms: 30_000,
        })),
    }));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_holds_a_bounded_number_of_one_askers_queries() {
    // Scenario: an agent allows one query under way per asker, and a
    // client subscribes to `slow` there and never answers. On one peer
    // stream come two queries from the asker at 127.0.0.1:9, then one from
    // 127.0.0.2:9. The subscriber gets the first and the third: the
    // second was answered "busy" at once, not held.
    let agent = start("held", None, |c| c.transport.query_max_concurrent = 1).await;
    let mut subscription = agent
        .handle()
        .subscribe_queries(&["slow".to_string()])
        .await
        .expect("subscribe");
    let sent = vec![
        raw_app_query([127, 0, 0, 1], 1),
        raw_app_query([127, 0, 0, 1], 2),
        raw_app_query([127, 0, 0, 2], 3),
    ];
    assert_eq!(send_raw(&agent, sent).await, (3, 0));
    let first = subscription.recv().await.expect("the first query");
    let next = subscription.recv().await.expect("the next query held");
    assert_eq!(first.asker, "127.0.0.1:9");
    assert_eq!(
        next.asker, "127.0.0.2:9",
        "the second of 127.0.0.1:9 was not held"
    );
    agent.kill();
}

/// Latency of `ping` over 20 agents in this process (LAN preset, as
/// `rumour agent` runs), in gossip intervals: run with
/// `RUMOUR_QUERY_FIGURES=1 cargo test --test query -- --nocapture figures`.
/// Skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures() {
    if std::env::var_os("RUMOUR_QUERY_FIGURES").is_none() {
        return;
    }
    let n = 20;
    let mut agents = vec![Agent::start(AgentConfig::loopback("f-00", Config::lan()))
        .await
        .expect("starts")];
    for i in 1..n {
        let mut config = AgentConfig::loopback(format!("f-{i:02}"), Config::lan());
        config.join = vec![agents[0].peer_addr().to_string()];
        agents.push(Agent::start(config).await.expect("starts"));
    }
    eventually("the cluster forms", Duration::from_secs(60), || async {
        for a in &agents {
            if a.handle().status().await.map(|s| s.live_members) != Ok(n) {
                return false;
            }
        }
        true
    })
    .await;
    let interval = Config::lan().gossip_interval;
    let mut took = Vec::new();
    for i in 0..500 {
        let report = agents[i % n]
            .handle()
            .query(Query::new("ping"))
            .await
            .expect("ping")
            .collect()
            .await;
        assert_eq!(report.answers.len(), n);
        took.push(report.summary.elapsed.as_secs_f64());
    }
    took.sort_by(f64::total_cmp);
    let at = |p: f64| took[((took.len() - 1) as f64 * p).round() as usize];
    let iv = interval.as_secs_f64();
    println!(
        "ping over {n} agents, {} queries: p50 {:.2} ms ({:.3} gossip intervals), p99 {:.2} ms ({:.3}), max {:.2} ms ({:.3}); gossip interval {} ms",
        took.len(),
        at(0.5) * 1e3,
        at(0.5) / iv,
        at(0.99) * 1e3,
        at(0.99) / iv,
        at(1.0) * 1e3,
        at(1.0) / iv,
        interval.as_millis()
    );
    for a in agents {
        a.kill();
    }
}
