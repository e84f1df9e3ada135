//! Access control of the client API over real sockets on 127.0.0.1: an
//! agent started with an API token refuses every `rumour.v1.Rumour` call
//! that lacks it (`UNAUTHENTICATED`, counted, nothing changed), serves the
//! calls that carry it, and keeps gRPC health open; `api_open_loopback`
//! spares loopback reads and writes but not `Shutdown`, `Leave`, `Join` or
//! the key calls;
//! an API beyond loopback without a token does not start.
//!
//! No test sleeps: each call is answered before the next is made, and the
//! state is read back through the agent's own handle.

use rumour::core::Config;
use rumour::proto::v1 as pb;
use rumour::proto::v1::rumour_client::RumourClient;
use rumour::transport::{Agent, AgentConfig, ApiError, ApiToken, StartError};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const TOKEN: &str = "correct-horse-battery-staple";

async fn start(token: Option<&str>, open_loopback: bool) -> Agent {
    let mut config = AgentConfig::loopback("guarded", Config::local());
    config.api_token = token.map(|t| ApiToken::new(t).expect("a valid token"));
    config.api_open_loopback = open_loopback;
    Agent::start(config).await.expect("agent starts")
}

async fn client(agent: &Agent) -> RumourClient<Channel> {
    RumourClient::connect(format!("http://{}", agent.api_addr()))
        .await
        .expect("client connects")
}

/// `message` with `authorization: Bearer TOKEN` if a token is given.
fn req<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

/// Every call of the client API, each with `token`: what each answered.
/// Each would change something (or read something) if it were let through.
async fn every_call(
    c: &mut RumourClient<Channel>,
    token: Option<&str>,
) -> Vec<(&'static str, Status)> {
    fn refused<T>(r: Result<T, Status>) -> Status {
        match r {
            Ok(_) => Status::ok("answered"),
            Err(s) => s,
        }
    }
    let put = pb::PutRequest {
        namespace: String::new(),
        key: "k".into(),
        value: b"v".to_vec(),
    };
    vec![
        ("Put", refused(c.put(req(put, token)).await)),
        (
            "Get",
            refused(
                c.get(req(
                    pb::GetRequest {
                        namespace: String::new(),
                        key: "k".into(),
                        fresh: false,
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "Delete",
            refused(
                c.delete(req(
                    pb::DeleteRequest {
                        namespace: String::new(),
                        key: "k".into(),
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "List",
            refused(
                c.list(req(
                    pb::ListRequest {
                        namespace: String::new(),
                        prefix: String::new(),
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "Members",
            refused(
                c.members(req(pb::MembersRequest { all: true }, token))
                    .await,
            ),
        ),
        (
            "Status",
            refused(c.status(req(pb::StatusRequest {}, token)).await),
        ),
        (
            "Join",
            refused(
                c.join(req(
                    pb::JoinRequest {
                        addresses: vec!["127.0.0.1:9".into()],
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "Leave",
            refused(c.leave(req(pb::LeaveRequest {}, token)).await),
        ),
        (
            "Watch",
            refused(c.watch(req(pb::WatchRequest::default(), token)).await),
        ),
        (
            "PublishMetadata",
            refused(
                c.publish_metadata(req(
                    pb::PublishMetadataRequest {
                        value: b"m".to_vec(),
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "GetMetadata",
            refused(c.get_metadata(req(pb::GetMetadataRequest {}, token)).await),
        ),
        (
            "SendEvent",
            refused(
                c.send_event(req(
                    pb::SendEventRequest {
                        name: "e".into(),
                        payload: Vec::new(),
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "ListKeys",
            refused(
                c.list_keys(req(pb::ListKeysRequest { timeout_ms: 0 }, token))
                    .await,
            ),
        ),
        ("InstallKey", refused(c.install_key(key_req(token)).await)),
        ("UseKey", refused(c.use_key(key_req(token)).await)),
        ("RemoveKey", refused(c.remove_key(key_req(token)).await)),
        (
            "Query",
            refused(
                c.query(req(
                    pb::QueryRequest {
                        name: "ping".into(),
                        ..Default::default()
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "SubscribeQueries",
            refused(
                c.subscribe_queries(req(
                    pb::SubscribeQueriesRequest {
                        names: vec!["x".into()],
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "AnswerQuery",
            refused(
                c.answer_query(req(
                    pb::AnswerQueryRequest {
                        id: 1,
                        payload: Vec::new(),
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "Forget",
            refused(
                c.forget(req(
                    pb::ForgetRequest {
                        name: "gone".into(),
                    },
                    token,
                ))
                .await,
            ),
        ),
        (
            "Explain",
            refused(
                c.explain(req(pb::ExplainRequest { name: "a".into() }, token))
                    .await,
            ),
        ),
        (
            "Shutdown",
            refused(c.shutdown(req(pb::ShutdownRequest {}, token)).await),
        ),
    ]
}

/// A key call's request, with a well-formed key.
fn key_req(token: Option<&str>) -> Request<pb::KeyRequest> {
    let key = rumour::transport::ClusterKey::from_bytes(&[7; 32]).unwrap();
    req(
        pb::KeyRequest {
            key: key.to_base64(),
            timeout_ms: 0,
        },
        token,
    )
}

/// The agent's `api_unauthenticated` counter, read through its handle.
async fn refusals(agent: &Agent) -> u64 {
    agent
        .handle()
        .status()
        .await
        .expect("status")
        .counters
        .into_iter()
        .find(|(k, _)| k == "transport_api_unauthenticated")
        .expect("the counter is reported")
        .1
}

/// Nothing any refused call could have done has happened: no entry, no
/// metadata, no event (entry, metadata or user) seen by `events`, no
/// message sent (a join sends one at once), not left, still running. The
/// status call goes through the node's task after anything the calls did,
/// so what they did would show by then.
async fn unchanged(
    agent: &Agent,
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<rumour::transport::Sequenced>>,
) {
    let h = agent.handle();
    let s = h.status().await.expect("the agent still serves");
    assert!(!s.left, "a refused leave left");
    assert_eq!(s.members, 1, "a refused join added a member");
    let out = s
        .counters
        .iter()
        .find(|(k, _)| k == "messages_out")
        .unwrap()
        .1;
    assert_eq!(out, 0, "a refused call sent a message");
    let (_, entries) = h.list("", "").await.unwrap();
    assert!(entries.is_empty(), "{entries:?}");
    assert_eq!(h.metadata().await.unwrap_err(), ApiError::NoMetadata);
    assert!(events.try_recv().is_err(), "a refused call raised an event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_token_every_call_is_refused_counted_and_changes_nothing() {
    let agent = start(Some(TOKEN), false).await;
    let mut c = client(&agent).await;
    let mut events = agent.handle().subscribe();
    assert_eq!(refusals(&agent).await, 0);

    for token in [None, Some("wrong"), Some("correct-horse-battery-stapl")] {
        for (method, s) in every_call(&mut c, token).await {
            assert_eq!(
                s.code(),
                Code::Unauthenticated,
                "{method} with {token:?}: {s:?}"
            );
            assert!(!s.message().contains(TOKEN), "{method}: {}", s.message());
        }
        unchanged(&agent, &mut events).await;
    }
    // A header that is not a bearer token is refused too.
    let mut r = Request::new(pb::StatusRequest {});
    r.metadata_mut()
        .insert("authorization", TOKEN.parse().unwrap());
    assert_eq!(c.status(r).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(refusals(&agent).await, 3 * 22 + 1);

    // With the token, the calls are served.
    let v = c
        .put(req(
            pb::PutRequest {
                namespace: String::new(),
                key: "k".into(),
                value: b"v".to_vec(),
            },
            Some(TOKEN),
        ))
        .await
        .expect("put with the token")
        .into_inner()
        .version;
    let got = c
        .get(req(
            pb::GetRequest {
                namespace: String::new(),
                key: "k".into(),
                fresh: false,
            },
            Some(TOKEN),
        ))
        .await
        .expect("get with the token")
        .into_inner();
    assert_eq!((got.value.as_slice(), got.version), (&b"v"[..], v));
    let status = c
        .status(req(pb::StatusRequest {}, Some(TOKEN)))
        .await
        .expect("status with the token")
        .into_inner();
    assert_eq!(
        status.counters.get("transport_api_unauthenticated"),
        Some(&(3 * 22 + 1))
    );
    // The token shows nowhere in what the agent reports.
    let shown = format!("{status:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    let mut config = AgentConfig::loopback("x", Config::local());
    config.api_token = Some(ApiToken::new(TOKEN).unwrap());
    assert!(!format!("{config:?}").contains(TOKEN));

    c.shutdown(req(pb::ShutdownRequest {}, Some(TOKEN)))
        .await
        .expect("shutdown with the token");
    agent.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_stays_open_without_the_token() {
    let agent = start(Some(TOKEN), false).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", agent.api_addr()))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    let r = health
        .check(HealthCheckRequest {
            service: "rumour.v1.Rumour".into(),
        })
        .await
        .expect("health answers without a token")
        .into_inner();
    assert_eq!(r.status(), ServingStatus::Serving);
    assert_eq!(refusals(&agent).await, 0);
    agent.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loopback_serves_reads_and_writes_but_not_shutdown_leave_join_or_keys() {
    let agent = start(Some(TOKEN), true).await;
    let mut c = client(&agent).await;

    // Loopback reads and writes need no token.
    c.put(req(
        pb::PutRequest {
            namespace: String::new(),
            key: "k".into(),
            value: b"v".to_vec(),
        },
        None,
    ))
    .await
    .expect("a loopback put without the token");
    let got = c
        .get(req(
            pb::GetRequest {
                namespace: String::new(),
                key: "k".into(),
                fresh: false,
            },
            None,
        ))
        .await
        .expect("a loopback get without the token")
        .into_inner();
    assert_eq!(got.value, b"v");

    // Shutdown, Leave and Join still need it.
    for token in [None, Some("wrong")] {
        let e = c
            .join(req(
                pb::JoinRequest {
                    addresses: vec!["127.0.0.1:9".into()],
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        let e = c.leave(req(pb::LeaveRequest {}, token)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        let e = c
            .shutdown(req(pb::ShutdownRequest {}, token))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        // So do the key calls, listing included.
        let e = c
            .list_keys(req(pb::ListKeysRequest { timeout_ms: 0 }, token))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        let e = c.install_key(key_req(token)).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    }
    assert_eq!(refusals(&agent).await, 10);
    let s = agent.handle().status().await.expect("still running");
    assert!(!s.left);
    assert_eq!(s.members, 1);

    // With the token they work.
    c.leave(req(pb::LeaveRequest {}, Some(TOKEN)))
        .await
        .expect("leave with the token");
    c.shutdown(req(pb::ShutdownRequest {}, Some(TOKEN)))
        .await
        .expect("shutdown with the token");
    agent.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_beyond_loopback_needs_a_token_or_insecure() {
    let mut config = AgentConfig::loopback("wide", Config::local());
    config.api = "0.0.0.0:0".parse().unwrap();
    match Agent::start(config.clone()).await {
        Err(e @ StartError::InsecureApi(_)) => {
            assert!(e.to_string().contains("--api-token"), "{e}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an open API beyond loopback started"),
    }
    let mut insecure = config.clone();
    insecure.insecure_api = true;
    Agent::start(insecure)
        .await
        .expect("starts with insecure")
        .kill();
    let mut guarded = config;
    guarded.api_token = Some(ApiToken::new(TOKEN).unwrap());
    Agent::start(guarded)
        .await
        .expect("starts with a token")
        .kill();
}
