//! End-to-end tests of the `rumour` binary as a user drives it: real agent
//! processes on 127.0.0.1 (`--preset local`), real client command
//! processes, assertions on their stdout, stderr and exit codes.
//!
//! Waiting is done by re-running a client command until its output says
//! what we wait for, against a deadline far above the local preset's
//! timings (gossip every 100 ms, probes every 500 ms, suspicion 2 to 6 s,
//! push-pull every 5 s), never by sleeping a fixed time and hoping. Every
//! agent process is owned by a guard that kills and reaps it when the test
//! ends, passed or panicked.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumour::transport::Transport;
use serde_json::Value;

/// Each listed test, `fn NAME(t: Transport)`, runs once per peer
/// transport, as `NAME::grpc` and `NAME::udp`. The rest run on the default
/// (gRPC) only: they drive the client commands, the config and the data
/// dir, which do not depend on how peers talk.
macro_rules! over_each_transport {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[test]
            fn grpc() {
                super::$test(super::Transport::Grpc)
            }
            #[test]
            fn udp() {
                super::$test(super::Transport::Udp)
            }
        }
    )*};
}

over_each_transport!(
    three_agents_form_a_cluster_and_replicate_a_put,
    sigterm_leaves_the_cluster_and_exits_zero,
    agents_keyed_by_flag_and_by_config_file_form_a_cluster,
);

/// The agent flags that choose transport `t`.
fn transport_flag(t: Transport) -> [&'static OsStr; 2] {
    ["--transport".as_ref(), t.name().as_ref()]
}

/// The binary under test.
const RUMOUR: &str = env!("CARGO_BIN_EXE_rumour");

/// How long a cluster may take to agree on something: membership and
/// replication take well under a second with the local preset, failure
/// handling a few seconds; the rest is slack for a loaded machine.
const CONVERGE: Duration = Duration::from_secs(30);
/// How long an agent may take to start serving its client API.
const START: Duration = Duration::from_secs(20);
/// How long an agent may take to exit after SIGTERM (or a config error):
/// leave, a second of grace for the services, slack for a loaded machine.
const EXIT: Duration = Duration::from_secs(15);
/// How often a condition is re-checked.
const POLL: Duration = Duration::from_millis(75);

/// A port nothing listens on right now: bind port 0, read it, let it go.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
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
            std::env::temp_dir().join(format!("rumour-cli-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the scratch dir");
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process that is killed and reaped when dropped, unless it has
/// already exited.
struct Guard(Child);

impl Guard {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// The exit status if the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("query the child's status")
    }

    /// Wait up to `within` for the process to exit.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// What a client command did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Everything it did, for failure messages.
    fn show(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Run `rumour ARGS... --api API` to completion.
fn rumour(api: &str, args: &[&str]) -> Run {
    let out = Command::new(RUMOUR)
        .args(args)
        .args(["--api", api])
        .env_remove("RUMOUR_API")
        .env_remove("RUMOUR_API_TOKEN")
        .env_remove("RUMOUR_CA")
        .env_remove("RUMOUR_CLIENT_CERT")
        .env_remove("RUMOUR_CLIENT_KEY")
        .env_remove("RUMOUR_TLS_SERVER_NAME")
        .stdin(Stdio::null())
        .output()
        .expect("run the rumour binary");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Re-run `check` every [`POLL`] until it returns `Ok` or `within` passes;
/// on timeout, fail with the last thing it reported.
fn eventually<T>(what: &str, within: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if started.elapsed() >= within => {
                panic!(
                    "timed out after {:.1} s waiting for {what}; last seen:\n{last}",
                    started.elapsed().as_secs_f64()
                )
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// A running `rumour agent` process.
struct Agent {
    name: String,
    /// Client API address, `127.0.0.1:port`.
    api: String,
    /// Peer address, `127.0.0.1:port`.
    peer: String,
    /// Where its stderr goes.
    log: PathBuf,
    /// Its API token, if it was started with one.
    token: Option<String>,
    /// Flags every client command against it needs (say `--ca FILE`).
    client: Vec<String>,
    process: Guard,
}

/// `rumour agent --name NAME --bind PEER --api API --preset local`, quiet
/// logs to `log`, plus `extra` flags. Its default data dir is under the
/// log's dir (`XDG_DATA_HOME`), never under the user's home.
fn agent_command(name: &str, peer: &str, api: &str, log: &Path, extra: &[&OsStr]) -> Command {
    let mut cmd = Command::new(RUMOUR);
    cmd.args(["agent", "--name", name, "--preset", "local"])
        .args(["--bind", peer, "--api", api])
        .args(extra)
        .env("RUST_LOG", "warn")
        .env("XDG_DATA_HOME", log.parent().expect("the log is in a dir"))
        .env_remove("RUMOUR_API")
        .env_remove("RUMOUR_API_TOKEN")
        .env_remove("RUMOUR_KEY")
        .env_remove("RUMOUR_LABEL")
        .env_remove("RUMOUR_DATA_DIR")
        .env_remove("RUMOUR_TLS_CERT")
        .env_remove("RUMOUR_TLS_KEY")
        .env_remove("RUMOUR_TLS_CA")
        .env_remove("RUMOUR_PEER_TLS_CERT")
        .env_remove("RUMOUR_PEER_TLS_KEY")
        .env_remove("RUMOUR_PEER_TLS_CA")
        .env_remove("RUMOUR_PEER_TLS_NAME")
        .env_remove("RUMOUR_CA")
        .env_remove("RUMOUR_CLIENT_CERT")
        .env_remove("RUMOUR_CLIENT_KEY")
        .env_remove("RUMOUR_TLS_SERVER_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("create the agent's log"));
    cmd
}

impl Agent {
    /// Start an agent named `name` (joining through `join`, if any) and
    /// wait until its client API answers as that agent. Ports are picked
    /// free just before the start; if one was taken in between, the agent
    /// exits and is started again on other ports.
    fn start(dir: &Path, name: &str, join: Option<&Agent>) -> Agent {
        Agent::start_with(dir, name, join, &[])
    }

    /// [`Agent::start`] with `extra` agent flags.
    fn start_with(dir: &Path, name: &str, join: Option<&Agent>, extra: &[&OsStr]) -> Agent {
        Agent::start_for(dir, name, join, extra, &[])
    }

    /// [`Agent::start_with`], where every client command against the
    /// agent needs the flags `client` (say `--ca FILE` for an agent that
    /// serves TLS).
    fn start_for(
        dir: &Path,
        name: &str,
        join: Option<&Agent>,
        extra: &[&OsStr],
        client: &[&str],
    ) -> Agent {
        let mut last = String::new();
        for attempt in 0..5 {
            let api = format!("127.0.0.1:{}", free_port());
            let peer = format!("127.0.0.1:{}", free_port());
            let log = dir.join(format!("{name}.{attempt}.log"));
            let mut cmd = agent_command(name, &peer, &api, &log, extra);
            if let Some(seed) = join {
                cmd.args(["--join", &seed.peer]);
            }
            let token = extra
                .iter()
                .position(|f| *f == "--api-token")
                .and_then(|i| extra.get(i + 1))
                .map(|t| t.to_string_lossy().into_owned());
            let mut agent = Agent {
                name: name.to_string(),
                api,
                peer,
                log,
                token,
                client: client.iter().map(|f| f.to_string()).collect(),
                process: Guard(cmd.spawn().expect("spawn rumour agent")),
            };
            match agent.wait_ready() {
                Ok(()) => return agent,
                Err(e) if e.contains("cannot listen") => last = e,
                Err(e) => panic!("agent {name} did not start: {e}"),
            }
        }
        panic!("agent {name} did not start in 5 attempts: {last}")
    }

    /// Wait until `rumour status` against this agent's API names it, or
    /// the process exits.
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.process.exited() {
                return Err(format!("it exited ({status}); stderr:\n{}", self.stderr()));
            }
            let run = self.run(&["status", "--format", "json"]);
            let status: Option<Value> = if run.ok() {
                serde_json::from_str(&run.stdout).ok()
            } else {
                None
            };
            if let Some(status) = status {
                // Another agent holding this port would answer with its name.
                if status["name"] == self.name.as_str()
                    && status["peer_address"] == self.peer.as_str()
                {
                    return Ok(());
                }
            }
            if started.elapsed() >= START {
                return Err(format!(
                    "no answer as {} at {} within {:?}; last status:\n{}\nagent stderr:\n{}",
                    self.name,
                    self.api,
                    START,
                    run.show(),
                    self.stderr()
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// What the agent wrote to stderr so far.
    fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `rumour ARGS... --api <this agent>` (with `--token` if the agent
    /// has one).
    fn run(&self, args: &[&str]) -> Run {
        let mut with: Vec<&str> = self.client.iter().map(String::as_str).collect();
        if let Some(t) = &self.token {
            with.extend(["--token", t]);
        }
        with.extend_from_slice(args);
        rumour(&self.api, &with)
    }
}

/// `rumour members` (table) parsed into (name, address, status) rows, after
/// checking the header; `Err` carries the output when it is not a table.
fn members_table(run: &Run) -> Result<Vec<(String, String, String)>, String> {
    if !run.ok() || !run.stderr.is_empty() {
        return Err(run.show());
    }
    let mut lines = run.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    if header != ["NAME", "ADDRESS", "STATUS", "INCARNATION"] {
        return Err(format!("unexpected header {header:?}\n{}", run.show()));
    }
    lines
        .map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [name, address, status, incarnation] if incarnation.parse::<u32>().is_ok() => {
                    Ok((name.to_string(), address.to_string(), status.to_string()))
                }
                _ => Err(format!("malformed row {line:?}\n{}", run.show())),
            },
        )
        .collect()
}

/// Wait until `observer`'s `rumour members` table shows exactly `expected`
/// (agent, status) pairs, with the agents' peer addresses.
fn wait_members(observer: &Agent, expected: &[(&Agent, &str)]) {
    let mut want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, s)| (a.name.clone(), a.peer.clone(), s.to_string()))
        .collect();
    want.sort();
    eventually(
        &format!("{}'s members to be {want:?}", observer.name),
        CONVERGE,
        || {
            let run = observer.run(&["members"]);
            let mut rows = members_table(&run)?;
            rows.sort();
            if rows == want {
                Ok(())
            } else {
                Err(run.show())
            }
        },
    );
}

/// The single `error: ...` line a failed client command prints on stderr
/// (asserting that there is exactly one).
fn one_error_line(run: &Run) -> &str {
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line:\n{}", run.show());
    assert!(run.stderr.ends_with('\n'), "{}", run.show());
    assert!(lines[0].starts_with("error: "), "{}", run.show());
    lines[0]
}

fn three_agents_form_a_cluster_and_replicate_a_put(t: Transport) {
    let dir = Scratch::new("form");
    let flag = transport_flag(t);
    let a1 = Agent::start_with(dir.path(), "form-1", None, &flag);
    let a2 = Agent::start_with(dir.path(), "form-2", Some(&a1), &flag);
    let a3 = Agent::start_with(dir.path(), "form-3", Some(&a1), &flag);
    let all = [(&a1, "alive"), (&a2, "alive"), (&a3, "alive")];
    for observer in [&a1, &a2, &a3] {
        wait_members(observer, &all);
    }

    let put = a1.run(&["put", "greeting", "hello"]);
    assert!(put.ok() && put.stderr.is_empty(), "{}", put.show());
    let version = put
        .stdout
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix("version "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(version.is_some(), "want `version N`:\n{}", put.show());

    // A1's own replica has it at once; A3's once the write has spread.
    let own = a1.run(&["get", "greeting"]);
    assert!(own.ok(), "{}", own.show());
    assert_eq!(own.stdout, "hello\n");
    eventually("A3 to replicate A1's greeting", CONVERGE, || {
        let run = a3.run(&["get", "--node", &a1.name, "greeting"]);
        if run.ok() && run.stdout == "hello\n" && run.stderr.is_empty() {
            Ok(())
        } else {
            Err(run.show())
        }
    });
    let verbose = a3.run(&["get", "-v", "--node", &a1.name, "greeting"]);
    assert!(verbose.ok(), "{}", verbose.show());
    assert_eq!(verbose.stdout, "hello\n");
    assert_eq!(
        verbose.stderr,
        format!(
            "namespace={} version={} source=replica\n",
            a1.name,
            version.unwrap()
        )
    );

    let json = a1.run(&["members", "--format", "json"]);
    assert!(json.ok() && json.stderr.is_empty(), "{}", json.show());
    let v: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("members --format json is not JSON ({e}):\n{}", json.show()));
    let members = v.as_array().expect("a JSON array");
    assert_eq!(members.len(), 3, "{}", json.show());
    let mut names: Vec<&str> = members
        .iter()
        .map(|m| {
            assert_eq!(m["status"], "alive", "{m}");
            m["name"].as_str().expect("a name")
        })
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["form-1", "form-2", "form-3"]);
}

fn sigterm_leaves_the_cluster_and_exits_zero(t: Transport) {
    let dir = Scratch::new("term");
    let flag = transport_flag(t);
    let a1 = Agent::start_with(dir.path(), "term-1", None, &flag);
    let mut a2 = Agent::start_with(dir.path(), "term-2", Some(&a1), &flag);
    let a3 = Agent::start_with(dir.path(), "term-3", Some(&a1), &flag);
    for observer in [&a1, &a2, &a3] {
        wait_members(observer, &[(&a1, "alive"), (&a2, "alive"), (&a3, "alive")]);
    }

    let kill = Command::new("kill")
        .args(["-TERM", &a2.process.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM failed: {kill}");
    let sent = Instant::now();
    let status = a2.process.wait_exit(EXIT).unwrap_or_else(|| {
        panic!(
            "agent did not exit within {EXIT:?} of SIGTERM; stderr:\n{}",
            a2.stderr()
        )
    });
    eprintln!(
        "term-2 exited {status} {:.2} s after SIGTERM",
        sent.elapsed().as_secs_f64()
    );
    assert_eq!(
        status.code(),
        Some(0),
        "want exit 0 after SIGTERM; stderr:\n{}",
        a2.stderr()
    );

    for observer in [&a1, &a3] {
        wait_members(observer, &[(&a1, "alive"), (&a2, "left"), (&a3, "alive")]);
    }
}

#[test]
fn a_client_without_an_agent_fails_with_one_line() {
    let api = format!("127.0.0.1:{}", free_port());
    for args in [
        &["members"][..],
        &["status"],
        &["put", "k", "v"],
        &["get", "k"],
    ] {
        let started = Instant::now();
        let run = rumour(&api, args);
        assert_eq!(run.code, Some(1), "rumour {args:?}:\n{}", run.show());
        assert!(run.stdout.is_empty(), "rumour {args:?}:\n{}", run.show());
        let line = one_error_line(&run);
        assert!(
            line.starts_with(&format!("error: cannot reach the rumour agent at {api}")),
            "rumour {args:?}:\n{}",
            run.show()
        );
        // Connection refused is immediate: no waiting out the connect timeout.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "rumour {args:?} took {:?}",
            started.elapsed()
        );
    }
}

/// Run `rumour agent --config FILE` with `text` as the file, which must
/// be rejected: the process exits non-zero, saying why on stderr.
fn rejected_config(dir: &Path, file: &str, text: &str) -> (Option<i32>, String) {
    let path = dir.join(file);
    fs::write(&path, text).expect("write the config file");
    let (code, stderr) = refused_agent(dir, "config-1", &["--config".as_ref(), path.as_ref()]);
    assert!(
        code != Some(0),
        "config {text:?} was accepted; stderr:\n{stderr}"
    );
    (code, stderr)
}

#[test]
fn a_bad_config_file_stops_the_agent_naming_the_field() {
    let dir = Scratch::new("config");

    let (code, stderr) = rejected_config(dir.path(), "unknown.toml", "fan_out = 3\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("unknown field `fan_out`"), "{stderr}");

    let (code, stderr) = rejected_config(dir.path(), "invalid.toml", "fanout = 0\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("`fanout`"), "{stderr}");
    assert!(!stderr.contains("unknown field"), "{stderr}");

    let (code, stderr) = rejected_config(dir.path(), "syntax.toml", "fanout = \n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");

    let missing = dir.path().join("missing.toml");
    let out = Command::new(RUMOUR)
        .args([
            "agent", "--name", "config-2", "--preset", "local", "--config",
        ])
        .arg(&missing)
        .env_remove("RUMOUR_API")
        .output()
        .expect("run rumour agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn a_bad_transport_stops_the_agent_naming_it() {
    let dir = Scratch::new("transport");
    let (code, stderr) = refused_agent(
        dir.path(),
        "transport-1",
        &["--transport".as_ref(), "quic".as_ref()],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--transport") && stderr.contains("quic"),
        "{stderr}"
    );

    let (code, stderr) = rejected_config(dir.path(), "quic.toml", "transport = \"quic\"\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("quic") && stderr.contains("grpc or udp"),
        "{stderr}"
    );

    // The peer port's number taken on UDP: a clear error at start. The
    // agent binds TCP first, so the port's TCP twin must be free: one whose
    // twin is taken (by another test, say) is passed over.
    let (_taken, peer) = (0..100)
        .find_map(|_| {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
            let addr = udp.local_addr().expect("its address");
            std::net::TcpListener::bind(addr)
                .is_ok()
                .then(|| (udp, addr.to_string()))
        })
        .expect("a UDP port whose TCP twin is free");
    let (code, stderr) = refused_agent_on(
        dir.path(),
        "transport-2",
        &peer,
        &transport_flag(Transport::Udp),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {peer} (peers, UDP)")),
        "{stderr}"
    );
}

#[test]
fn a_valid_config_file_is_applied_over_the_preset() {
    let dir = Scratch::new("goodconfig");
    let path = dir.path().join("good.toml");
    fs::write(&path, "fanout = 5\n").expect("write the config file");
    let agent = Agent::start_with(
        dir.path(),
        "goodconfig-1",
        None,
        &["--config".as_ref(), path.as_ref()],
    );
    let run = agent.run(&["status", "--format", "json", "--config"]);
    assert!(run.ok(), "{}", run.show());
    let v: Value = serde_json::from_str(&run.stdout).expect("status JSON");
    assert_eq!(v["config"]["fanout"], "5", "{}", run.show());
    // The rest comes from the local preset.
    assert_eq!(
        v["config"]["gossip_interval"],
        "\"100ms\"",
        "{}",
        run.show()
    );
}

#[test]
fn reading_an_unknown_namespace_is_one_error_line() {
    let dir = Scratch::new("ns");
    let a = Agent::start(dir.path(), "ns-1", None);

    let run = a.run(&["get", "--node", "nobody", "k"]);
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(run.stdout.is_empty(), "{}", run.show());
    let line = one_error_line(&run);
    assert!(
        line.contains("namespace") && line.contains("\"nobody\""),
        "{}",
        run.show()
    );

    let run = a.run(&["keys", "--node", "nobody"]);
    assert_eq!(run.code, Some(1), "{}", run.show());
    let line = one_error_line(&run);
    assert!(
        line.contains("namespace") && line.contains("\"nobody\""),
        "{}",
        run.show()
    );

    // A missing key of the agent's own namespace names the key instead.
    let run = a.run(&["get", "k"]);
    assert_eq!(run.code, Some(1), "{}", run.show());
    let line = one_error_line(&run);
    assert_eq!(
        line,
        format!("error: no key \"k\" in namespace \"{}\"", a.name),
        "{}",
        run.show()
    );
}

#[test]
fn metrics_are_served_for_prometheus() {
    let dir = Scratch::new("metrics");
    let metrics = format!("127.0.0.1:{}", free_port());
    let agent = Agent::start_with(
        dir.path(),
        "metrics-1",
        None,
        &["--metrics".as_ref(), metrics.as_ref()],
    );
    let put = agent.run(&["put", "k", "v"]);
    assert!(put.ok(), "{}", put.show());
    // The exporter is refreshed once a second: poll until it shows the
    // member gauge and the counters.
    let body = eventually("metrics are served", START, || {
        use std::io::{Read, Write};
        let mut conn =
            std::net::TcpStream::connect(&metrics).map_err(|e| format!("connect: {e}"))?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        conn.read_to_string(&mut body).map_err(|e| e.to_string())?;
        if body.contains("rumour_live_members 1") && body.contains("rumour_messages_in_total") {
            Ok(body)
        } else {
            Err(body)
        }
    });
    assert!(
        body.contains("rumour_transport_rejected_malformed_total 0"),
        "{body}"
    );
    assert!(
        body.contains("rumour_transport_rejected_unauthenticated_total 0"),
        "{body}"
    );
}

#[test]
fn a_client_needs_the_token_of_an_agent_started_with_one() {
    let dir = Scratch::new("token");
    let token = "T0ken-for-the-cli-test";
    let agent = Agent::start_with(
        dir.path(),
        "token-1",
        None,
        &["--api-token".as_ref(), token.as_ref()],
    );

    let put = rumour(&agent.api, &["--token", token, "put", "k", "v"]);
    assert!(put.ok(), "{}", put.show());
    assert_eq!(put.stdout.trim(), "version 1", "{}", put.show());

    for args in [
        &["put", "k", "w"][..],
        &["--token", "wrong", "put", "k", "w"][..],
    ] {
        let run = rumour(&agent.api, args);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.show());
        assert!(run.stdout.is_empty(), "{}", run.show());
        let line = one_error_line(&run);
        assert!(line.contains("--token"), "{}", run.show());
        assert!(!line.contains(token), "{}", run.show());
    }

    // The token from the environment works too; the refused puts changed
    // nothing.
    let out = Command::new(RUMOUR)
        .args(["get", "k", "--api", &agent.api])
        .env("RUMOUR_API_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .expect("run rumour get");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\n");

    let run = agent.run(&["status", "--format", "json", "--config"]);
    assert!(run.ok(), "{}", run.show());
    assert!(!run.stdout.contains(token), "{}", run.show());
    let v: Value = serde_json::from_str(&run.stdout).expect("status JSON");
    assert_eq!(
        v["counters"]["transport_api_unauthenticated"],
        2,
        "{}",
        run.show()
    );
    assert!(!agent.stderr().contains(token), "{}", agent.stderr());
}

#[test]
fn an_api_beyond_loopback_without_a_token_does_not_start() {
    let dir = Scratch::new("wideapi");
    let log = dir.path().join("wide.log");
    let peer = format!("127.0.0.1:{}", free_port());
    let mut process = Guard(
        agent_command("wide-1", &peer, "0.0.0.0:0", &log, &[])
            .spawn()
            .expect("spawn rumour agent"),
    );
    let status = process.wait_exit(EXIT);
    let stderr = fs::read_to_string(&log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("still running after {EXIT:?}; stderr:\n{stderr}"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("--api-token"), "{stderr}");
}

/// The 32 bytes of a padded standard-alphabet base64 text of 44
/// characters, decoded here by hand (not by the code under test).
fn decode_base64_key(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let body = text.strip_suffix('=')?;
    if text.len() != 44 || body.contains('=') {
        return None;
    }
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in body.bytes() {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Some(out)
}

#[test]
fn keygen_prints_a_fresh_base64_key_of_32_bytes() {
    let keygen = || {
        let run = rumour("127.0.0.1:1", &["keygen"]);
        assert!(run.ok() && run.stderr.is_empty(), "{}", run.show());
        let line = run.stdout.strip_suffix('\n').expect("one line").to_string();
        assert_eq!(line.len(), 44, "{}", run.show());
        let bytes = decode_base64_key(&line).unwrap_or_else(|| panic!("not base64: {line}"));
        assert_eq!(bytes.len(), 32);
        line
    };
    let (a, b) = (keygen(), keygen());
    assert_ne!(a, b, "two keys alike");
}

#[test]
fn a_bad_cluster_key_stops_the_agent_without_showing_it() {
    let good = rumour("127.0.0.1:1", &["keygen"]).stdout.trim().to_string();
    let short = "c2hvcnQtczNjcmV0"; // 12 bytes
    let cases: Vec<(Vec<String>, Option<&str>, &str, &str)> = vec![
        (
            vec!["--key".into(), "notbase64".into()],
            None,
            "notbase64",
            "not base64",
        ),
        (vec!["--key".into(), short.into()], None, short, "12 bytes"),
        (vec![], Some("s3cret!s3cret!"), "s3cret!", "not base64"),
        (
            vec!["--key".into(), format!("{good},{short}")],
            None,
            short,
            "number 2 of 2",
        ),
    ];
    for (flags, env, secret, why) in cases {
        let mut cmd = Command::new(RUMOUR);
        cmd.args(["agent", "--name", "badkey", "--preset", "local"])
            .args(["--bind", &format!("127.0.0.1:{}", free_port())])
            .args(["--api", &format!("127.0.0.1:{}", free_port())])
            .args(&flags)
            .env_remove("RUMOUR_API")
            .env_remove("RUMOUR_KEY")
            .env_remove("RUMOUR_LABEL")
            .stdin(Stdio::null());
        if let Some(k) = env {
            cmd.env("RUMOUR_KEY", k);
        }
        let out = cmd.output().expect("run rumour agent");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: --key"), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(!stderr.contains(secret), "the bad key is shown: {stderr}");
        assert!(!stderr.contains(&good), "the good key is shown: {stderr}");
    }
    // A label without a key is refused too.
    let out = Command::new(RUMOUR)
        .args(["agent", "--name", "badkey", "--label", "prod"])
        .env_remove("RUMOUR_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run rumour agent");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--label needs a cluster key"));
}

fn agents_keyed_by_flag_and_by_config_file_form_a_cluster(t: Transport) {
    // The first agent takes the key and the transport by flag, the second
    // from its config file.
    let dir = Scratch::new("clusterkey");
    let key = rumour("127.0.0.1:1", &["keygen"]).stdout.trim().to_string();
    let file = dir.path().join("keyed.toml");
    fs::write(
        &file,
        format!("key = [\"{key}\"]\nlabel = \"cli\"\ntransport = \"{t}\"\n"),
    )
    .unwrap();
    let [transport, name] = transport_flag(t);
    let a1 = Agent::start_with(
        dir.path(),
        "keyed-1",
        None,
        &[
            "--key".as_ref(),
            key.as_ref(),
            "--label".as_ref(),
            "cli".as_ref(),
            transport,
            name,
        ],
    );
    let a2 = Agent::start_with(
        dir.path(),
        "keyed-2",
        Some(&a1),
        &["--config".as_ref(), file.as_ref()],
    );
    let all = [(&a1, "alive"), (&a2, "alive")];
    wait_members(&a1, &all);
    wait_members(&a2, &all);
    for a in [&a1, &a2] {
        let run = a.run(&["status", "--format", "json", "--config"]);
        assert!(run.ok(), "{}", run.show());
        assert!(!run.stdout.contains(&key), "{}", run.show());
        let v: Value = serde_json::from_str(&run.stdout).expect("status JSON");
        assert_eq!(
            v["counters"]["transport_rejected_unauthenticated"],
            0,
            "{}",
            run.show()
        );
        // Probes go by UDP, sealed, and open; none on gRPC.
        let datagrams = |v: &Value| v["counters"]["transport_datagrams_received"].as_u64();
        match t {
            Transport::Grpc => assert_eq!(datagrams(&v), Some(0), "{}", run.show()),
            Transport::Udp => eventually(
                &format!("{} to take in sealed datagrams", a.name),
                CONVERGE,
                || {
                    let v = status_of(a);
                    let refused = v["counters"]["transport_rejected_unauthenticated"].as_u64();
                    match (datagrams(&v), refused) {
                        (Some(1..), Some(0)) => Ok(()),
                        _ => Err(v.to_string()),
                    }
                },
            ),
        }
        assert!(!a.stderr().contains(&key), "{}", a.stderr());
    }
}

#[test]
fn keys_commands_rotate_the_cluster_key_and_never_print_it() {
    // Scenario: two agents keyed with `old` rotate to `new` through the
    // client commands, one step through each agent; every step prints the
    // keys by fingerprint, and a refused step is one error line.
    let dir = Scratch::new("keyscli");
    let old = rumour("127.0.0.1:1", &["keygen"]).stdout.trim().to_string();
    let new = rumour("127.0.0.1:1", &["keygen"]).stdout.trim().to_string();
    let fingerprint = |k: &str| {
        rumour::transport::ClusterKey::from_base64(k)
            .unwrap()
            .fingerprint()
    };
    let keyed: [&OsStr; 2] = ["--key".as_ref(), old.as_ref()];
    let a1 = Agent::start_with(dir.path(), "kc-1", None, &keyed);
    let a2 = Agent::start_with(dir.path(), "kc-2", Some(&a1), &keyed);
    let all = [(&a1, "alive"), (&a2, "alive")];
    wait_members(&a1, &all);
    wait_members(&a2, &all);
    let mut runs = Vec::new();

    let run = a1.run(&["keys", "install", &new]);
    assert!(run.ok(), "{}", run.show());
    assert!(
        run.stdout.ends_with("installed on 2 of 2 members\n"),
        "{}",
        run.show()
    );
    runs.push(run);
    let run = a2.run(&["keys", "use", &new]);
    assert!(run.ok(), "{}", run.show());
    runs.push(run);
    let run = a1.run(&["keys", "remove", &new]);
    assert!(!run.ok(), "{}", run.show());
    assert!(one_error_line(&run).contains("primary"), "{}", run.show());
    runs.push(run);
    let run = a1.run(&["keys", "install", "not-a-key"]);
    assert!(
        one_error_line(&run).starts_with("error: invalid argument: "),
        "{}",
        run.show()
    );
    runs.push(run);
    let run = a1.run(&["keys", "remove", &old, "--timeout", "3s"]);
    assert!(run.ok(), "{}", run.show());
    runs.push(run);
    let run = a2.run(&["keys", "list"]);
    assert!(run.ok(), "{}", run.show());
    let lines: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec!["KEY", "MEMBERS", "PRIMARY"],
            vec![fingerprint(&new).as_str(), "2/2", "2"],
            vec!["2", "of", "2", "members", "answered"],
        ],
        "{}",
        run.show()
    );
    runs.push(run);
    // `rumour keys` alone still lists a namespace's keys.
    let run = a1.run(&["keys"]);
    assert!(run.ok(), "{}", run.show());
    runs.push(run);
    for run in &runs {
        for k in [&old, &new] {
            assert!(
                !run.stdout.contains(k.as_str()) && !run.stderr.contains(k.as_str()),
                "{}",
                run.show()
            );
        }
    }
    for a in [&a1, &a2] {
        let log = a.stderr();
        assert!(!log.contains(&old) && !log.contains(&new), "{log}");
    }
}

#[test]
fn an_agent_on_a_wide_peer_port_without_a_key_warns() {
    let dir = Scratch::new("widepeer");
    let key = rumour("127.0.0.1:1", &["keygen"]).stdout.trim().to_string();
    // Mutual TLS on the peer port authenticates peers as a key does.
    let ca = write_certificates(dir.path(), "ca", &[("peer", &["rumour-peer"])]);
    let (cert, tls_key) = (dir.path().join("peer.pem"), dir.path().join("peer.key"));
    for (keyed, tls) in [(false, false), (true, false), (false, true)] {
        let port = free_port();
        let api = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join(format!("wide-{keyed}-{tls}.log"));
        let advertise = format!("127.0.0.1:{port}");
        let mut extra: Vec<&OsStr> = vec!["--advertise".as_ref(), advertise.as_ref()];
        if keyed {
            extra.extend(["--key".as_ref(), key.as_ref() as &OsStr]);
        }
        if tls {
            extra.extend([
                "--peer-tls-cert".as_ref(),
                cert.as_os_str(),
                "--peer-tls-key".as_ref(),
                tls_key.as_os_str(),
                "--peer-tls-ca".as_ref(),
                ca.as_os_str(),
            ]);
        }
        let _process = Guard(
            agent_command("wide-peer", &format!("0.0.0.0:{port}"), &api, &log, &extra)
                .spawn()
                .expect("spawn rumour agent"),
        );
        // The warning is logged before the API answers: once it answers,
        // the log holds it or never will.
        eventually("the agent to serve", START, || {
            let run = rumour(&api, &["status"]);
            if run.ok() {
                Ok(())
            } else {
                Err(run.show())
            }
        });
        let stderr = fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(
            stderr.contains("no cluster key"),
            !keyed && !tls,
            "keyed: {keyed}, peer TLS: {tls}; stderr:\n{stderr}"
        );
        assert!(!stderr.contains(&key), "{stderr}");
    }
}

/// Run `rumour agent` with `extra` flags, expecting it to exit without
/// serving: its exit code and stderr.
fn refused_agent(dir: &Path, name: &str, extra: &[&OsStr]) -> (Option<i32>, String) {
    refused_agent_on(dir, name, &format!("127.0.0.1:{}", free_port()), extra)
}

/// [`refused_agent`] with its peer port bound at `peer`.
fn refused_agent_on(dir: &Path, name: &str, peer: &str, extra: &[&OsStr]) -> (Option<i32>, String) {
    let log = dir.join(format!("{name}.refused.log"));
    let api = format!("127.0.0.1:{}", free_port());
    let mut process = Guard(
        agent_command(name, peer, &api, &log, extra)
            .spawn()
            .expect("spawn rumour agent"),
    );
    let status = process.wait_exit(EXIT);
    let stderr = fs::read_to_string(&log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("still running after {EXIT:?}; stderr:\n{stderr}"));
    (status.code(), stderr)
}

#[test]
fn a_damaged_or_unusable_data_dir_stops_the_agent_naming_it() {
    let dir = Scratch::new("baddata");

    // A database that is not one: refused, and left as it was.
    let data = dir.path().join("garbage");
    fs::create_dir_all(&data).expect("create the data dir");
    let db = data.join("node.redb");
    let garbage = b"not a database at all\n".repeat(64);
    fs::write(&db, &garbage).expect("write the garbage");
    let (code, stderr) = refused_agent(
        dir.path(),
        "baddata-1",
        &["--data-dir".as_ref(), data.as_ref()],
    );
    assert_eq!(code, Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(last.contains(&db.display().to_string()), "{stderr}");
    assert!(last.contains("damaged"), "{stderr}");
    assert_eq!(fs::read(&db).expect("the garbage is still there"), garbage);

    // A path under a regular file cannot be created.
    let file = dir.path().join("a-file");
    fs::write(&file, "x").expect("write a file");
    let under = file.join("data");
    let (code, stderr) = refused_agent(
        dir.path(),
        "baddata-2",
        &["--data-dir".as_ref(), under.as_ref()],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.lines().last().unwrap_or("").starts_with("error: "),
        "{stderr}"
    );
    assert!(stderr.contains(&under.display().to_string()), "{stderr}");
}

#[test]
fn the_default_data_dir_is_created_kept_and_bound_to_its_name() {
    let dir = Scratch::new("datadir");
    // agent_command points XDG_DATA_HOME at the scratch dir.
    let home = dir.path().join("rumour").join("datadir-1");
    let agent = Agent::start(dir.path(), "datadir-1", None);
    let key = fs::read(home.join("identity.key")).expect("the key was created");
    assert_eq!(key.len(), 32);
    assert!(home.join("node.redb").is_file());
    let mut agent = agent;
    let kill = Command::new("kill")
        .args(["-TERM", &agent.process.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM failed: {kill}");
    let status = agent.process.wait_exit(EXIT).expect("the agent exits");
    assert!(status.success(), "{}", agent.stderr());

    // Started again, it finds the same identity.
    let again = Agent::start(dir.path(), "datadir-1", None);
    assert_eq!(fs::read(home.join("identity.key")).expect("the key"), key);
    drop(again);

    // Another name may not use that dir.
    let (code, stderr) = refused_agent(
        dir.path(),
        "datadir-2",
        &["--data-dir".as_ref(), home.as_ref()],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("\"datadir-1\"") && stderr.contains("\"datadir-2\""),
        "{stderr}"
    );
}

/// `rumour keys --values` of `node`'s namespace at `at`, as sorted lines.
fn namespace_lines(at: &Agent, node: &str) -> Result<Vec<String>, String> {
    let run = at.run(&["keys", "--values", "--node", node]);
    if !run.ok() {
        return Err(run.show());
    }
    let mut lines: Vec<String> = run.stdout.lines().map(str::to_string).collect();
    lines.sort();
    Ok(lines)
}

/// The `status --format json` of an agent.
fn status_of(at: &Agent) -> Value {
    let run = at.run(&["status", "--format", "json"]);
    assert!(run.ok(), "{}", run.show());
    serde_json::from_str(&run.stdout).expect("status is JSON")
}

/// Three agents, all alive.
fn all_after<'a>(a: &'a Agent, b: &'a Agent, c: &'a Agent) -> [(&'a Agent, &'a str); 3] {
    [(a, "alive"), (b, "alive"), (c, "alive")]
}

#[test]
fn every_acknowledged_put_survives_kill_9_and_a_restart_on_the_data_dir() {
    let dir = Scratch::new("kill9");
    let mut a = Agent::start(dir.path(), "k9-a", None);
    let b = Agent::start(dir.path(), "k9-b", Some(&a));
    let c = Agent::start(dir.path(), "k9-c", Some(&a));
    let all = [(&a, "alive"), (&b, "alive"), (&c, "alive")];
    wait_members(&a, &all);
    let before = status_of(&a);

    const PUTS: usize = 200;
    let mut want = Vec::new();
    for i in 0..PUTS {
        let (key, value) = (format!("key-{i:03}"), format!("value-{i}"));
        let put = a.run(&["put", &key, &value]);
        assert!(put.ok(), "put {i}: {}", put.show());
        want.push(format!("{key}\t{value}"));
    }
    want.sort();

    // SIGKILL: no leave, no flush, nothing but what is on disk.
    a.process.0.kill().expect("kill -9 the agent");
    a.process.0.wait().expect("reap the agent");

    // Restart on the same ports and data dir (the default one, kept under
    // the test's dir by `agent_command`), with no seed: it rejoins through
    // the members its data dir knew.
    let log = dir.path().join("k9-a.restarted.log");
    let mut cmd = agent_command("k9-a", &a.peer, &a.api, &log, &[]);
    let mut a = Agent {
        name: "k9-a".into(),
        api: a.api.clone(),
        peer: a.peer.clone(),
        log,
        token: None,
        client: Vec::new(),
        process: Guard(cmd.spawn().expect("restart rumour agent")),
    };
    a.wait_ready().expect("the agent restarts on its data dir");

    let after = status_of(&a);
    assert_eq!(after["public_key"], before["public_key"], "same key");
    assert_eq!(after["generation"], before["generation"], "same generation");
    assert_eq!(after["version"], PUTS as u64, "the version counter resumes");
    assert!(
        after["incarnation"].as_u64() > before["incarnation"].as_u64(),
        "a higher incarnation: {after} after {before}"
    );
    assert_eq!(namespace_lines(&a, "k9-a"), Ok(want.clone()), "at the node");
    wait_members(&a, &all_after(&a, &b, &c));
    for other in [&b, &c] {
        eventually(
            &format!("{} to hold all {PUTS} puts", other.name),
            CONVERGE,
            || {
                let lines = namespace_lines(other, "k9-a")?;
                if lines == want {
                    Ok(())
                } else {
                    Err(format!("{} of {PUTS}", lines.len()))
                }
            },
        );
    }

    // A put after the restart continues the stream and reaches everyone.
    let put = a.run(&["put", "after", "restart"]);
    assert!(put.ok(), "{}", put.show());
    assert_eq!(put.stdout, format!("version {}\n", PUTS + 1));
    for other in [&b, &c] {
        eventually(
            &format!("{} to hold the next put", other.name),
            CONVERGE,
            || {
                let run = other.run(&["get", "--node", "k9-a", "after"]);
                if run.ok() && run.stdout == "restart\n" {
                    Ok(())
                } else {
                    Err(run.show())
                }
            },
        );
    }
}

/// A CA and certificates it signed, written as PEM files into `dir`
/// (made here, never checked in): `NAME.pem` and `NAME.key` for each
/// `(NAME, subject alternative names)`, and `ca.pem`.
fn write_certificates(dir: &Path, ca_name: &str, leaves: &[(&str, &[&str])]) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = params.self_signed(&ca_key).expect("a CA certificate");
    let ca_path = dir.join(format!("{ca_name}.pem"));
    fs::write(&ca_path, ca.pem()).expect("write the CA");
    let issuer = Issuer::new(params, ca_key);
    for (name, sans) in leaves {
        let key = KeyPair::generate().expect("a key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let cert = CertificateParams::new(sans)
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("a certificate");
        fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write a certificate");
        fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write a key");
    }
    ca_path
}

#[test]
fn a_bad_tls_file_stops_the_agent_naming_the_flag() {
    let dir = Scratch::new("badtls");
    let d = dir.path();
    write_certificates(
        d,
        "ca",
        &[("api", &["127.0.0.1"]), ("other", &["127.0.0.1"])],
    );
    let secret = "s3cret-not-a-key";
    fs::write(d.join("garbage.key"), secret).expect("write garbage");
    let at = |f: &str| d.join(f).into_os_string();
    let missing = at("missing.pem");
    let (api_pem, api_key) = (at("api.pem"), at("api.key"));
    let (other_key, garbage, ca) = (at("other.key"), at("garbage.key"), at("ca.pem"));
    let cases: Vec<(Vec<&OsStr>, &str, &str)> = vec![
        (
            vec![
                "--tls-cert".as_ref(),
                &missing,
                "--tls-key".as_ref(),
                &missing,
            ],
            "error: --tls-cert: cannot read",
            "missing.pem",
        ),
        (
            vec!["--tls-cert".as_ref(), &api_pem],
            "error: --tls-cert needs --tls-key",
            "",
        ),
        (
            vec!["--tls-key".as_ref(), &api_key],
            "error: --tls-key needs --tls-cert",
            "",
        ),
        (
            vec![
                "--tls-cert".as_ref(),
                &api_pem,
                "--tls-key".as_ref(),
                &garbage,
            ],
            "error: --tls-key: ",
            "holds no PEM private key",
        ),
        (
            vec![
                "--tls-cert".as_ref(),
                &api_pem,
                "--tls-key".as_ref(),
                &other_key,
            ],
            "error: --tls-key: ",
            "does not belong to the certificate",
        ),
        (
            vec![
                "--tls-cert".as_ref(),
                &api_pem,
                "--tls-key".as_ref(),
                &api_key,
                "--tls-ca".as_ref(),
                &garbage,
            ],
            "error: --tls-ca: ",
            "holds no PEM certificate",
        ),
        (
            vec![
                "--peer-tls-cert".as_ref(),
                &api_pem,
                "--peer-tls-key".as_ref(),
                &api_key,
            ],
            "error: peer TLS is mutual",
            "missing --peer-tls-ca",
        ),
        (
            vec![
                "--peer-tls-cert".as_ref(),
                &missing,
                "--peer-tls-key".as_ref(),
                &api_key,
                "--peer-tls-ca".as_ref(),
                &ca,
            ],
            "error: --peer-tls-cert: cannot read",
            "missing.pem",
        ),
    ];
    for (i, (flags, starts, contains)) in cases.into_iter().enumerate() {
        let (code, stderr) = refused_agent(d, &format!("badtls-{i}"), &flags);
        assert_eq!(code, Some(1), "{flags:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{flags:?}: {stderr}");
        assert!(stderr.starts_with(starts), "{flags:?}: {stderr}");
        assert!(stderr.contains(contains), "{flags:?}: {stderr}");
        assert!(!stderr.contains(secret), "{stderr}");
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    }
    // The client's --ca is a slip for --tls-ca at the agent.
    let (code, stderr) = refused_agent(d, "badtls-ca", &["--ca".as_ref(), ca.as_ref()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: --ca is the client commands' flag")
            && stderr.contains("--tls-ca"),
        "{stderr}"
    );

    // From the config file, a bad path stops it the same way.
    let config = d.join("tls.toml");
    fs::write(
        &config,
        format!("tls_cert = {:?}\ntls_key = {:?}\n", missing, at("api.key")),
    )
    .expect("write the config");
    let (code, stderr) = refused_agent(d, "badtls-file", &["--config".as_ref(), config.as_ref()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: --tls-cert: cannot read"),
        "{stderr}"
    );
}

#[test]
fn client_commands_reach_a_tls_api_with_the_ca_and_a_client_certificate() {
    // Scenario: an agent serves its API over TLS and requires client
    // certificates (mutual TLS); a client with --ca and a certificate
    // writes and reads; without the certificate, without --ca, or
    // trusting another CA, a command fails in one error line.
    let dir = Scratch::new("tlsapi");
    let d = dir.path();
    let ca = write_certificates(
        d,
        "ca",
        &[("api", &["127.0.0.1"]), ("client", &["a-client"])],
    );
    let other = write_certificates(d, "other-ca", &[]);
    let at = |f: &str| d.join(f).to_string_lossy().into_owned();
    let ca = ca.to_string_lossy().into_owned();
    let (cert, key, client_cert, client_key) = (
        at("api.pem"),
        at("api.key"),
        at("client.pem"),
        at("client.key"),
    );
    let extra: Vec<&OsStr> = vec![
        "--tls-cert".as_ref(),
        cert.as_ref(),
        "--tls-key".as_ref(),
        key.as_ref(),
        "--tls-ca".as_ref(),
        ca.as_ref(),
    ];
    let client = [
        "--ca",
        &ca,
        "--client-cert",
        &client_cert,
        "--client-key",
        &client_key,
    ];
    let agent = Agent::start_for(d, "tls-1", None, &extra, &client);

    let put = agent.run(&["put", "k", "v"]);
    assert!(put.ok(), "{}", put.show());
    assert_eq!(put.stdout, "version 1\n");

    let other = other.to_string_lossy().into_owned();
    for args in [
        &["--ca", &ca, "get", "k"][..],
        &["get", "k"][..],
        &[
            "--ca",
            &other,
            "--client-cert",
            &client_cert,
            "--client-key",
            &client_key,
            "get",
            "k",
        ][..],
        &["--client-cert", &client_cert, "get", "k"][..],
        &["--ca", &ca, "--client-cert", &client_cert, "get", "k"][..],
    ] {
        let run = rumour(&agent.api, args);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.show());
        assert!(run.stdout.is_empty(), "{}", run.show());
        let line = one_error_line(&run);
        assert!(!line.contains("PRIVATE KEY"), "{}", run.show());
        assert!(
            ["--ca", "--client-cert", "certificate"]
                .iter()
                .any(|hint| line.contains(hint)),
            "{}",
            run.show()
        );
    }

    // A TLS client at a plaintext agent is told so.
    let plain = Agent::start(d, "plain-1", None);
    let run = rumour(&plain.api, &["--ca", &ca, "get", "k"]);
    assert_eq!(run.code, Some(1), "{}", run.show());
    assert!(
        one_error_line(&run).contains("--tls-cert"),
        "{}",
        run.show()
    );

    // The same from the environment.
    let out = Command::new(RUMOUR)
        .args(["get", "k", "--api", &agent.api])
        .env("RUMOUR_CA", &ca)
        .env("RUMOUR_CLIENT_CERT", &client_cert)
        .env("RUMOUR_CLIENT_KEY", &client_key)
        .env_remove("RUMOUR_API_TOKEN")
        .env_remove("RUMOUR_TLS_SERVER_NAME")
        .stdin(Stdio::null())
        .output()
        .expect("run rumour get");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\n");
}

#[test]
fn agents_with_peer_tls_flags_form_a_cluster() {
    // Scenario: two agents, each with its own certificate for the peer
    // name, signed by one CA (peer TLS from flags on one, from the config
    // file on the other), form a cluster and replicate a put. Peer TLS
    // covers streams only, so without a cluster key they choose gRPC (by
    // flag, and by the file).
    let dir = Scratch::new("peertls");
    let d = dir.path();
    let ca = write_certificates(
        d,
        "ca",
        &[("p1", &["rumour-peer"]), ("p2", &["rumour-peer"])],
    );
    let ca = ca.to_string_lossy().into_owned();
    let at = |f: &str| d.join(f).to_string_lossy().into_owned();
    let (c1, k1) = (at("p1.pem"), at("p1.key"));
    let flags: Vec<&OsStr> = vec![
        "--peer-tls-cert".as_ref(),
        c1.as_ref(),
        "--peer-tls-key".as_ref(),
        k1.as_ref(),
        "--peer-tls-ca".as_ref(),
        ca.as_ref(),
        "--transport".as_ref(),
        "grpc".as_ref(),
    ];
    let a1 = Agent::start_with(d, "ptls-1", None, &flags);
    let config = d.join("p2.toml");
    fs::write(
        &config,
        format!(
            "transport = \"grpc\"\npeer_tls_cert = {:?}\npeer_tls_key = {:?}\npeer_tls_ca = {:?}\n",
            at("p2.pem"),
            at("p2.key"),
            ca
        ),
    )
    .expect("write the config");
    let a2 = Agent::start_with(
        d,
        "ptls-2",
        Some(&a1),
        &["--config".as_ref(), config.as_ref()],
    );
    wait_members(&a1, &[(&a1, "alive"), (&a2, "alive")]);
    wait_members(&a2, &[(&a1, "alive"), (&a2, "alive")]);
    let put = a1.run(&["put", "k", "over-tls"]);
    assert!(put.ok(), "{}", put.show());
    eventually("the put to reach ptls-2", CONVERGE, || {
        let run = a2.run(&["get", "--node", "ptls-1", "k"]);
        if run.ok() && run.stdout == "over-tls\n" {
            Ok(())
        } else {
            Err(run.show())
        }
    });
}

/// `rumour why NAME --format json` at `at`, parsed.
fn why_json(at: &Agent, name: &str) -> Result<Value, String> {
    let run = at.run(&["why", name, "--format", "json"]);
    if !run.ok() {
        return Err(run.show());
    }
    serde_json::from_str(&run.stdout).map_err(|e| format!("not JSON ({e}):\n{}", run.show()))
}

/// The (state@incarnation, cause kind) of each change in an explanation.
fn why_changes(v: &Value) -> Vec<(String, String)> {
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    changes
        .iter()
        .map(|c| {
            (
                format!(
                    "{}@{}",
                    c["state"].as_str().unwrap_or("?"),
                    c["incarnation"]
                ),
                c["cause"]["kind"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

#[test]
fn why_explains_a_killed_agent_by_its_failed_probes_confirmations_and_verdict() {
    let dir = Scratch::new("why-dead");
    let a = Agent::start(dir.path(), "why-a", None);
    let b = Agent::start(dir.path(), "why-b", Some(&a));
    let c = Agent::start(dir.path(), "why-c", Some(&a));
    let mut d = Agent::start(dir.path(), "why-d", Some(&a));
    let all = [(&a, "alive"), (&b, "alive"), (&c, "alive"), (&d, "alive")];
    for observer in [&a, &b, &c, &d] {
        wait_members(observer, &all);
    }
    // Before anything happened, a member that only joined has no history.
    let joined = why_json(&a, "why-b").expect("why-b is explained");
    assert!(why_changes(&joined).is_empty(), "{joined}");
    assert_eq!(joined["member"]["state"], "alive");

    let kill = Command::new("kill")
        .args(["-KILL", &d.process.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    d.process.wait_exit(EXIT).expect("the killed agent is gone");
    let dead = [(&a, "alive"), (&b, "alive"), (&c, "alive"), (&d, "dead")];
    for observer in [&a, &b, &c] {
        wait_members(observer, &dead);
    }

    let (mut probes, mut confirmations) = (0, 0);
    for observer in [&a, &b, &c] {
        let v = why_json(observer, "why-d").expect("why-d is explained");
        let changes = why_changes(&v);
        // In order: the suspicion, then the dead verdict, and nothing else.
        let inc = &v["member"]["incarnation"];
        let states: Vec<&str> = changes.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            states,
            [format!("suspect@{inc}"), format!("dead@{inc}")],
            "{v}"
        );
        let suspect = &v["changes"][0];
        let at = suspect["at"].as_u64().expect("a time");
        assert!(v["changes"][1]["at"].as_u64().unwrap() >= at, "{v}");
        if suspect["cause"]["kind"] == "probe_failed" {
            probes += 1;
            let relays = suspect["cause"]["relays"].as_array().expect("relays");
            assert!(!relays.is_empty(), "{v}");
            // The relays are alive, so each answered with a nack.
            assert!(relays.iter().all(|r| r["nacked"] == true), "{v}");
        }
        let confirmed = suspect["confirmations"].as_array().expect("a list");
        confirmations += confirmed.len();
        let mut last = suspect["suspicion_timeout_ms"].as_u64().expect("a timeout");
        for k in confirmed {
            let t = k["timeout_ms"].as_u64().unwrap();
            assert!(t < last, "each confirmation shortens the timeout: {v}");
            last = t;
        }
        // The text names the same story.
        let text = observer.run(&["why", "why-d"]);
        assert!(text.ok(), "{}", text.show());
        eprintln!("{}", text.stdout);
        let (s, dd) = (
            text.stdout.find(&format!("suspect@{inc}")),
            text.stdout.rfind(&format!("dead@{inc}")),
        );
        let (Some(s), Some(dd)) = (s, dd) else {
            panic!("the timeline names both:\n{}", text.show());
        };
        assert!(text.stdout.contains("confirmed by") || confirmed.is_empty());
        assert!(
            s < dd,
            "the suspicion comes before the verdict:\n{}",
            text.stdout
        );
    }
    assert!(probes >= 1, "someone's own probe of why-d failed");
    assert!(confirmations >= 1, "someone heard a confirmation");

    // An unknown member: NOT_FOUND, naming it.
    let run = a.run(&["why", "nobody-here"]);
    assert_eq!(run.code, Some(1), "{}", run.show());
    let line = one_error_line(&run);
    assert!(line.contains("no member \"nobody-here\""), "{line}");
}

#[test]
fn why_explains_the_refutation_of_a_paused_agent() {
    let dir = Scratch::new("why-pause");
    let a = Agent::start(dir.path(), "pause-a", None);
    let b = Agent::start(dir.path(), "pause-b", Some(&a));
    let c = Agent::start(dir.path(), "pause-c", Some(&a));
    let all = [(&a, "alive"), (&b, "alive"), (&c, "alive")];
    for observer in [&a, &b, &c] {
        wait_members(observer, &all);
    }
    let signal = |sig: &str| {
        let s = Command::new("kill")
            .args([sig, &c.process.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(s.success());
    };
    signal("-STOP");
    eventually("a to suspect the paused agent", CONVERGE, || {
        let run = a.run(&["members"]);
        let rows = members_table(&run)?;
        match rows
            .iter()
            .any(|(n, _, s)| n == "pause-c" && s == "suspect")
        {
            true => Ok(()),
            false => Err(run.show()),
        }
    });
    signal("-CONT");
    let v = eventually("a to hold pause-c alive again", CONVERGE, || {
        let v = why_json(&a, "pause-c")?;
        let changes = why_changes(&v);
        match changes.last() {
            Some((s, _)) if s.starts_with("alive@") => Ok(v),
            _ => Err(v.to_string()),
        }
    });
    let changes = why_changes(&v);
    let states: Vec<&str> = changes.iter().map(|(s, _)| s.as_str()).collect();
    assert!(states.len() >= 2, "{v}");
    let n = states.len();
    let suspect_inc: u32 = states[n - 2]
        .strip_prefix("suspect@")
        .expect("suspected first")
        .parse()
        .unwrap();
    assert_eq!(states[n - 1], format!("alive@{}", suspect_inc + 1), "{v}");
    // The paused agent explains its own refutation.
    let own = why_json(&c, "pause-c").expect("c explains itself");
    let refuted: Vec<&Value> = own["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|ch| ch["cause"]["kind"] == "refuted")
        .collect();
    assert!(!refuted.is_empty(), "{own}");
    let last = refuted.last().unwrap();
    assert_eq!(last["state"], "alive");
    assert_eq!(last["incarnation"], suspect_inc + 1, "{own}");
    assert_eq!(last["cause"]["claimed"], "suspect", "{own}");
    let text = c.run(&["why", "pause-c"]);
    assert!(
        text.stdout.contains("refuted news of being suspect"),
        "{}",
        text.show()
    );
}

/// `rumour bench --versus-sim` runs real agents, kills one, runs the same
/// cluster in the simulator and prints every figure of both side by side,
/// each real one measured (not `never`) and each with its ratio; the cold
/// start is made five times for real, and each is printed.
#[test]
fn bench_versus_sim_prints_each_figure_real_and_simulated() {
    let out = Command::new(RUMOUR)
        .args(["bench", "--agents", "3", "--preset", "local"])
        .args(["--idle-secs", "2", "--puts", "3", "--versus-sim"])
        .env_remove("RUMOUR_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("run rumour bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for figure in [
        "cold start after the last start, median",
        "idle: messages per node per second",
        "idle: envelope bytes per node per second",
        "put to everywhere, mean",
        "put to everywhere, p99",
        "a killed node held dead by every other",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(figure))
            .unwrap_or_else(|| panic!("no row {figure:?} in:\n{stdout}"));
        assert!(!line.contains("never"), "{line}");
        let ratio: f64 = line
            .split_whitespace()
            .rev()
            .find_map(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no ratio in {line:?}"));
        assert!(ratio.is_finite() && ratio > 0.0, "{line}");
    }
    assert!(
        stdout.contains("kill: every other agent holds the killed one dead after"),
        "{stdout}"
    );
    let runs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("real cold starts: "))
        .unwrap_or_else(|| panic!("no real cold starts in:\n{stdout}"));
    let runs: Vec<f64> = runs
        .trim_end_matches(" ms")
        .split(", ")
        .map(|r| r.parse().unwrap_or_else(|_| panic!("{runs:?}")))
        .collect();
    assert_eq!(runs.len(), 5, "{runs:?}");
    assert!(runs.windows(2).all(|w| w[0] <= w[1]), "{runs:?}");
}

#[test]
fn bench_loss_and_partition_flags_are_checked_before_anything_starts() {
    // Loss and a partition are for `--versus-sim` only, and bounded; a bad
    // value is refused by name before an agent or a namespace is made.
    for (args, expect) in [
        (&["--loss", "10"][..], "--versus-sim"),
        (&["--partition-secs", "5"][..], "--versus-sim"),
        (&["--versus-sim", "--loss", "80"][..], "--loss"),
        (
            &["--versus-sim", "--partition-secs", "601"][..],
            "--partition-secs",
        ),
    ] {
        let out = Command::new(RUMOUR)
            .arg("bench")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rumour bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}
