//! Deployment: joining by DNS name, and the files under `deploy/`.
//!
//! Seeds given as names: agents join through `localhost:PORT` (a name, not
//! an IP), one of them started before its seed is up; a name that does not
//! resolve at start (the first pod of a StatefulSet, before its DNS record
//! is published) leaves the agent alone until it does, then the agents
//! find each other; every address a name resolves to is tried, the
//! agent's own skipped; a malformed `--join` is a start error naming the
//! flag.
//!
//! The manifests: the Kubernetes YAML parses, its container's flags are
//! flags `rumour` accepts, its ports, probes, volume and secrets agree
//! with those flags; the systemd unit's `ExecStart` likewise.
//!
//! Waiting is done by polling a condition against a deadline, never by
//! sleeping a fixed time.

mod support;

use support::eventually;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumour::core::{Config, MemberState};
use rumour::transport::{Agent, AgentConfig, Seed, SeedError, SeedResolver, StartError};
use serde_yaml_ng::Value;

const RUMOUR: &str = env!("CARGO_BIN_EXE_rumour");

fn protocol() -> Config {
    Config::local()
}

/// Time for a lone agent to knock again (it backs off to the reconnect
/// interval) and for the two to exchange their views.
fn meeting() -> Duration {
    let c = protocol();
    c.reconnect_interval * 2 + c.push_pull_interval * 3
}

/// A free port on 127.0.0.1: bound, noted, closed, for an agent that is
/// started later on it.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

async fn sees_alive(agent: &Agent, name: &str) -> bool {
    agent.handle().members().await.is_ok_and(|ms| {
        ms.iter()
            .any(|(m, _)| m.id.name() == name && m.state == MemberState::Alive)
    })
}

async fn live(agent: &Agent) -> usize {
    agent.handle().status().await.expect("status").live_members
}

/// Whether every agent sees every other alive.
async fn formed(agents: &[&Agent]) -> bool {
    for a in agents {
        for b in agents {
            if !sees_alive(a, b.name()).await {
                return false;
            }
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_join_through_a_name_even_before_the_seed_is_up() {
    let seed_port = free_port();
    let seed_name = format!("localhost:{seed_port}");
    // Started first, through a name whose agent is not up yet.
    let mut early = AgentConfig::loopback("early", protocol());
    early.join = vec![seed_name.clone()];
    let early = Agent::start(early).await.expect("starts before its seed");
    assert_eq!(live(&early).await, 1);

    let mut seed = AgentConfig::loopback("seed", protocol());
    seed.bind = SocketAddr::from(([127, 0, 0, 1], seed_port));
    let seed = Agent::start(seed).await.expect("the seed starts");
    let mut late = AgentConfig::loopback("late", protocol());
    late.join = vec![seed_name];
    let late = Agent::start(late).await.expect("starts through a name");

    eventually("all three meet through the name", meeting(), || async {
        formed(&[&early, &seed, &late]).await
    })
    .await;
    for a in [early, seed, late] {
        a.kill();
    }
}

/// A resolver standing in for a headless service's DNS: `rumour.svc`
/// resolves to the addresses published so far (whatever port is asked),
/// nothing resolves while none is.
fn headless(published: Arc<Mutex<Vec<SocketAddr>>>) -> SeedResolver {
    SeedResolver::new(move |host, _port| {
        let answer = match (host, published.lock().unwrap().clone()) {
            ("rumour.svc", addrs) if !addrs.is_empty() => Ok(addrs),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such name (yet)",
            )),
        };
        Box::pin(async move { answer })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_published_late_is_resolved_again_until_the_lone_agents_meet() {
    let published = Arc::new(Mutex::new(Vec::new()));
    let start = |name: &str, bind: Option<SocketAddr>| {
        let mut config = AgentConfig::loopback(name, protocol());
        config.join = vec!["rumour.svc:7946".into()];
        config.resolver = headless(published.clone());
        if let Some(bind) = bind {
            config.bind = bind;
        }
        Agent::start(config)
    };
    // Both start while the name resolves to nothing: not an error.
    let a = start("pod-0", None).await.expect("starts alone");
    let b = start("pod-1", None).await.expect("starts alone");
    assert_eq!((live(&a).await, live(&b).await), (1, 1));
    assert_eq!(support::status_counter(&a, "reconnect_attempts").await, 0);

    // The records appear, each pod's own address among them.
    *published.lock().unwrap() = vec![a.peer_addr(), b.peer_addr()];
    eventually("the lone agents knock and meet", meeting(), || async {
        formed(&[&a, &b]).await
    })
    .await;
    let knocks = support::status_counter(&a, "reconnect_attempts").await
        + support::status_counter(&b, "reconnect_attempts").await;
    assert!(knocks > 0, "they met by knocking on the seeds");

    // A third pod whose name resolves first to an address nobody answers
    // on: every address is tried, not only the first, and its own is
    // skipped.
    let c_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    *published.lock().unwrap() = vec![nobody, c_addr, a.peer_addr(), b.peer_addr()];
    let c = start("pod-2", Some(c_addr)).await.expect("c starts");
    eventually(
        "the third joins past the dead address",
        meeting(),
        || async { formed(&[&a, &b, &c]).await },
    )
    .await;
    for x in [a, b, c] {
        x.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_that_stand_only_for_the_agent_or_nothing_start_it_alone() {
    // Its own address only: a headless service of one pod.
    let port = free_port();
    let mut own = AgentConfig::loopback("only", protocol());
    own.bind = SocketAddr::from(([127, 0, 0, 1], port));
    own.join = vec![format!("localhost:{port}")];
    let own = Agent::start(own).await.expect("starts alone");
    assert_eq!(live(&own).await, 1);
    own.kill();

    // A name that never resolves (RFC 6761).
    let mut nowhere = AgentConfig::loopback("nowhere", protocol());
    nowhere.join = vec!["rumour-seed.invalid:7946".into()];
    let nowhere = Agent::start(nowhere)
        .await
        .expect("a name that does not resolve yet is not fatal");
    assert_eq!(live(&nowhere).await, 1);
    // It still serves.
    nowhere.handle().put("", "k", b"v").await.expect("put");
    nowhere.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_join_is_a_start_error_naming_the_flag() {
    for (seed, why) in [
        ("localhost", SeedError::NoPort),
        ("localhost:http", SeedError::BadPort("http".into())),
        ("localhost:70000", SeedError::BadPort("70000".into())),
        (":7946", SeedError::NoHost),
    ] {
        let mut config = AgentConfig::loopback("malformed", protocol());
        config.join = vec![seed.into()];
        match Agent::start(config).await {
            Err(e @ StartError::Seed { .. }) => {
                let StartError::Seed { seed: s, reason } = &e else {
                    unreachable!()
                };
                assert_eq!((s.as_str(), reason), (seed, &why));
                assert!(e.to_string().starts_with("--join"), "{e}");
            }
            Err(e) => panic!("{seed}: another error: {e}"),
            Ok(a) => {
                a.kill();
                panic!("{seed}: started");
            }
        }
    }
    // The binary refuses it before starting anything, naming the flag.
    let out = Command::new(RUMOUR)
        .args(["agent", "--no-data-dir", "--join", "localhost"])
        .env_remove("RUMOUR_API_TOKEN")
        .env_remove("RUMOUR_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run rumour");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--join"), "{stderr}");
    assert!(stderr.contains("no port"), "{stderr}");
}

// ----- the files under deploy/ ------------------------------------------

fn deploy_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `rumour ARGS --help`.
fn help(args: &[&str]) -> String {
    let out = Command::new(RUMOUR)
        .args(args)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .expect("run rumour");
    assert!(out.status.success(), "{args:?} --help fails");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// The long flags a help text lists.
fn flags_in(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            l.split([' ', ','])
                .take_while(|w| w.starts_with('-') || w.is_empty())
                .filter(|w| w.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A command line as flags: (name, value) in order; `--a=b` and `--a b`
/// both give ("--a", Some("b")) (a value is a word that is no flag).
fn parse_flags(args: &[String]) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for a in args {
        if let Some(flag) = a.strip_prefix("--") {
            match flag.split_once('=') {
                Some((f, v)) => out.push((format!("--{f}"), Some(v.to_string()))),
                None => out.push((a.clone(), None)),
            }
        } else {
            let last = out.last_mut().expect("a value follows a flag");
            assert!(last.1.is_none(), "{a:?}: a second value for {}", last.0);
            last.1 = Some(a.clone());
        }
    }
    out
}

fn flag<'a>(flags: &'a [(String, Option<String>)], name: &str) -> &'a str {
    flags
        .iter()
        .find(|(f, _)| f == name)
        .and_then(|(_, v)| v.as_deref())
        .unwrap_or_else(|| panic!("{name} is not set"))
}

/// Check that every flag is one `rumour` accepts where it stands: the
/// global ones (before `agent`) in `rumour --help`, the agent's in
/// `rumour agent --help`. Returns (global, agent) flags.
type Flags = Vec<(String, Option<String>)>;
fn accepted(args: &[String], what: &str) -> (Flags, Flags) {
    let at = args
        .iter()
        .position(|a| a == "agent")
        .unwrap_or_else(|| panic!("{what}: no agent subcommand in {args:?}"));
    let global = parse_flags(&args[..at]);
    let agent = parse_flags(&args[at + 1..]);
    let (global_ok, agent_ok) = (flags_in(&help(&[])), flags_in(&help(&["agent"])));
    assert!(global_ok.contains("--api") && agent_ok.contains("--join"));
    for (f, _) in &global {
        assert!(global_ok.contains(f), "{what}: rumour has no flag {f}");
    }
    for (f, _) in &agent {
        assert!(agent_ok.contains(f), "{what}: rumour agent has no flag {f}");
    }
    (global, agent)
}

fn port_of(addr: &str) -> u16 {
    let (_, port) = addr.rsplit_once(':').expect("host:port");
    port.parse().expect("a port")
}

/// `$(NAME)` references substituted from `vars` (Kubernetes' expansion).
fn expand(s: &str, vars: &[(&str, &str)]) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("$({k})"), v);
    }
    assert!(!out.contains("$("), "{s}: an unknown variable");
    out
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("the YAML parses"))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("{v:?} is not a string"))
}

fn port_named(ports: &Value, name: &str, field: &str) -> u16 {
    let p = ports
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port named {name}"));
    p[field].as_u64().expect("a port number") as u16
}

#[test]
fn the_kubernetes_manifests_give_the_agent_what_it_needs() {
    let docs = documents(&deploy_file("kubernetes/rumour.yaml"));
    let service = kind(&docs, "Service");
    let set = kind(&docs, "StatefulSet");

    // A headless service that lists pods before they are ready, selecting
    // the StatefulSet's pods, and named by it.
    let spec = &service["spec"];
    assert_eq!(spec["clusterIP"], "None");
    assert_eq!(spec["publishNotReadyAddresses"], true);
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    let pod = &set["spec"]["template"];
    for (k, v) in spec["selector"].as_mapping().expect("a selector") {
        assert_eq!(&pod["metadata"]["labels"][k], v, "the selector matches");
        assert_eq!(&set["spec"]["selector"]["matchLabels"][k], v);
    }

    let containers = pod["spec"]["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let args: Vec<String> = c["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| str_of(a).to_string())
        .collect();
    let (global, agent) = accepted(&args, "the StatefulSet");

    // Every $(VAR) is the container's, from the downward API or a secret.
    let env = c["env"].as_sequence().expect("env");
    let env_of = |name: &str| -> &Value {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))
    };
    assert_eq!(
        env_of("POD_IP")["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );
    assert_eq!(
        env_of("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(
        env_of("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let vars = [
        ("POD_IP", "10.1.2.3"),
        ("POD_NAME", "rumour-0"),
        ("POD_NAMESPACE", "default"),
    ];

    // Beyond loopback: the key and the token, from a Secret, under the
    // names the agent reads; never --insecure.
    let agent_help = help(&["agent"]);
    for var in ["RUMOUR_KEY", "RUMOUR_API_TOKEN"] {
        assert!(agent_help.contains(&format!("[env: {var}")), "{var}");
        let from = &env_of(var)["valueFrom"]["secretKeyRef"];
        assert!(from["name"].is_string() && from["key"].is_string(), "{var}");
    }
    assert!(!agent.iter().any(|(f, _)| f == "--insecure"));

    // Ports: the flags, the container's and the Service's agree.
    let ports = &c["ports"];
    let peer = port_of(flag(&agent, "--bind"));
    let api = port_of(flag(&global, "--api"));
    let metrics = port_of(flag(&agent, "--metrics"));
    assert_eq!(port_named(ports, "peer", "containerPort"), peer);
    assert_eq!(port_named(ports, "api", "containerPort"), api);
    assert_eq!(port_named(ports, "metrics", "containerPort"), metrics);
    for name in ["peer", "api", "metrics"] {
        let target = spec["ports"]
            .as_sequence()
            .expect("service ports")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("the service has no port {name}"));
        assert_eq!(target["targetPort"], name);
    }
    assert_eq!(port_named(&spec["ports"], "peer", "port"), peer);

    // Bound to every interface, it advertises the pod's IP on the peer
    // port, and joins through the headless service's name on that port.
    let advertise: SocketAddr = expand(flag(&agent, "--advertise"), &vars)
        .parse()
        .expect("--advertise is an address");
    assert_eq!(advertise, SocketAddr::from(([10, 1, 2, 3], peer)));
    let join = expand(flag(&agent, "--join"), &vars);
    let service_name = str_of(&service["metadata"]["name"]);
    match join.parse::<Seed>() {
        Ok(Seed::Name { host, port }) => {
            assert!(host.starts_with(&format!("{service_name}.default.svc")));
            assert_eq!(port, peer);
        }
        other => panic!("--join {join}: {other:?}"),
    }
    assert_eq!(expand(flag(&agent, "--name"), &vars), "rumour-0");

    // Probes: gRPC health on the API port.
    for probe in ["readinessProbe", "livenessProbe"] {
        let grpc = &c[probe]["grpc"];
        assert_eq!(grpc["port"].as_u64(), Some(u64::from(api)), "{probe}");
        assert_eq!(grpc["service"], "rumour.v1.Rumour", "{probe}");
    }

    // The data dir is the persistent volume's mount.
    let data_dir = flag(&agent, "--data-dir");
    let claim = &set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    let mount = c["volumeMounts"]
        .as_sequence()
        .expect("volume mounts")
        .iter()
        .find(|m| &m["name"] == claim)
        .expect("the claim is mounted");
    assert_eq!(mount["mountPath"], data_dir);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probes_health_check_answers_serving_without_the_token() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let docs = documents(&deploy_file("kubernetes/rumour.yaml"));
    let set = kind(&docs, "StatefulSet");
    let c = &set["spec"]["template"]["spec"]["containers"][0];
    let mut config = AgentConfig::loopback("probed", protocol());
    config.api_token = Some(rumour::transport::ApiToken::new("a-token-of-sorts").unwrap());
    let agent = Agent::start(config).await.expect("starts");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", agent.api_addr()))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    for probe in ["readinessProbe", "livenessProbe"] {
        let service = str_of(&c[probe]["grpc"]["service"]).to_string();
        let r = health
            .check(HealthCheckRequest { service })
            .await
            .expect("health answers without the token")
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{probe}");
    }
    agent.kill();
}

/// `key=value` lines of a systemd unit, continuation lines joined, in
/// order (a key may repeat).
fn unit_entries(text: &str) -> Vec<(String, String)> {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let line = line.trim();
        if cur.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(line);
                logical.push(std::mem::take(&mut cur));
            }
        }
    }
    logical
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn entry<'a>(entries: &'a [(String, String)], key: &str) -> &'a str {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

#[test]
fn the_systemd_unit_runs_the_agent_hardened_with_its_secrets() {
    let entries = unit_entries(&deploy_file("rumour.service"));
    let exec: Vec<String> = entry(&entries, "ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(exec[0], "/usr/local/bin/rumour");
    // $RUMOUR_JOIN is split by systemd into flags of its own; check the
    // example the env file gives in its place.
    let env_file = deploy_file("rumour.env");
    let env: Vec<(String, String)> = env_file
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let args: Vec<String> = exec[1..]
        .iter()
        .flat_map(|a| match a.as_str() {
            "$RUMOUR_JOIN" => entry(&env, "RUMOUR_JOIN")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            _ => vec![a.replace("${RUMOUR_ADVERTISE}", entry(&env, "RUMOUR_ADVERTISE"))],
        })
        .collect();
    let (global, agent) = accepted(&args, "ExecStart");
    assert!(!args.iter().any(|a| a.contains('$')), "{args:?}");

    // Beyond loopback: the key and token come from the EnvironmentFile,
    // under the names the agent reads.
    let api: SocketAddr = flag(&global, "--api").parse().expect("--api");
    let bind: SocketAddr = flag(&agent, "--bind").parse().expect("--bind");
    assert!(!api.ip().is_loopback() && !bind.ip().is_loopback());
    assert!(!agent.iter().any(|(f, _)| f == "--insecure"));
    let agent_help = help(&["agent"]);
    for var in ["RUMOUR_KEY", "RUMOUR_API_TOKEN"] {
        assert!(agent_help.contains(&format!("[env: {var}")), "{var}");
        entry(&env, var);
    }
    assert_eq!(entry(&entries, "EnvironmentFile"), "/etc/rumour/rumour.env");
    let advertise: SocketAddr = flag(&agent, "--advertise").parse().expect("--advertise");
    assert_eq!(advertise.port(), bind.port());
    assert!(matches!(
        flag(&agent, "--join").parse::<Seed>(),
        Ok(Seed::Name { .. })
    ));

    // The data dir is the only writable path, kept by the service's user.
    let data_dir = flag(&agent, "--data-dir");
    assert_eq!(entry(&entries, "ReadWritePaths"), data_dir);
    assert_eq!(
        format!("/var/lib/{}", entry(&entries, "StateDirectory")),
        data_dir
    );
    let user = entry(&entries, "User");
    assert!(!user.is_empty() && user != "root");
    for (k, v) in [
        ("Restart", "on-failure"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(entry(&entries, k), v, "{k}");
    }
}

#[test]
fn the_container_builds_locked_and_runs_unprivileged() {
    let file = deploy_file("Dockerfile");
    let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    let froms = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(froms, 2, "multi-stage: a build and a runtime image");
    assert!(lines
        .iter()
        .any(|l| l.contains("cargo build --release --locked")));
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "{user}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("ENTRYPOINT") && l.contains("rumour")));
}
