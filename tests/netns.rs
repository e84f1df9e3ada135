//! Real agents in network namespaces, cut apart with nftables.
//!
//! Each test builds its own little network: one namespace holding a
//! bridge, and one namespace per agent joined to it by a veth pair
//! (10.77.0.1, .2, .3). Each agent is the built `rumour` binary, run with
//! `ip netns exec`; its client API listens on the namespace's own loopback
//! and the test drives it with the `rumour` client the same way. A
//! partition is an nftables table in each agent's namespace that drops
//! what arrives from the other side on the input hook; loss is a rule that
//! drops a random share of everything that arrives. Writers put a key on
//! every agent throughout, on both sides of the cut.
//!
//! Every test runs once per peer transport, as `NAME::grpc` and
//! `NAME::udp` (see [`over_each_transport!`]): a cut or a lost packet
//! must heal the same whether the probes and rumours travel over gRPC
//! streams or in datagrams.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables; CI installs it in
//! `.ci/run`). Without them every test here fails, saying what is missing:
//! none is ever skipped in silence.
//!
//! The default tests scale the protocol down (see [`Timings::scaled`]) so
//! that the file runs in under a minute over both transports, two tests
//! at a time; the full-length variants on the LAN preset are `#[ignore]`d:
//! `cargo test --release --test netns -- --ignored --nocapture`, or, for
//! one transport, `... -- --ignored --nocapture ::udp`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumour::transport::Transport;
use serde_json::Value;

const RUMOUR: &str = env!("CARGO_BIN_EXE_rumour");

/// The `rumour` binary the agents and the client run: this build, or the
/// one `RUMOUR_NETNS_BIN` names (to measure another build the same way).
fn rumour() -> String {
    std::env::var("RUMOUR_NETNS_BIN").unwrap_or_else(|_| RUMOUR.to_string())
}

/// The agents' names: `west-1` and `west-2` stay together, `east-1` is cut
/// off alone (a switch port failing), as in the issue's measurement. A
/// cluster of n agents takes the first n; the loss runs also use five.
const NAMES: [&str; 5] = ["west-1", "west-2", "east-1", "west-3", "west-4"];
const EAST: [usize; 1] = [2];

/// Each listed test, `fn NAME(transport: Transport)`, runs once per peer
/// transport, as `NAME::grpc` and `NAME::udp`. Attributes written before
/// a name (an `#[ignore = "..."]`) go on both.
macro_rules! over_each_transport {
    ($($(#[$attr:meta])* $test:ident),* $(,)?) => {$(
        mod $test {
            #[test]
            $(#[$attr])*
            fn grpc() {
                super::$test(super::Transport::Grpc)
            }
            #[test]
            $(#[$attr])*
            fn udp() {
                super::$test(super::Transport::Udp)
            }
        }
    )*};
}

fn side_of(i: usize) -> usize {
    usize::from(EAST.contains(&i))
}

fn ip(i: usize) -> String {
    format!("10.77.0.{}", i + 1)
}

// ----- timings ---------------------------------------------------------------

/// The protocol timings a test runs under, and what it waits for.
#[derive(Clone, Debug)]
struct Timings {
    preset: &'static str,
    /// Fields set over the preset in the agents' config file.
    overrides: Vec<(&'static str, &'static str)>,
    push_pull_interval: Duration,
    reconnect_interval: Duration,
    /// A cut this long ends with each side holding the other dead, not yet
    /// reaped.
    short_cut: Duration,
    /// A cut this long ends past `dead_reap_after`: each side has forgotten
    /// the other, and only the reconnect list knows its addresses.
    long_cut: Duration,
    put_every: Duration,
}

impl Timings {
    /// The CI-sized run. Scaled from the local preset (probes every
    /// 500 ms, suspicion 2 to 6 s): `dead_reap_after` 120 s → 8 s,
    /// `push_pull_interval` 10 s → 3 s and `reconnect_interval` 30 s →
    /// 2 s, so a cut of 10 s ends with the other side dead but not reaped,
    /// and one of 25 s ends past the reap. The transport scales with them
    /// (backoff at most a fifth of the push-pull interval; a link is dropped
    /// when its member is suspected).
    fn scaled() -> Timings {
        Timings {
            preset: "local",
            overrides: vec![
                ("dead_reap_after", "8s"),
                ("push_pull_interval", "3s"),
                ("reconnect_interval", "2s"),
            ],
            push_pull_interval: Duration::from_secs(3),
            reconnect_interval: Duration::from_secs(2),
            short_cut: Duration::from_secs(10),
            long_cut: Duration::from_secs(25),
            put_every: Duration::from_millis(250),
        }
    }

    /// The LAN preset as shipped, with the issue's partitions: 30 s, and
    /// 150 s (past `dead_reap_after`, 120 s).
    fn lan() -> Timings {
        Timings {
            preset: "lan",
            overrides: vec![],
            push_pull_interval: Duration::from_secs(10),
            reconnect_interval: Duration::from_secs(30),
            short_cut: Duration::from_secs(30),
            long_cut: Duration::from_secs(150),
            put_every: Duration::from_secs(1),
        }
    }
}

// ----- the network -----------------------------------------------------------

/// Run a command, panicking with its output if it fails.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ipcmd(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// Fail loudly unless this test can build namespaces and cut them.
fn require_tools() {
    let missing = |what: &str, how: &str| -> String {
        format!("tests/netns.rs needs {what}: {how}. These tests never skip; run them as root on Linux with iproute2, util-linux (unshare) and nftables (`apt-get install -y nftables`).")
    };
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_eq!(uid, "0", "{}", missing("root", "`id -u` is not 0"));
    // `unshare`: the bench's own namespace (`rumour bench --loss`).
    for (tool, arg) in [("ip", "-V"), ("nft", "--version"), ("unshare", "--version")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{}",
            missing(tool, &format!("`{tool} {arg}` does not run"))
        );
    }
}

/// A namespace per agent and one for the bridge; deleted on drop.
struct Net {
    bridge: String,
    nodes: Vec<String>,
}

/// Distinguishes the networks of tests running at once in one process.
static NETS: AtomicU32 = AtomicU32::new(0);

impl Net {
    fn new(n: usize) -> Net {
        require_tools();
        let tag = format!(
            "rmr{}-{}",
            std::process::id(),
            NETS.fetch_add(1, Ordering::Relaxed)
        );
        let net = Net {
            bridge: format!("{tag}-br"),
            nodes: (0..n).map(|i| format!("{tag}-{i}")).collect(),
        };
        let br = net.bridge.as_str();
        ipcmd(&["netns", "add", br]);
        ipcmd(&["-n", br, "link", "add", "br0", "type", "bridge"]);
        ipcmd(&["-n", br, "link", "set", "br0", "up"]);
        for (i, ns) in net.nodes.iter().enumerate() {
            let port = format!("v{i}");
            ipcmd(&["netns", "add", ns]);
            ipcmd(&[
                "-n", br, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ]);
            ipcmd(&["-n", br, "link", "set", &port, "master", "br0"]);
            ipcmd(&["-n", br, "link", "set", &port, "up"]);
            ipcmd(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", ip(i)),
                "dev",
                "eth0",
            ]);
            ipcmd(&["-n", ns, "link", "set", "eth0", "up"]);
            ipcmd(&["-n", ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Replace the `cut` table of node `i`'s namespace with `rules` (nft
    /// rules of its input chain); no rules removes the table.
    fn set_rules(&self, i: usize, rules: &[String]) {
        let mut script = String::from("table inet cut\ndelete table inet cut\n");
        if !rules.is_empty() {
            script.push_str(
                "table inet cut {\n chain input {\n  type filter hook input priority 0; policy accept;\n",
            );
            for r in rules {
                script.push_str(&format!("  {r}\n"));
            }
            script.push_str(" }\n}\n");
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.nodes[i], "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run nft");
        child
            .stdin
            .take()
            .expect("nft's stdin")
            .write_all(script.as_bytes())
            .expect("feed nft");
        let out = child.wait_with_output().expect("nft ends");
        assert!(
            out.status.success(),
            "nft in {} failed on\n{script}\n{}",
            self.nodes[i],
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Drop everything between west and east.
    fn partition(&self) {
        for i in 0..self.nodes.len() {
            let others: Vec<String> = (0..self.nodes.len())
                .filter(|&j| side_of(j) != side_of(i))
                .map(ip)
                .collect();
            self.set_rules(i, &[format!("ip saddr {{ {} }} drop", others.join(", "))]);
        }
    }

    /// Drop `percent`% of what arrives at every agent.
    fn lossy(&self, percent: u32) {
        for i in 0..self.nodes.len() {
            self.set_rules(
                i,
                &[format!(
                    "ip saddr 10.77.0.0/24 numgen random mod 100 < {percent} drop"
                )],
            );
        }
    }

    fn heal(&self) {
        for i in 0..self.nodes.len() {
            self.set_rules(i, &[]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.bridge]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

// ----- the agents ------------------------------------------------------------

struct Agent {
    name: &'static str,
    ns: String,
    log: PathBuf,
    process: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `rumour ARGS` against an agent's API, inside its namespace.
fn client(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, &rumour(), "--api", "127.0.0.1:7947"])
        .args(args)
        .env_remove("RUMOUR_API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run the rumour client")
}

impl Agent {
    fn ok(&self, args: &[&str]) -> Option<String> {
        let out = client(&self.ns, args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whom this agent holds alive, by name.
    fn alive(&self) -> Option<BTreeSet<String>> {
        let out = self.ok(&["members", "--format", "json"])?;
        let v: Value = serde_json::from_str(&out).ok()?;
        Some(
            v.as_array()?
                .iter()
                .filter(|m| m["status"] == "alive")
                .filter_map(|m| m["name"].as_str().map(str::to_string))
                .collect(),
        )
    }

    /// `owner`'s namespace as this agent holds it: key → value.
    fn keys(&self, owner: &str) -> Option<BTreeMap<String, String>> {
        let out = self.ok(&["keys", "--node", owner, "--values"])?;
        Some(
            out.lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// One counter of `rumour status`.
    fn counter(&self, name: &str) -> Option<u64> {
        let out = self.ok(&["status", "--format", "json"])?;
        let v: Value = serde_json::from_str(&out).ok()?;
        v["counters"][name]
            .as_u64()
            .or_else(|| v["counters"][name].as_str()?.parse().ok())
    }

    /// The members this agent declared dead so far, from its log.
    fn deaths(&self) -> Vec<String> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("member died"))
            .filter_map(|l| {
                NAMES
                    .iter()
                    .find(|n| {
                        l.contains(&format!("member=\"{n}\""))
                            || l.contains(&format!("member={n} "))
                    })
                    .map(|n| n.to_string())
            })
            .collect()
    }
}

/// Three agents on a [`Net`], each joined through the first, and a scratch
/// dir for their logs and config.
struct Cluster {
    agents: Vec<Agent>,
    dir: PathBuf,
    net: Net,
    config: PathBuf,
    preset: &'static str,
    transport: Transport,
    data_dirs: bool,
}

impl Cluster {
    fn start(t: &Timings, transport: Transport, tag: &str) -> Cluster {
        Cluster::start_with(t, transport, tag, false)
    }

    /// The names of this cluster's agents.
    fn names(&self) -> Vec<&'static str> {
        self.agents.iter().map(|a| a.name).collect()
    }

    /// Agent `i`, started (without a data dir unless `data_dirs`, where it
    /// keeps one under the scratch dir).
    fn spawn(&self, i: usize, log: &PathBuf) -> Child {
        let (name, ns) = (NAMES[i], &self.net.nodes[i]);
        let bind = format!("{}:7946", ip(i));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, &rumour(), "agent", "--name", name])
            .args(["--bind", &bind, "--api", "127.0.0.1:7947"])
            .args(["--preset", self.preset])
            .args(["--transport", self.transport.name()])
            .arg("--config")
            .arg(&self.config);
        if self.data_dirs {
            cmd.arg("--data-dir")
                .arg(self.dir.join(format!("{name}.data")));
        } else {
            cmd.arg("--no-data-dir");
        }
        if i > 0 {
            cmd.args(["--join", &format!("{}:7946", ip(0))]);
        }
        cmd.env("RUST_LOG", "info")
            .env_remove("RUMOUR_KEY")
            .env_remove("RUMOUR_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                File::options()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("open the log"),
            )
            .spawn()
            .expect("start an agent")
    }

    /// `kill -9` agent `i`, then start it again the same way.
    fn restart(&mut self, i: usize) {
        let log = self.agents[i].log.clone();
        let _ = self.agents[i].process.kill();
        let _ = self.agents[i].process.wait();
        self.agents[i].process = self.spawn(i, &log);
    }

    fn start_with(t: &Timings, transport: Transport, tag: &str, data_dirs: bool) -> Cluster {
        Cluster::start_n(3, t, transport, tag, data_dirs)
    }

    /// `n` agents (at most five), the first n of [`NAMES`], on `transport`.
    fn start_n(n: usize, t: &Timings, transport: Transport, tag: &str, data_dirs: bool) -> Cluster {
        let net = Net::new(n);
        let dir = std::env::temp_dir().join(format!(
            "rumour-netns-{}-{tag}-{transport}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        let config = dir.join("timings.toml");
        let text: String = t
            .overrides
            .iter()
            .map(|(k, v)| format!("{k} = \"{v}\"\n"))
            .collect();
        fs::write(&config, text).expect("write the config file");
        let mut c = Cluster {
            agents: Vec::new(),
            dir,
            net,
            config,
            preset: t.preset,
            transport,
            data_dirs,
        };
        for (i, name) in NAMES[..n].iter().enumerate() {
            let log = c.dir.join(format!("{name}.log"));
            let process = c.spawn(i, &log);
            c.agents.push(Agent {
                name,
                ns: c.net.nodes[i].clone(),
                log,
                process,
            });
        }
        let started = c.wait_until(Duration::from_secs(20), |c| c.all_alive());
        assert!(
            started.is_some(),
            "the agents did not form a cluster:\n{}",
            c.logs()
        );
        c.check_transport();
        c
    }

    /// The agents talk over the transport asked for: over UDP each agent
    /// sends datagrams within a few probe rounds (its probes travel in
    /// them), over gRPC none ever does.
    fn check_transport(&self) {
        let sent = |c: &Cluster| -> Vec<Option<u64>> {
            c.agents
                .iter()
                .map(|a| a.counter("transport_datagrams_sent"))
                .collect()
        };
        match self.transport {
            Transport::Udp => {
                let each = self.wait_until(Duration::from_secs(5), |c| {
                    sent(c).iter().all(|s| s.is_some_and(|n| n > 0))
                });
                assert!(
                    each.is_some(),
                    "datagrams sent over UDP, by agent: {:?}",
                    sent(self)
                );
            }
            Transport::Grpc => assert_eq!(
                sent(self),
                vec![Some(0); self.agents.len()],
                "datagrams sent over gRPC, by agent"
            ),
        }
    }

    /// Whether every agent holds every agent alive.
    fn all_alive(&self) -> bool {
        let all: BTreeSet<String> = self.names().iter().map(|n| n.to_string()).collect();
        self.agents.iter().all(|a| a.alive().as_ref() == Some(&all))
    }

    /// Whether every agent holds every acknowledged put, and all hold the
    /// same of every namespace.
    fn replicas_complete(&self, acked: &Acked) -> bool {
        for owner in self.names() {
            let want = &acked[owner];
            let mut first: Option<BTreeMap<String, String>> = None;
            for a in &self.agents {
                let Some(held) = a.keys(owner) else {
                    return false;
                };
                if want.iter().any(|(k, v)| held.get(k) != Some(v)) {
                    return false;
                }
                match &first {
                    None => first = Some(held),
                    Some(f) if *f != held => return false,
                    Some(_) => {}
                }
            }
        }
        true
    }

    /// Poll `done` every 100 ms for at most `within`; the time it took.
    fn wait_until(&self, within: Duration, done: impl Fn(&Cluster) -> bool) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if done(self) {
                return Some(start.elapsed());
            }
            if start.elapsed() >= within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The scaled timings are what the agents run with, not assumed.
    fn check_timings(&self, t: &Timings) {
        let out = self.agents[0]
            .ok(&["status", "--format", "json", "--config"])
            .expect("status answers");
        let v: Value = serde_json::from_str(&out).expect("status JSON");
        for (k, want) in &t.overrides {
            assert_eq!(v["config"][*k], format!("\"{want}\""), "{k}: {out}");
        }
    }

    /// Deaths an agent declared of a member on its own side.
    fn same_side_deaths(&self) -> Vec<String> {
        let mut found = Vec::new();
        for (i, a) in self.agents.iter().enumerate() {
            for dead in a.deaths() {
                let j = NAMES.iter().position(|n| *n == dead).expect("a known name");
                if side_of(i) == side_of(j) {
                    found.push(format!("{} declared {dead} dead", a.name));
                }
            }
        }
        found
    }

    /// Deaths declared at all.
    fn deaths(&self) -> Vec<String> {
        self.agents
            .iter()
            .flat_map(|a| {
                a.deaths()
                    .into_iter()
                    .map(move |d| format!("{} declared {d} dead", a.name))
            })
            .collect()
    }

    fn counter_sum(&self, name: &str) -> u64 {
        self.agents.iter().filter_map(|a| a.counter(name)).sum()
    }

    /// The tail of every agent's log, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for a in &self.agents {
            let log = fs::read_to_string(&a.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            out.push_str(&format!("--- {} ({})\n", a.name, a.log.display()));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.agents.clear();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("agent logs kept in {}", self.dir.display());
        }
        let _ = &self.net;
    }
}

// ----- writers ---------------------------------------------------------------

/// Acknowledged puts by owner: key → value.
type Acked = BTreeMap<&'static str, BTreeMap<String, String>>;

/// One writer per agent, putting `key-N` every `every` until stopped, and
/// recording what was acknowledged.
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<(&'static str, JoinHandle<()>)>,
    acked: Arc<Mutex<Acked>>,
}

impl Writers {
    fn start(c: &Cluster, every: Duration) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Acked = c
            .names()
            .into_iter()
            .map(|n| (n, BTreeMap::new()))
            .collect();
        let acked = Arc::new(Mutex::new(acked));
        let threads = c
            .agents
            .iter()
            .map(|a| {
                let (stop, acked, ns, name) = (stop.clone(), acked.clone(), a.ns.clone(), a.name);
                let t = std::thread::spawn(move || {
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let (k, v) = (format!("key-{n:05}"), format!("{name}-{n}"));
                        if client(&ns, &["put", &k, &v]).status.success() {
                            let mut acked = acked.lock().expect("writers' lock");
                            acked.get_mut(name).expect("a writer").insert(k, v);
                        }
                        std::thread::sleep(every);
                    }
                });
                (a.name, t)
            })
            .collect();
        Writers {
            stop,
            threads,
            acked,
        }
    }

    /// Stop writing; what was acknowledged, by owner.
    fn stop(self) -> Acked {
        self.stop.store(true, Ordering::Relaxed);
        for (name, t) in self.threads {
            t.join()
                .unwrap_or_else(|_| panic!("the writer of {name} panicked"));
        }
        let acked = self.acked.lock().expect("writers' lock").clone();
        acked
    }
}

// ----- the cases -------------------------------------------------------------

over_each_transport!(
    a_partition_heals_within_one_push_pull_interval_of_the_cut_s_end,
    a_partition_past_the_reap_heals_through_the_reconnect_list,
    a_node_restarted_while_cut_off_keeps_its_identity_and_every_acknowledged_put,
    #[ignore = "full length on the LAN preset: about 7 minutes; cargo test --release --test netns -- --ignored --nocapture full_length"]
    full_length_partitions_and_loss_on_the_lan_preset,
    #[ignore = "on the LAN preset: about 4 minutes; cargo test --release --test netns -- --ignored --nocapture five"]
    five_agents_at_twenty_percent_loss_declare_no_death,
);

/// Cut east from west for `cut` with writers on both sides, heal, and
/// check that within `members_bound` of the cut's end every agent holds
/// every agent alive; within `data_bound`, every agent holds every
/// acknowledged put and all agree on every namespace; and that no agent
/// ever declared a member of its own side dead. Returns the time the
/// membership and the data took to heal.
fn partition_heals(
    c: &Cluster,
    t: &Timings,
    cut: Duration,
    members_bound: Duration,
    data_bound: Duration,
) -> (Duration, Duration) {
    let writers = Writers::start(c, t.put_every);
    std::thread::sleep(t.put_every * 4);
    c.net.partition();
    let cut_at = Instant::now();
    // Each side declares the other dead while cut off (and, past the reap,
    // forgets it): the cut is real.
    let split = c.wait_until(cut, |c| {
        c.agents[2].alive().is_some_and(|s| s.len() == 1)
            && c.agents[0].alive().is_some_and(|s| s.len() == 2)
    });
    assert!(
        split.is_some(),
        "the sides never lost each other:\n{}",
        c.logs()
    );
    if let Some(left) = cut.checked_sub(cut_at.elapsed()) {
        std::thread::sleep(left);
    }
    c.net.heal();
    let healed_at = Instant::now();
    let acked = writers.stop();
    // Waited for past the bound, so that a failure says by how much.
    let bound = members_bound.max(data_bound);
    let members = c.wait_until(bound * 3, Cluster::all_alive);
    let data = members.and_then(|_| {
        let left = (bound * 3).saturating_sub(healed_at.elapsed());
        c.wait_until(left, |c| c.replicas_complete(&acked))
            .map(|_| healed_at.elapsed())
    });
    let (Some(members), Some(data)) = (members, data) else {
        panic!(
            "after a {cut:?} cut, members agreed after {members:?} and the data after {data:?} (None: not within 3 × the bound {bound:?}):\n{}",
            c.logs()
        )
    };
    assert!(
        members <= members_bound && data <= data_bound,
        "after a {cut:?} cut, members agreed after {members:?} (bound {members_bound:?}) and every acknowledged put was everywhere after {data:?} (bound {data_bound:?})\n{}",
        c.logs()
    );
    let puts: usize = acked.values().map(BTreeMap::len).sum();
    assert!(
        acked.values().all(|w| w.len() >= 4),
        "every writer was acknowledged: {puts} puts"
    );
    let wrong = c.same_side_deaths();
    assert!(wrong.is_empty(), "{wrong:?}\n{}", c.logs());
    eprintln!(
        "over {}, a {cut:?} cut: members agreed {members:?} and data {data:?} after the heal ({puts} acknowledged puts, deaths_doubted {}, deaths {:?})",
        c.transport,
        c.counter_sum("deaths_doubted"),
        c.deaths()
    );
    (members, data)
}

fn a_partition_heals_within_one_push_pull_interval_of_the_cut_s_end(transport: Transport) {
    // Scenario: east-1 is cut off from west-1 and west-2 long enough that
    // each side declares the other dead, but not so long that they are
    // reaped. When the cut ends, every agent sees every agent alive again
    // within one push-pull interval; every agent holds every acknowledged
    // put, and the replicas agree, within one reconnect interval and one
    // push-pull interval (the other side's data comes with the first
    // push-pull round after the members meet). Nobody on the west side
    // ever saw its neighbour declared dead, though east-1's stale verdict
    // on it crosses at the heal.
    let t = Timings::scaled();
    let c = Cluster::start(&t, transport, "short");
    c.check_timings(&t);
    let data = t.reconnect_interval + t.push_pull_interval;
    partition_heals(&c, &t, t.short_cut, t.push_pull_interval, data);
}

fn a_partition_past_the_reap_heals_through_the_reconnect_list(transport: Transport) {
    // Scenario: the same cut, past dead_reap_after: each side forgets the
    // other, whose addresses stay only on the reconnect list. After the
    // cut, a knock from that list reunites them within one reconnect
    // interval and one push-pull interval, with nothing acknowledged lost.
    let t = Timings::scaled();
    let c = Cluster::start(&t, transport, "long");
    let bound = t.reconnect_interval + t.push_pull_interval;
    partition_heals(&c, &t, t.long_cut, bound, bound);
}

fn a_node_restarted_while_cut_off_keeps_its_identity_and_every_acknowledged_put(
    transport: Transport,
) {
    // Scenario: three agents on data dirs, writers on all three. east-1 is
    // cut off; while cut off it is killed with `kill -9` and started again
    // on its data dir, alone, and goes on taking puts. When the cut ends,
    // every agent holds every acknowledged put of every writer (east-1's
    // from before the kill among them) within one reconnect interval and
    // one push-pull interval, and east-1 came back under the same key and
    // generation.
    let t = Timings::scaled();
    let mut c = Cluster::start_with(&t, transport, "restart", true);
    let identity = |a: &Agent| {
        let out = a.ok(&["status", "--format", "json"])?;
        let v: Value = serde_json::from_str(&out).ok()?;
        Some((v["public_key"].clone(), v["generation"].clone()))
    };
    let before = identity(&c.agents[2]).expect("east-1's status");
    let writers = Writers::start(&c, t.put_every);
    std::thread::sleep(t.put_every * 4);
    c.net.partition();
    let split = c.wait_until(t.short_cut, |c| {
        c.agents[2].alive().is_some_and(|s| s.len() == 1)
    });
    assert!(
        split.is_some(),
        "east-1 never lost the others:\n{}",
        c.logs()
    );
    c.restart(2);
    let back = c.wait_until(Duration::from_secs(10), |c| c.agents[2].alive().is_some());
    assert!(back.is_some(), "east-1 did not come back:\n{}", c.logs());
    // East-1 takes puts alone for a while, then the cut ends.
    std::thread::sleep(t.put_every * 8);
    c.net.heal();
    let healed_at = Instant::now();
    let acked = writers.stop();
    let bound = t.reconnect_interval + t.push_pull_interval;
    let healed = c.wait_until(bound * 3, |c| c.all_alive() && c.replicas_complete(&acked));
    let took = healed.map(|_| healed_at.elapsed());
    assert!(
        took.is_some_and(|d| d <= bound),
        "after the restart, every acknowledged put was everywhere after {took:?} (bound {bound:?}):\n{}",
        c.logs()
    );
    assert_eq!(
        identity(&c.agents[2]),
        Some(before),
        "same key and generation"
    );
    assert!(
        acked["east-1"].len() >= 8,
        "east-1 took puts: {}",
        acked["east-1"].len()
    );
    eprintln!(
        "over {transport}, restart while cut off: every put everywhere {took:?} after the heal"
    );
}

fn full_length_partitions_and_loss_on_the_lan_preset(transport: Transport) {
    // Scenario: the issue's measurement, as shipped: a 30 s partition, a
    // 150 s one (past dead_reap_after), then three runs of 60 s at 20%
    // loss on every agent's input, with 0 false deaths and every put
    // delivered.
    let t = Timings::lan();
    let c = Cluster::start(&t, transport, "lan");
    let bound = t.reconnect_interval + t.push_pull_interval;
    partition_heals(&c, &t, t.short_cut, t.push_pull_interval, bound);
    partition_heals(&c, &t, t.long_cut, bound, bound);
    loss_runs(&c, &t, 3);
}

fn five_agents_at_twenty_percent_loss_declare_no_death(transport: Transport) {
    // Scenario: the issue's loss target at five agents: three runs of 60 s
    // at 20% loss on every agent's input, writers on every agent; no death
    // is declared and every acknowledged put reaches every agent.
    let t = Timings::lan();
    let c = Cluster::start_n(5, &t, transport, "lan5", false);
    loss_runs(&c, &t, 3);
}

/// `runs` runs of 60 s at 20% loss on every agent's input, with writers
/// on every agent: no death declared, every acknowledged put delivered.
fn loss_runs(c: &Cluster, t: &Timings, runs: u32) {
    for run in 1..=runs {
        let before = c.deaths();
        let writers = Writers::start(c, t.put_every);
        c.net.lossy(20);
        std::thread::sleep(Duration::from_secs(60));
        c.net.heal();
        let acked = writers.stop();
        let after = c.deaths();
        assert_eq!(
            before,
            after,
            "run {run}: deaths declared at 20% loss\n{}",
            c.logs()
        );
        let data = c.wait_until(t.push_pull_interval * 2, |c| c.replicas_complete(&acked));
        assert!(
            data.is_some(),
            "run {run}: a put was not delivered\n{}",
            c.logs()
        );
        eprintln!(
            "over {}, 20% loss, run {run}: no death, every put delivered within {data:?}",
            c.transport
        );
    }
}

#[test]
fn bench_versus_sim_drops_and_cuts_for_real_and_prints_each_row() {
    // Scenario: `rumour bench --versus-sim` with 10% real loss on the
    // peer ports and a 10 s cut between two halves of 4 agents (local
    // preset: a suspicion lasts at most 6 s), in a network namespace of
    // the bench's own. The cut is real (each side's first agent sees only
    // its own half live at its end), both sides meet again after the heal,
    // every put of the cut reaches every agent, and each figure is printed
    // real and simulated.
    require_tools();
    let out = Command::new(rumour())
        .args(["bench", "--agents", "4", "--preset", "local"])
        .args(["--idle-secs", "2", "--puts", "4", "--versus-sim"])
        .args(["--loss", "10", "--partition-secs", "10"])
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
    let cut = stdout
        .lines()
        .find(|l| l.starts_with("partition: 2 and 2 agents cut apart"))
        .unwrap_or_else(|| panic!("no partition line in:\n{stdout}"));
    assert!(cut.contains("at its end: 2 and 2)"), "{cut}");
    assert!(!cut.contains("not within"), "{cut}");
    for figure in [
        "failed probes per node per minute",
        "refutations per node per minute",
        "false deaths declared, to the end of idle",
        "after the heal: all see all alive",
        "after the heal: every put of the cut everywhere",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(figure))
            .unwrap_or_else(|| panic!("no row {figure:?} in:\n{stdout}"));
        assert!(!line.contains("never"), "{line}");
    }
    assert!(stdout.contains("loss 10%"), "{stdout}");
}
