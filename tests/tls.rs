//! TLS over real sockets on 127.0.0.1, with certificates made in the test
//! (rcgen), never checked in.
//!
//! The client API: calls over TLS work with the CA that signed the agent's
//! certificate and fail with another; a plaintext client gets nowhere; with
//! a client CA, only clients holding a certificate it signed get in; the
//! API token is still required over TLS. The peer port: agents with mutual
//! TLS form a cluster and replicate; an agent whose certificate another CA
//! signed, or that speaks plaintext, never joins them.
//!
//! Waiting is done by polling a condition against a deadline, never by
//! sleeping a fixed time. That something does *not* happen is checked once
//! something that must happen after it has (a put replicated across the
//! cluster, failed handshakes counted).

mod support;

use support::eventually;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rumour::core::Config;
use rumour::proto::v1 as pb;
use rumour::proto::v1::rumour_client::RumourClient;
use rumour::transport::{
    Agent, AgentConfig, ApiTls, ApiToken, ClusterKey, Keyring, PeerTls, TlsCa, TlsError, TlsFile,
    TlsIdentity, Transport,
};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).expect("a CA certificate").pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) and its key,
    /// both PEM.
    fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().expect("a leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&key, &self.issuer)
            .expect("a leaf certificate");
        (cert.pem(), key.serialize_pem())
    }

    fn identity(&self, names: &[&str]) -> TlsIdentity {
        let (cert, key) = self.leaf_pem(names);
        TlsIdentity::from_pem(cert.into_bytes(), "cert", key.into_bytes(), "key")
            .expect("a fitting certificate and key")
    }

    fn tls_ca(&self) -> TlsCa {
        TlsCa::from_pem(self.pem.clone().into_bytes(), "ca").expect("a CA in PEM")
    }

    /// Mutual TLS on the peer port with a certificate of this CA.
    fn peer_tls(&self) -> PeerTls {
        PeerTls::new(self.identity(&["rumour-peer"]), self.tls_ca()).expect("peer TLS")
    }
}

fn protocol() -> Config {
    Config::local()
}

/// Time for every member to learn of a change: a few push-pull rounds.
fn convergence() -> Duration {
    protocol().push_pull_interval * 3
}

/// An agent whose API serves the certificate `ca` signed for 127.0.0.1,
/// with `client_ca` required of clients if given.
async fn api_agent(name: &str, ca: &Ca, client_ca: Option<&Ca>, token: Option<&str>) -> Agent {
    let mut config = AgentConfig::loopback(name, protocol());
    config.api_tls = Some(
        ApiTls::new(
            ca.identity(&["127.0.0.1", "localhost"]),
            client_ca.map(Ca::tls_ca),
        )
        .expect("API TLS"),
    );
    config.api_token = token.map(|t| ApiToken::new(t).expect("a token"));
    Agent::start(config).await.expect("agent starts")
}

/// A client of `agent`'s API over TLS trusting `ca`, presenting the
/// certificate `client` signed if given; the error as text if it cannot
/// even connect.
async fn tls_client(
    agent: &Agent,
    ca: &Ca,
    client: Option<&Ca>,
) -> Result<RumourClient<Channel>, String> {
    let identity = client.map(|c| c.identity(&["a-client"]));
    let tls = ca.tls_ca().client_config(identity.as_ref());
    connect(format!("https://{}", agent.api_addr()), Some(tls)).await
}

async fn connect(
    uri: String,
    tls: Option<ClientTlsConfig>,
) -> Result<RumourClient<Channel>, String> {
    let mut endpoint = Endpoint::from_shared(uri)
        .expect("an address")
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).expect("TLS settings");
    }
    // Bounded: a handshake that never ends must fail the test, not hang it.
    match tokio::time::timeout(Duration::from_secs(10), endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(RumourClient::new(channel)),
        Ok(Err(e)) => Err(chain(&e)),
        Err(_) => panic!("connecting did not finish within 10 s"),
    }
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text = format!("{text}: {cause}");
        next = cause.source();
    }
    text
}

/// Put through `client` and read it back: the error as text, if any step
/// failed. Bounded, so that a call that hangs fails the test.
async fn put_and_get(client: Result<RumourClient<Channel>, String>) -> Result<(), String> {
    let mut client = client?;
    let call = async {
        client
            .put(pb::PutRequest {
                key: "k".into(),
                value: b"v".to_vec(),
                namespace: String::new(),
            })
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        let got = client
            .get(pb::GetRequest {
                namespace: String::new(),
                key: "k".into(),
                fresh: false,
            })
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        assert_eq!(got.value, b"v");
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the calls finish within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_over_tls_work_with_the_right_ca_and_fail_with_another() {
    // Scenario: the agent's API serves a certificate that CA "ours" signed;
    // a client trusting "ours" writes and reads, one trusting "theirs" is
    // refused at the handshake, naming the certificate.
    let ours = Ca::new("ours");
    let theirs = Ca::new("theirs");
    let agent = api_agent("tls-api", &ours, None, None).await;

    put_and_get(tls_client(&agent, &ours, None).await)
        .await
        .expect("calls over TLS with the right CA");

    let refused = put_and_get(tls_client(&agent, &theirs, None).await)
        .await
        .expect_err("a client trusting another CA is refused");
    assert!(refused.contains("certificate"), "{refused}");

    // The name checked is the dialled host's: a certificate for 127.0.0.1
    // does not pass as another name.
    let tls = ours.tls_ca().client_config(None).domain_name("elsewhere");
    let refused = put_and_get(connect(format!("https://{}", agent.api_addr()), Some(tls)).await)
        .await
        .expect_err("a certificate for another name is refused");
    assert!(refused.contains("certificate"), "{refused}");

    // The refusals left the agent serving.
    put_and_get(tls_client(&agent, &ours, None).await)
        .await
        .expect("still serving");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_gets_nothing_from_a_tls_api() {
    // Scenario: a client speaks plaintext gRPC to an API that serves TLS
    // only; neither the API nor health answers it, and TLS clients still
    // get in.
    let ours = Ca::new("ours");
    let agent = api_agent("tls-plain", &ours, None, None).await;

    let refused = put_and_get(connect(format!("http://{}", agent.api_addr()), None).await)
        .await
        .expect_err("a plaintext client is refused");
    assert!(!refused.is_empty());

    let health = async {
        let channel = Endpoint::from_shared(format!("http://{}", agent.api_addr()))
            .expect("an address")
            .connect()
            .await
            .map_err(|e| chain(&e))?;
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .map_err(|s| s.to_string())
    };
    let health = tokio::time::timeout(Duration::from_secs(10), health)
        .await
        .expect("the health check finishes within 10 s");
    assert!(health.is_err(), "plaintext health answered: {health:?}");

    put_and_get(tls_client(&agent, &ours, None).await)
        .await
        .expect("TLS clients still get in");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_clients_it_signed_get_in() {
    // Scenario: the API requires client certificates signed by "clients".
    // A client without one, and one whose certificate "strangers" signed,
    // are refused; one with a certificate from "clients" gets in.
    let server = Ca::new("server");
    let clients = Ca::new("clients");
    let strangers = Ca::new("strangers");
    let agent = api_agent("tls-mutual", &server, Some(&clients), None).await;

    put_and_get(tls_client(&agent, &server, None).await)
        .await
        .expect_err("a client without a certificate is refused");
    put_and_get(tls_client(&agent, &server, Some(&strangers)).await)
        .await
        .expect_err("a client whose certificate another CA signed is refused");
    put_and_get(tls_client(&agent, &server, Some(&clients)).await)
        .await
        .expect("a client with a certificate from the client CA gets in");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_api_token_is_still_required() {
    // Scenario: an agent with TLS and a token. A TLS client without the
    // token is refused (and counted), one with it gets in.
    let ours = Ca::new("ours");
    let token = "tls-and-a-token";
    let agent = api_agent("tls-token", &ours, None, Some(token)).await;

    let refused = put_and_get(tls_client(&agent, &ours, None).await)
        .await
        .expect_err("no token, no call");
    assert!(refused.starts_with("Unauthenticated"), "{refused}");
    let stats = agent.handle().status().await.expect("status").counters;
    let refusals = stats
        .iter()
        .find(|(n, _)| *n == "transport_api_unauthenticated")
        .map(|(_, v)| *v);
    assert_eq!(refusals, Some(1), "{stats:?}");

    let mut client = tls_client(&agent, &ours, None).await.expect("connects");
    let mut put = tonic::Request::new(pb::PutRequest {
        key: "k".into(),
        value: b"v".to_vec(),
        namespace: String::new(),
    });
    put.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII"),
    );
    client.put(put).await.expect("the token opens the door");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_loopback_clients_are_still_recognised() {
    // Scenario: with --api-open-loopback, a loopback client over TLS may
    // write without the token: the agent reads the client's address from
    // inside the TLS connection.
    let ours = Ca::new("ours");
    let mut config = AgentConfig::loopback("tls-loopback", protocol());
    config.api_tls = Some(ApiTls::new(ours.identity(&["127.0.0.1"]), None).expect("API TLS"));
    config.api_token = Some(ApiToken::new("a-token").expect("a token"));
    config.api_open_loopback = true;
    let agent = Agent::start(config).await.expect("agent starts");
    put_and_get(tls_client(&agent, &ours, None).await)
        .await
        .expect("a loopback client writes without the token");
    agent.shutdown().await;
}

/// An agent with peer TLS (or, for `None`, without) and no cluster key:
/// on gRPC, since TLS covers the streams only.
async fn peer_agent(name: &str, tls: Option<PeerTls>, join: Option<&Agent>) -> Agent {
    let mut config = AgentConfig::loopback(name, protocol());
    config.peer_transport = Transport::Grpc;
    config.peer_tls = tls;
    if let Some(seed) = join {
        config.join = vec![seed.peer_addr().to_string()];
    }
    Agent::start(config).await.expect("agent starts")
}

async fn names(agent: &Agent) -> Vec<String> {
    let mut names: Vec<String> = agent
        .handle()
        .members()
        .await
        .expect("members")
        .into_iter()
        .map(|(m, _)| m.id.name().to_string())
        .collect();
    names.sort();
    names
}

/// Whether `agent` holds `key` in `owner`'s namespace.
async fn holds(agent: &Agent, owner: &str, key: &str) -> bool {
    agent.handle().get(owner, key).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_with_peer_tls_form_a_cluster_and_replicate_a_put() {
    // Scenario: a, b and c each hold a certificate that the cluster's CA
    // signed for the peer name; b and c join through a. All three list
    // each other, and a put at a reaches b and c.
    let cluster = Ca::new("cluster");
    let a = peer_agent("ptls-a", Some(cluster.peer_tls()), None).await;
    let b = peer_agent("ptls-b", Some(cluster.peer_tls()), Some(&a)).await;
    let c = peer_agent("ptls-c", Some(cluster.peer_tls()), Some(&a)).await;
    let all = vec!["ptls-a".to_string(), "ptls-b".into(), "ptls-c".into()];
    for agent in [&a, &b, &c] {
        eventually("all three list each other", convergence(), || async {
            names(agent).await == all
        })
        .await;
    }
    a.handle().put("", "greeting", b"hello").await.expect("put");
    for agent in [&b, &c] {
        eventually("the put reaches every member", convergence(), || async {
            holds(agent, "ptls-a", "greeting").await
        })
        .await;
    }
    assert!(b.handle().transport_stats().connects.load(Relaxed) > 0);
    for agent in [a, b, c] {
        agent.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_tls_on_the_udp_transport_needs_a_cluster_key() {
    // Scenario: datagrams do not go through TLS, so an agent with peer TLS
    // on UDP and no key would take unauthenticated datagrams: it refuses
    // to start, and starts with a key.
    let cluster = Ca::new("cluster");
    let mut config = AgentConfig::loopback("ptls-udp", Transport::Udp.defaults(protocol()));
    config.peer_transport = Transport::Udp;
    config.peer_tls = Some(cluster.peer_tls());
    let refused = Agent::start(config.clone()).await.err().expect("refused");
    assert!(refused.to_string().contains("cluster key"), "{refused}");
    config.keyring = Some(Keyring::new(ClusterKey::generate().expect("a key"), ""));
    Agent::start(config)
        .await
        .expect("starts with a key")
        .kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_another_ca_signed_or_without_tls_never_joins() {
    // Scenario: a and b form a cluster with certificates from "cluster".
    // x holds a certificate (with the right peer name) from "impostor", and
    // y speaks plaintext; both join through a. Neither is ever listed by a
    // or b, neither learns of them, and x's failed handshakes are counted
    // as failed connections; meanwhile a and b go on replicating.
    let cluster = Ca::new("cluster");
    let impostor = Ca::new("impostor");
    let a = peer_agent("apart-a", Some(cluster.peer_tls()), None).await;
    let b = peer_agent("apart-b", Some(cluster.peer_tls()), Some(&a)).await;
    let pair = vec!["apart-a".to_string(), "apart-b".into()];
    for agent in [&a, &b] {
        eventually("a and b list each other", convergence(), || async {
            names(agent).await == pair
        })
        .await;
    }
    let x = peer_agent("apart-x", Some(impostor.peer_tls()), Some(&a)).await;
    let y = peer_agent("apart-y", None, Some(&a)).await;

    let failures = |agent: &Agent| {
        agent
            .handle()
            .transport_stats()
            .connect_failures
            .load(Relaxed)
    };
    eventually(
        "x's handshakes with a fail, a few times",
        convergence(),
        || async { failures(&x) >= 2 },
    )
    .await;
    // Written after x and y knocked: once b holds it, a and b have been
    // talking all along.
    a.handle().put("", "after", b"knocks").await.expect("put");
    eventually("the put reaches b", convergence(), || async {
        holds(&b, "apart-a", "after").await
    })
    .await;

    assert_eq!(names(&a).await, pair);
    assert_eq!(names(&b).await, pair);
    assert_eq!(names(&x).await, vec!["apart-x".to_string()]);
    assert_eq!(names(&y).await, vec!["apart-y".to_string()]);
    assert!(!holds(&x, "apart-a", "after").await);
    assert!(!holds(&y, "apart-a", "after").await);
    assert_eq!(x.handle().transport_stats().connects.load(Relaxed), 0);
    for agent in [a, b, x, y] {
        agent.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialled_peer_must_carry_the_agreed_name_which_can_be_set() {
    // Scenario: m and n agree on the peer name "gossip.internal" instead of
    // the default, and their certificates carry it: they form a cluster.
    // z's certificate is from the cluster's CA but names "not-a-peer"; when
    // m dials z, the handshake fails on the name, so z never hears back
    // and never learns of the cluster.
    let cluster = Ca::new("cluster");
    let named = |name: &str| {
        PeerTls::new(cluster.identity(&[name]), cluster.tls_ca())
            .expect("peer TLS")
            .with_server_name("gossip.internal")
    };
    let m = peer_agent("named-m", Some(named("gossip.internal")), None).await;
    let n = peer_agent("named-n", Some(named("gossip.internal")), Some(&m)).await;
    let pair = vec!["named-m".to_string(), "named-n".into()];
    for agent in [&m, &n] {
        eventually("m and n list each other", convergence(), || async {
            names(agent).await == pair
        })
        .await;
    }

    let before = m.handle().transport_stats().connect_failures.load(Relaxed);
    let z = peer_agent("named-z", Some(named("not-a-peer")), Some(&m)).await;
    eventually(
        "m's handshakes with z fail, a few times",
        convergence(),
        || async { m.handle().transport_stats().connect_failures.load(Relaxed) >= before + 2 },
    )
    .await;
    m.handle()
        .put("", "after", b"z knocked")
        .await
        .expect("put");
    eventually("the put reaches n", convergence(), || async {
        holds(&n, "named-m", "after").await
    })
    .await;
    assert_eq!(names(&z).await, vec!["named-z".to_string()]);
    assert!(!holds(&z, "named-m", "after").await);
    for agent in [m, n, z] {
        agent.shutdown().await;
    }
}

#[test]
fn bad_tls_material_is_refused_naming_the_file_and_never_showing_it() {
    let ca = Ca::new("ca");
    let (cert, key) = ca.leaf_pem(&["127.0.0.1"]);
    let (_, other_key) = ca.leaf_pem(&["127.0.0.1"]);
    let file = |e: TlsError| (e.file(), e.to_string());

    // A key that belongs to another certificate.
    let (which, text) = file(
        TlsIdentity::from_pem(
            cert.clone().into_bytes(),
            "c.pem",
            other_key.clone().into_bytes(),
            "k.pem",
        )
        .unwrap_err(),
    );
    assert_eq!(which, TlsFile::Key, "{text}");
    assert!(text.contains("k.pem") && text.contains("c.pem"), "{text}");

    // A key file that holds a certificate, a certificate file that holds
    // a key.
    let (which, text) = file(
        TlsIdentity::from_pem(
            cert.clone().into_bytes(),
            "c.pem",
            cert.clone().into_bytes(),
            "k.pem",
        )
        .unwrap_err(),
    );
    assert_eq!(
        (which, text.as_str()),
        (
            TlsFile::Key,
            "k.pem holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"
        )
    );
    let (which, _) = file(
        TlsIdentity::from_pem(
            key.clone().into_bytes(),
            "c.pem",
            key.clone().into_bytes(),
            "k.pem",
        )
        .unwrap_err(),
    );
    assert_eq!(which, TlsFile::Cert);

    // A CA file whose certificate block holds garbage: PEM, but no
    // certificate rustls can anchor on.
    let garbage = "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
    let identity = ca.identity(&["127.0.0.1"]);
    let bad_ca = TlsCa::from_pem(garbage.as_bytes().to_vec(), "ca.pem").expect("PEM it is");
    let (which, text) = file(ApiTls::new(identity.clone(), Some(bad_ca.clone())).unwrap_err());
    assert_eq!(
        (which, text.as_str()),
        (TlsFile::Ca, "ca.pem holds no usable CA certificate")
    );
    let (which, _) = file(PeerTls::new(identity.clone(), bad_ca).unwrap_err());
    assert_eq!(which, TlsFile::Ca);

    // No key material in any message, nor in Debug (of the settings
    // either).
    let api = ApiTls::new(identity.clone(), Some(ca.tls_ca())).expect("API TLS");
    let peer = PeerTls::new(identity.clone(), ca.tls_ca()).expect("peer TLS");
    let shown = format!("{identity:?} {api:?} {peer:?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let body = |pem: &str| pem.lines().nth(1).unwrap_or_default().to_string();
    assert!(!shown.contains(&body(&key)));
    for pem in [&key, &other_key] {
        assert!(!text.contains(&body(pem)));
    }
}
