//! `rumour bench`: a measured run of real agents on loopback.
//!
//! It starts `--agents` agent processes of this binary (LAN preset unless
//! told otherwise), waits until every one sees them all, then measures:
//!
//! 1. idle cost per agent: CPU (from `/proc/PID/stat`), RSS (`VmRSS`) and
//!    traffic (the loopback interface's bytes over the window, divided by
//!    the agents: TCP/IP headers, HTTP/2 and gRPC framing included, and
//!    whatever else uses loopback; and the agents' own socket writes,
//!    `/proc/PID/io`, which nothing else on the machine can inflate), and
//!    the sockets each agent holds open (`/proc/PID/fd`);
//! 2. put-to-everywhere latency: for each put on one agent, the time until
//!    every other agent has applied it (each agent's `Watch` stream reports
//!    the entry; a `Get` there returns it from then on);
//! 3. sustained load: puts at `--load-rate` through one agent's API for
//!    `--load-secs`, then the time until every replica equals the writer's.
//!
//! With `--versus-sim` it kills one agent instead of the load, times its
//! detection, and runs the same scenarios in the simulator (see
//! [`versus_sim`]); `--loss` and `--partition-secs` add real loss and a
//! real partition (see [`netns`]).

mod netns;
mod versus_sim;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rumour::core::Config;
use rumour::proto::v1 as pb;
use rumour::proto::v1::rumour_client::RumourClient;
use rumour::transport::unix_micros;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Flags of `rumour bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Agents to start, each its own process.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=200))]
    agents: u64,
    /// Protocol preset of every agent.
    #[arg(long, default_value = "lan", value_parser = ["lan", "wan", "local"])]
    preset: String,
    /// Peer transport of every agent (`rumour agent --transport`).
    #[arg(long, default_value = "udp", value_parser = ["udp", "grpc"])]
    transport: String,
    /// Seconds of idle measurement, after the cluster has settled.
    #[arg(long, default_value_t = 20)]
    idle_secs: u64,
    /// Puts whose latency to everywhere is measured (one at a time, on
    /// agents in turn, at random moments).
    #[arg(long, default_value_t = 100)]
    puts: u64,
    /// Puts per second through one agent for the load test (0 skips it).
    #[arg(long, default_value_t = 5000)]
    load_rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    load_secs: u64,
    /// Distinct keys the load writes, in turn.
    #[arg(long, default_value_t = 5000)]
    load_keys: u64,
    /// Run every agent with this cluster key (from `rumour keygen`), so
    /// that all peer traffic is sealed; it reaches them through RUMOUR_KEY.
    /// Without it the agents run without a key, whatever RUMOUR_KEY holds.
    #[arg(long, value_name = "KEY")]
    key: Option<crate::agent::Secret>,
    /// Give every agent a data dir (under a temporary dir removed at the
    /// end), as `rumour agent` has by default: every put is then durable
    /// before it is acknowledged. Without it the agents keep nothing on disk.
    #[arg(long)]
    data_dirs: bool,
    /// After the puts, kill one agent and time until every other holds it
    /// dead (instead of the load), then run the same cluster in the
    /// simulator and print each figure beside the real one. The cluster is
    /// cold-started five times first, and the cold start compared median
    /// to median with five simulated seeds.
    #[arg(long)]
    versus_sim: bool,
    /// With `--versus-sim`: drop this percentage of the packets to and from
    /// the agents' peer ports, from the start (nftables, in a network
    /// namespace of the bench's own: needs root, `unshare`, `ip` and `nft`).
    #[arg(long, value_name = "PERCENT", default_value_t = 0, requires = "versus_sim",
          value_parser = clap::value_parser!(u32).range(0..=50))]
    loss: u32,
    /// With `--versus-sim`: after the puts, cut the agents into two halves
    /// for this many seconds, a put a round on either side meanwhile, then
    /// heal and time until all see all alive and every put of the cut is
    /// everywhere (needs what `--loss` needs).
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "versus_sim",
          value_parser = clap::value_parser!(u64).range(0..=600))]
    partition_secs: u64,
}

impl BenchArgs {
    /// Whether the run needs its own network namespace.
    fn needs_netns(&self) -> bool {
        self.loss > 0 || self.partition_secs > 0
    }

    /// The two halves of a partition: agent `i` is on side `i * 2 / n`.
    fn sides(&self, peers: &[u16]) -> (netns::Side, netns::Side) {
        let half = peers.len() / 2;
        let side = |r: std::ops::Range<usize>| netns::Side {
            uids: netns::UID_BASE + r.start as u32..netns::UID_BASE + r.end as u32,
            ports: peers[r].to_vec(),
        };
        (side(0..half), side(half..peers.len()))
    }
}

/// Agent processes, killed when dropped, and their data dirs' parent,
/// removed then.
struct Agents {
    children: Vec<Child>,
    apis: Vec<SocketAddr>,
    /// Each agent's peer port.
    peers: Vec<u16>,
    data: Option<std::path::PathBuf>,
    /// When the first agent, the seed, answered (the others start then).
    seed_up: Option<Instant>,
    /// When the last agent was launched.
    launched: Option<Instant>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        // Every agent first, then the waits: killed one by one, the rest
        // would spend the teardown logging peers that stopped answering.
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        if let Some(dir) = &self.data {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where the bench looks for ports: below Linux's default ephemeral range
/// (32768 up), so that the agents' own outgoing connections, which take
/// ephemeral ports, cannot take one between its choice and the agent's
/// bind (a 100-agent run failed so).
const PORTS: std::ops::Range<u16> = 20000..32000;

/// A port free on both TCP and UDP at 127.0.0.1, outside the ephemeral
/// range, and not handed out before by this run (`next` goes on from the
/// last one).
fn free_port(next: &mut u16) -> std::io::Result<SocketAddr> {
    for _ in PORTS {
        let port = *next;
        *next = if port + 1 >= PORTS.end {
            PORTS.start
        } else {
            port + 1
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(addr).is_ok() && std::net::UdpSocket::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port in {PORTS:?}"),
    ))
}

/// Wait until something listens on `addr` (the first agent's API, which
/// it serves once its peer socket is bound): a readiness wait.
fn wait_listening(addr: SocketAddr, within: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match std::net::TcpStream::connect(addr) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > within => {
                return Err(format!("agent at {addr} did not come up: {e}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Start the agents, the others joining through the first if `join`;
/// `ready` is called with their peer ports before the first starts. The
/// first, the seed, is started alone and waited for,
/// as the simulator starts node 0 first: a join sent before the seed
/// listens is lost, and is tried again only a gossip interval later
/// (which made four real cold starts in five some 120 ms slower than
/// the protocol's own few milliseconds).
fn spawn(
    args: &BenchArgs,
    join: bool,
    ready: impl FnOnce(&[u16]) -> Result<(), String>,
) -> Result<Agents, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let data = args
        .data_dirs
        .then(|| std::env::temp_dir().join(format!("rumour-bench-{}", std::process::id())));
    let mut agents = Agents {
        children: Vec::new(),
        apis: Vec::new(),
        peers: Vec::new(),
        data: data.clone(),
        seed_up: None,
        launched: None,
    };
    let mut seed = None;
    // Runs side by side start apart.
    let span = PORTS.end - PORTS.start;
    let mut next_port = PORTS.start + (std::process::id() % u32::from(span)) as u16;
    let mut binds = Vec::new();
    for _ in 0..args.agents {
        let bind = free_port(&mut next_port).map_err(|e| e.to_string())?;
        let api = free_port(&mut next_port).map_err(|e| e.to_string())?;
        binds.push(bind);
        agents.apis.push(api);
        agents.peers.push(bind.port());
    }
    ready(&agents.peers)?;
    for (i, (bind, api)) in binds.into_iter().zip(agents.apis.clone()).enumerate() {
        let mut cmd = Command::new(&exe);
        cmd.arg("agent")
            .args(["--name", &format!("agent-{i:02}")])
            .args(["--bind", &bind.to_string()])
            .args(["--api", &api.to_string()])
            .args(["--preset", &args.preset])
            .args(["--transport", &args.transport])
            .env("RUST_LOG", "warn")
            .env_remove("RUMOUR_KEY")
            .env_remove("RUMOUR_LABEL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        match &data {
            Some(dir) => cmd.arg("--data-dir").arg(dir.join(format!("agent-{i:02}"))),
            None => cmd.arg("--no-data-dir"),
        };
        if let Some(s) = seed.filter(|_| join) {
            cmd.args(["--join", &format!("{s}")]);
        }
        if let Some(key) = &args.key {
            cmd.env("RUMOUR_KEY", key.expose());
        }
        if args.partition_secs > 0 {
            // Its side is told by its user id (see `netns`).
            use std::os::unix::process::CommandExt;
            cmd.uid(netns::UID_BASE + i as u32);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start an agent: {e}"))?;
        agents.children.push(child);
        if seed.is_none() {
            wait_listening(api, Duration::from_secs(30))?;
            agents.seed_up = Some(Instant::now());
        }
        seed.get_or_insert(bind);
    }
    agents.launched = Some(Instant::now());
    Ok(agents)
}

async fn connect(api: SocketAddr, within: Duration) -> Result<RumourClient<Channel>, String> {
    let start = Instant::now();
    loop {
        match RumourClient::connect(format!("http://{api}")).await {
            Ok(c) => return Ok(c),
            Err(e) if start.elapsed() > within => {
                return Err(format!("agent at {api} did not come up: {e}"))
            }
            // Polling for the process to listen: a readiness wait.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// CPU seconds the live threads of a process have run, to the
/// nanosecond (`/proc/PID/task/*/schedstat`): per-process ticks are 10 ms,
/// and the sum of 100 agents' rounded-down ticks loses up to a second.
/// Threads that exited are not counted (an agent keeps its workers).
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// The CPU seconds of the processes `pids` together (see [`proc_cpu_secs`]).
fn cpu_secs(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| proc_cpu_secs(*p)).sum()
}

/// CPU ticks (user + system) and RSS in KiB of a process.
fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is 3rd.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}

/// Bytes process `pid` has written through system calls so far
/// (`/proc/PID/io`, `wchar`): at an idle agent, its sockets' writes.
fn proc_written(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))?
        .trim()
        .parse()
        .ok()
}

/// Sockets process `pid` holds open (`/proc/PID/fd` links to `socket:`):
/// its listeners, its UDP socket if any, and every connection in or out.
fn proc_sockets(pid: u32) -> Option<usize> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(
        fds.filter_map(Result::ok)
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("socket:"))
            .count(),
    )
}

/// Bytes sent on the loopback interface so far.
fn loopback_tx_bytes() -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = dev.lines().find(|l| l.trim_start().starts_with("lo:"))?;
    let f: Vec<&str> = line.split(':').nth(1)?.split_whitespace().collect();
    f.get(8)?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Every counter of `rumour status` summed over the agents, each asked
/// once.
async fn counter_sums(
    clients: &mut [RumourClient<Channel>],
) -> Result<BTreeMap<String, u64>, String> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    for c in clients {
        let s = c
            .status(pb::StatusRequest {})
            .await
            .map_err(|e| e.to_string())?;
        for (k, v) in s.into_inner().counters {
            *sums.entry(k).or_default() += v;
        }
    }
    Ok(sums)
}

/// One counter of `rumour status`, summed over every agent.
async fn counter_sum(clients: &mut [RumourClient<Channel>], name: &str) -> Result<u64, String> {
    Ok(counter_sums(clients).await?.get(name).copied().unwrap_or(0))
}

/// What one Ed25519 verification costs on this machine: alone, and each in
/// a batch of two (a put's record and its checkpoint). The median of 9
/// timings of 50 each, of 100-byte statements.
fn signature_costs() -> (Duration, Duration) {
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key();
    let msgs: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 100]).collect();
    let sigs: Vec<ed25519_dalek::Signature> = msgs.iter().map(|m| key.sign(m)).collect();
    let median = |mut t: Vec<Duration>| {
        t.sort();
        t[t.len() / 2]
    };
    let single = median(
        (0..9)
            .map(|_| {
                let start = Instant::now();
                for (m, s) in msgs.iter().zip(&sigs).take(50) {
                    assert!(public.verify_strict(m, s).is_ok());
                }
                start.elapsed() / 50
            })
            .collect(),
    );
    let batched = median(
        (0..9)
            .map(|_| {
                let start = Instant::now();
                for pair in 0..25 {
                    let (m, s) = (&msgs[2 * pair..2 * pair + 2], &sigs[2 * pair..2 * pair + 2]);
                    let m: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
                    assert!(ed25519_dalek::verify_batch(&m, s, &[public, public]).is_ok());
                }
                start.elapsed() / 50
            })
            .collect(),
    );
    (single, batched)
}

/// Put 100 bytes under `key` in the agent's own namespace; its version.
async fn put_100(client: &mut RumourClient<Channel>, key: &str) -> Result<u64, String> {
    Ok(client
        .put(pb::PutRequest {
            key: key.to_string(),
            value: vec![b'x'; 100],
            namespace: String::new(),
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .version)
}

/// Every watcher's sighting of each (namespace, key, version).
type Seen = Arc<Mutex<BTreeMap<(String, String, u64), Vec<Sighting>>>>;

/// One agent's report of a write, as its watcher brought it.
#[derive(Clone, Copy, Debug)]
struct Sighting {
    /// The agent whose watcher it came on.
    agent: usize,
    /// When the report reached the bench.
    got: Instant,
    /// When the agent took the write in, by its own clock (the same clock
    /// on one host for every agent).
    at_unix_micros: u64,
}

/// When the bench heard the last of `v`, and how long the write took from
/// the owner (agent `owner`) to the last agent by their own clocks, in ms;
/// `None` until the owner's own report is in.
fn spread(v: &[Sighting], owner: usize) -> Option<(Instant, f64)> {
    let from = v.iter().find(|s| s.agent == owner)?.at_unix_micros;
    let last_at = v.iter().map(|s| s.at_unix_micros).max()?;
    let last_got = v.iter().map(|s| s.got).max()?;
    Some((last_got, last_at.saturating_sub(from) as f64 / 1000.0))
}

/// Cut the agents in two halves for `--partition-secs`, a put a round on
/// agents of either side in turn meanwhile, then heal; time until every
/// agent sees all alive, and until every put of the cut is at every agent.
async fn cut_and_heal(
    args: &BenchArgs,
    agents: &Agents,
    clients: &mut [RumourClient<Channel>],
    seen: &Seen,
    protocol: &Config,
) -> Result<(versus_sim::Cut, Instant), String> {
    let n = clients.len();
    let (a, b) = args.sides(&agents.peers);
    netns::set(args.loss, &agents.peers, Some((&a, &b)))?;
    let cut_at = Instant::now();
    let secs = Duration::from_secs(args.partition_secs);
    let mut puts = Vec::new();
    let mut i = 0usize;
    while cut_at.elapsed() < secs {
        // Agents of either side in turn: 0, n-1, 1, n-2, ...
        let w = if i % 2 == 0 {
            i / 2 % n
        } else {
            n - 1 - i / 2 % n
        };
        let key = format!("bench/cut/{i}");
        let version = put_100(&mut clients[w], &key).await?;
        puts.push((format!("agent-{w:02}"), key, version));
        i += 1;
        tokio::time::sleep(protocol.gossip_interval).await;
    }
    // Whether each side had given the other up by the end of the cut.
    let mut live = Vec::new();
    for c in [0, n - 1] {
        let s = clients[c]
            .status(pb::StatusRequest {})
            .await
            .map_err(|e| e.to_string())?;
        live.push(s.into_inner().live_members);
    }
    netns::set(args.loss, &agents.peers, None)?;
    let healed = Instant::now();
    let healed_unix = unix_micros();
    let within = protocol.push_pull_interval * 6;
    let members_ms = wait_for_live(clients, n as u32, within)
        .await?
        .map(|at| ms_between(healed_unix, at));
    let mut data_ms = None;
    while healed.elapsed() < within {
        let seen = seen.lock().await;
        // When the last agent took the last of them in, by its own clock.
        let lasts: Option<Vec<u64>> = puts
            .iter()
            .map(|p| {
                seen.get(p)
                    .filter(|v| v.len() >= n)
                    .and_then(|v| v.iter().map(|s| s.at_unix_micros).max())
            })
            .collect();
        drop(seen);
        if let Some(lasts) = lasts {
            let last = lasts.into_iter().max().unwrap_or(healed_unix);
            data_ms = Some(ms_between(healed_unix, last));
            break;
        }
        // Waiting for the watchers' reports.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let show =
        |v: Option<f64>| v.map_or(format!("not within {within:?}"), |v| format!("{v:.0} ms"));
    println!(
        "partition: {} and {} agents cut apart for {secs:?} (live members seen by the first and the last at its end: {} and {}), {} puts meanwhile; after the heal all see all alive after {}, every put of the cut everywhere after {}",
        a.ports.len(),
        b.ports.len(),
        live[0],
        live[1],
        puts.len(),
        show(members_ms),
        show(data_ms)
    );
    Ok((
        versus_sim::Cut {
            secs,
            puts: puts.len(),
            members_ms,
            data_ms,
            kill_after_heal: Duration::ZERO,
        },
        healed,
    ))
}

/// Start the agents (`spawn`, with `--loss` in force from the start) and
/// connect to each: the agents, their clients, the time from the first
/// start until the last API answered, and from then until every agent saw
/// all live (ms).
async fn start_cluster(args: &BenchArgs) -> Result<ColdStart, String> {
    let n = args.agents;
    let started = Instant::now();
    let agents = spawn(args, true, |peers| {
        if args.loss > 0 {
            netns::set(args.loss, peers, None)?;
        }
        Ok(())
    })?;
    // The bench's calls cost the agents CPU on the cores they share, so
    // while the cluster forms it watches one agent, the last launched,
    // and only then connects to the others and asks them all: the times
    // come from the agents' own clocks.
    let formed_within = Duration::from_secs(120);
    let (last_api, others) = agents.apis.split_last().ok_or("no agents")?;
    let last = connect(*last_api, Duration::from_secs(30)).await?;
    let start_window = started.elapsed();
    let since_started = |t: Option<Instant>| t.map_or(Duration::ZERO, |t| t - started);
    let (seed_up, launch_window) = (
        since_started(agents.seed_up),
        since_started(agents.launched),
    );
    let watched = wait_for_live(std::slice::from_ref(&last), n as u32, formed_within).await?;
    let mut clients = Vec::new();
    for api in others {
        clients.push(connect(*api, Duration::from_secs(30)).await?);
    }
    clients.push(last);
    let formed = match watched {
        Some(_) => wait_for_live(&clients, n as u32, formed_within).await?,
        None => None,
    };
    let Some(formed) = formed else {
        return Err("the cluster did not form within 120 s".into());
    };
    // The last start, by the agents' own clocks: when its node began to
    // run and its join left, after the agent's setup (as a simulated node
    // joins when it starts, after its start's CPU).
    let mut last_start = 0;
    for c in &mut clients {
        let s = c
            .status(pb::StatusRequest {})
            .await
            .map_err(|e| e.to_string())?;
        last_start = s.into_inner().started_unix_micros.max(last_start);
    }
    Ok(ColdStart {
        agents,
        clients,
        start_window,
        seed_up,
        launch_window,
        formed_ms: ms_between(last_start, formed),
    })
}

/// A cluster just formed by [`start_cluster`].
struct ColdStart {
    agents: Agents,
    clients: Vec<RumourClient<Channel>>,
    /// From the first agent's start until the last one's API answered.
    start_window: Duration,
    /// From the first agent's start until it answered, the others
    /// starting only then.
    seed_up: Duration,
    /// From the first agent's start until the last was launched (their
    /// processes then start side by side, and the last API answers once
    /// the cores have run them all).
    launch_window: Duration,
    /// From the last agent's start until the last agent came to see all
    /// live, by their own clocks (ms).
    formed_ms: f64,
}

/// The CPU seconds an agent spends starting, until its API answers, when
/// all of them start together as in a cold start: the bench's agents
/// launched as [`spawn`] launches them but each alone (no seed given),
/// their CPU once every API answers, per agent. One agent started alone
/// varied by a quarter run to run (3.9-5.3 ms here); all started
/// together they spent about what one spends alone (3.6 ms each at 100).
fn startup_cpu(args: &BenchArgs) -> Result<f64, String> {
    let agents = spawn(args, false, |_| Ok(()))?;
    for api in &agents.apis {
        wait_listening(*api, Duration::from_secs(30))?;
    }
    let pids: Vec<u32> = agents.children.iter().map(Child::id).collect();
    let cpu = cpu_secs(&pids);
    drop(agents);
    Ok(cpu / pids.len().max(1) as f64)
}

async fn run_bench(args: BenchArgs) -> Result<(), String> {
    let protocol = Config::preset(&args.preset).map_err(|e| e.to_string())?;
    let round_ms = protocol.gossip_interval.as_secs_f64() * 1000.0;
    let n = args.agents as usize;
    // Before any cluster: these agents share its ports and data dirs.
    let per_start = startup_cpu(&args)?;
    // A cold start ends with the last joiner's, whose join may wait on
    // connects lost one after the other: one run says little, so the
    // comparison has more (median against median).
    let mut cold_starts = Vec::new();
    if args.versus_sim {
        for _ in 1..versus_sim::COLD_SEEDS {
            cold_starts.push(start_cluster(&args).await?.formed_ms);
        }
    }
    let started = Instant::now();
    let ColdStart {
        mut agents,
        mut clients,
        start_window,
        seed_up,
        launch_window,
        formed_ms,
    } = start_cluster(&args).await?;
    // What the cold start cost the agents in CPU, read at once, less what
    // starting costs an agent alone (the status calls that watched the
    // cluster form are in it).
    let all_cpu = cpu_secs(&agents.children.iter().map(Child::id).collect::<Vec<u32>>());
    let cold_counters = counter_sums(&mut clients).await?;
    let cold_counter = |name: &str| cold_counters.get(name).copied().unwrap_or(0);
    let cold_taken = cold_counter("transport_received");
    let cold_batches = cold_counter("transport_intake_batches");
    let cold_wakeups = cold_counter("transport_intake_after_idle");
    let cold_over_budget = cold_counter("transport_replies_over_budget");
    let cold_single = cold_counter("signatures_verified");
    let cold_batched = cold_counter("signatures_batched");
    cold_starts.push(formed_ms);
    cold_starts.sort_by(f64::total_cmp);
    let (per_single, per_batched) = signature_costs();
    let started_cpu = per_start * n as f64;
    let cold_cpu = all_cpu - started_cpu;
    let mut real = versus_sim::Real {
        start_window,
        seed_up,
        launch_window,
        cold_starts,
        cold_intake: versus_sim::Intake {
            taken: cold_taken,
            batches: cold_batches,
            after_idle: cold_wakeups,
            over_budget: cold_over_budget,
            by_kind: rumour::core::MESSAGES_IN_BY_KIND.map(cold_counter),
        },
        keyed: args.key.is_some(),
        puts: args.puts,
        per_signature: per_single,
        per_batched_signature: per_batched,
        cpu_per_start: Duration::from_secs_f64(per_start),
        ..Default::default()
    };
    let cold_signatures = cold_single as f64 * per_single.as_secs_f64()
        + cold_batched as f64 * per_batched.as_secs_f64();
    let cold = versus_sim::Phase {
        cpu: cold_cpu - cold_signatures,
        wakeups: cold_wakeups as f64,
        taken: cold_taken as f64,
    };
    println!(
        "CPU of the last cold start: {cold_cpu:.2} s over all agents less {started_cpu:.2} s for starting them ({n} agents started together, each alone), {cold_signatures:.2} s of it verifying ({cold_single} signatures one at a time at {:.1} µs, {cold_batched} in batches at {:.1} µs); {cold_taken} messages taken in {cold_batches} batches, {cold_wakeups} of them woken from idle",
        per_single.as_secs_f64() * 1e6,
        per_batched.as_secs_f64() * 1e6,
    );
    println!(
        "{n} agents ({} preset, {} transport, gossip interval {round_ms} ms, {}): started within {:.2} s (until the last API answered); all saw {n} live members {:.3} s after the last agent's start (by the agents' own clocks)",
        args.preset,
        args.transport,
        if args.key.is_some() { "sealed with a cluster key" } else { "no cluster key" },
        start_window.as_secs_f64(),
        formed_ms / 1e3
    );

    // 1. Idle cost.
    let settle = protocol.push_pull_interval.min(Duration::from_secs(10));
    tokio::time::sleep(settle).await;
    real.settle = settle;
    let pids: Vec<u32> = agents.children.iter().map(Child::id).collect();
    // The counters first: reading them is traffic on loopback too.
    let sent_before = counter_sum(&mut clients, "transport_sent").await?;
    let bytes_before = counter_sum(&mut clients, "transport_bytes_sent").await?;
    let connects_before = counter_sum(&mut clients, "transport_connects").await?;
    let datagram_bytes_before = counter_sum(&mut clients, "transport_datagram_bytes_sent").await?;
    let before: Vec<(u64, u64)> = pids.iter().filter_map(|p| proc_usage(*p)).collect();
    let cpu_before = cpu_secs(&pids);
    let written_before: Vec<u64> = pids.iter().filter_map(|p| proc_written(*p)).collect();
    let lo_before = loopback_tx_bytes();
    let t0 = Instant::now();
    // RSS once a minute, to tell a plateau from a climb on long runs.
    let mut rss_by_minute = Vec::new();
    let idle = Duration::from_secs(args.idle_secs);
    while t0.elapsed() < idle {
        tokio::time::sleep(
            idle.saturating_sub(t0.elapsed())
                .min(Duration::from_secs(60)),
        )
        .await;
        let rss: Vec<u64> = pids
            .iter()
            .filter_map(|p| proc_usage(*p))
            .map(|u| u.1)
            .collect();
        if !rss.is_empty() {
            rss_by_minute.push(rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    real.idle = t0.elapsed();
    if rss_by_minute.len() > 1 {
        let curve: Vec<String> = rss_by_minute.iter().map(|r| format!("{r:.1}")).collect();
        println!(
            "idle RSS per agent, mean, at the end of each minute: {} MiB",
            curve.join(", ")
        );
    }
    let after: Vec<(u64, u64)> = pids.iter().filter_map(|p| proc_usage(*p)).collect();
    // CPU seconds per second, all agents together, while idle.
    let idle_cpu = (cpu_secs(&pids) - cpu_before) / secs;
    let written_after: Vec<u64> = pids.iter().filter_map(|p| proc_written(*p)).collect();
    let lo_after = loopback_tx_bytes();
    let sockets: Vec<usize> = pids.iter().filter_map(|p| proc_sockets(*p)).collect();
    // Datagrams leave by sendto(2), which `wchar` does not count.
    let datagram_bytes =
        counter_sum(&mut clients, "transport_datagram_bytes_sent").await? - datagram_bytes_before;
    if before.len() == n && after.len() == n {
        let cpu: Vec<f64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.0 - b.0) as f64 / 100.0 / secs * 100.0)
            .collect();
        let mib =
            |v: &[(u64, u64)]| -> Vec<f64> { v.iter().map(|a| a.1 as f64 / 1024.0).collect() };
        let (rss_start, rss) = (mib(&before), mib(&after));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
        println!(
            "idle ({secs:.0} s): CPU per agent mean {:.2}% max {:.2}% of a core; RSS mean {:.1} MiB max {:.1} MiB (at the start of idle: mean {:.1} MiB max {:.1} MiB)",
            mean(&cpu),
            max(&cpu),
            mean(&rss),
            max(&rss),
            mean(&rss_start),
            max(&rss_start)
        );
    }
    if let (Some(b), Some(a)) = (lo_before, lo_after) {
        println!(
            "idle traffic: {:.0} B/node/s on loopback (IP, TCP, HTTP/2 and gRPC framing included; any other traffic on the machine's loopback counts too)",
            (a - b) as f64 / n as f64 / secs
        );
    }
    if written_before.len() == n && written_after.len() == n {
        let written: u64 = written_after
            .iter()
            .zip(&written_before)
            .map(|(a, b)| a - b)
            .sum::<u64>()
            + datagram_bytes;
        println!(
            "idle socket writes: {:.0} B/node/s (these agents' own writes: streams from /proc/PID/io, HTTP/2 and gRPC framing included, and datagrams from their counters; TCP, UDP and IP headers not; nothing else on the machine counts)",
            written as f64 / n as f64 / secs
        );
    }
    // Messages per second while idle, to tell the puts' own messages apart.
    let sent_idle = counter_sum(&mut clients, "transport_sent").await? - sent_before;
    let bytes_idle = counter_sum(&mut clients, "transport_bytes_sent").await? - bytes_before;
    let connects_idle = counter_sum(&mut clients, "transport_connects").await? - connects_before;
    let idle_secs = secs;
    if sockets.len() == n {
        println!(
            "idle connections: sockets open per agent at the end mean {:.1} max {} (listeners and UDP socket included); {:.2} connections opened per node per second",
            sockets.iter().sum::<usize>() as f64 / n as f64,
            sockets.iter().max().unwrap_or(&0),
            connects_idle as f64 / idle_secs / n as f64
        );
    }
    let idle_rate = sent_idle as f64 / idle_secs;
    real.idle_msgs = idle_rate / n as f64;
    real.idle_bytes = bytes_idle as f64 / idle_secs / n as f64;
    // Suspicions and refutations from the start to here, per agent per
    // minute: what loss costs failure detection.
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    real.failed_probes =
        counter_sum(&mut clients, "failed_probes").await? as f64 / n as f64 / minutes;
    real.refutations = counter_sum(&mut clients, "refutations").await? as f64 / n as f64 / minutes;
    // Nothing was killed or cut yet: every death declared is false.
    real.false_deaths = counter_sum(&mut clients, "deaths_declared").await?;
    println!(
        "idle envelopes: {:.2} msgs/node/s, {:.0} B/node/s of encoded envelopes (the agents' own counters: no other traffic on the machine counts, no HTTP/2, TCP or IP framing)",
        idle_rate / n as f64,
        bytes_idle as f64 / idle_secs / n as f64
    );

    // 2. Put to everywhere.
    let mut streams = Vec::new();
    for c in &mut clients {
        let s = c
            .watch(pb::WatchRequest {
                kinds: vec![pb::EventKind::Entry as i32],
                namespace: String::new(),
                key_prefix: "bench/".into(),
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        streams.push(s);
    }
    let seen: Seen = Arc::default();
    for (agent, mut s) in streams.into_iter().enumerate() {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(ev)) = s.message().await {
                if let Some(pb::watch_event::Event::Entry(e)) = ev.event {
                    let sighting = Sighting {
                        agent,
                        got: Instant::now(),
                        at_unix_micros: ev.at_unix_micros,
                    };
                    seen.lock()
                        .await
                        .entry((e.namespace, e.key, e.version))
                        .or_default()
                        .push(sighting);
                }
            }
        });
    }
    // From the put's call until the bench heard the last agent's report
    // (what a client sees: the call and the watch streams included), and
    // from the owner's taking the write in until the last agent took it
    // in, by the agents' own clocks (what the simulator times).
    let mut latencies = Vec::new();
    let mut spreads = Vec::new();
    let mut missing = 0;
    let puts_started = Instant::now();
    let sent_at_puts = counter_sum(&mut clients, "transport_sent").await?;
    let taken_at_puts = counter_sum(&mut clients, "transport_received").await?;
    let wakeups_at_puts = counter_sum(&mut clients, "transport_intake_after_idle").await?;
    let single_at_puts = counter_sum(&mut clients, "signatures_verified").await?;
    let batched_at_puts = counter_sum(&mut clients, "signatures_batched").await?;
    let cpu_at_puts = cpu_secs(&pids);
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..args.puts as usize {
        // A random pause of 0-1 gossip intervals, so puts land at random
        // phases of the agents' timers.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let pause = Duration::from_secs_f64(round_ms / 1000.0 * (rng_state % 1000) as f64 / 1000.0);
        tokio::time::sleep(pause).await;
        let w = i % n;
        let key = format!("bench/{i}");
        let start = Instant::now();
        let version = put_100(&mut clients[w], &key).await?;
        let ns = format!("agent-{w:02}");
        let deadline = start + protocol.push_pull_interval * 3;
        loop {
            let done = seen
                .lock()
                .await
                .get(&(ns.clone(), key.clone(), version))
                .map(|v| (v.len(), spread(v, w)));
            match done {
                Some((count, Some((last, spread_ms)))) if count >= n => {
                    latencies.push((last - start).as_secs_f64() * 1000.0);
                    spreads.push(spread_ms);
                    break;
                }
                _ if Instant::now() > deadline => {
                    missing += 1;
                    break;
                }
                // Waiting for the watchers' reports.
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
    let sent_puts = counter_sum(&mut clients, "transport_sent").await? - sent_at_puts;
    let beside = idle_rate * puts_started.elapsed().as_secs_f64();
    // What the puts cost the agents in CPU, less what idling would have
    // taken.
    let cpu_puts = cpu_secs(&pids) - cpu_at_puts;
    let cpu_beside = idle_cpu * puts_started.elapsed().as_secs_f64();
    // The signatures the agents verified during the puts, at what a
    // verification costs on this machine: the rest is the messages'.
    let single = counter_sum(&mut clients, "signatures_verified").await? - single_at_puts;
    let batched = counter_sum(&mut clients, "signatures_batched").await? - batched_at_puts;
    let cpu_signatures =
        single as f64 * per_single.as_secs_f64() + batched as f64 * per_batched.as_secs_f64();
    println!(
        "signatures verified during the puts: {single} one at a time ({:.1} µs each on this machine), {batched} in batches ({:.1} µs each): {cpu_signatures:.2} s of CPU",
        per_single.as_secs_f64() * 1e6,
        per_batched.as_secs_f64() * 1e6,
    );
    // Idle messages each wake their agent: the idle rate stands for both.
    let puts_phase = versus_sim::Phase {
        cpu: cpu_puts - cpu_beside - cpu_signatures,
        wakeups: (counter_sum(&mut clients, "transport_intake_after_idle").await? - wakeups_at_puts)
            as f64
            - beside,
        taken: (counter_sum(&mut clients, "transport_received").await? - taken_at_puts) as f64
            - beside,
    };
    let (per_wakeup, per_message) = versus_sim::cpu_fit(&cold, &puts_phase);
    real.cpu_per_wakeup = per_wakeup;
    real.cpu_per_message = per_message;
    println!(
        "CPU during the puts: {cpu_puts:.2} s over all agents ({cpu_beside:.2} s at the idle rate, {cpu_signatures:.2} s verifying); {:.0} messages taken, {:.0} wake-ups from idle, besides the idle rate. Fitted to both phases: {:.0} µs a wake-up, {:.0} µs a message",
        puts_phase.taken,
        puts_phase.wakeups,
        per_wakeup.as_secs_f64() * 1e6,
        per_message.as_secs_f64() * 1e6,
    );
    println!(
        "messages per put: {:.2} per agent ({} messages sent by all agents during {} puts, less {:.0} at the idle rate); the simulator counts the same messages",
        (sent_puts as f64 - beside) / args.puts.max(1) as f64 / n as f64,
        sent_puts,
        args.puts,
        beside
    );
    latencies.sort_by(f64::total_cmp);
    spreads.sort_by(f64::total_cmp);
    let mean_of = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mean, spread_mean) = (mean_of(&latencies), mean_of(&spreads));
    real.put_mean_ms = spread_mean;
    real.put_p99_ms = percentile(&spreads, 99.0);
    println!(
        "put to everywhere ({} puts of 100 B, {} not everywhere within {:?}), from the owner's taking it in to the last agent's, by the agents' clocks: mean {:.1} ms ({:.2} rounds), p50 {:.1} ms ({:.2}), p99 {:.1} ms ({:.2}), max {:.1} ms ({:.2})",
        spreads.len(),
        missing,
        protocol.push_pull_interval * 3,
        spread_mean,
        spread_mean / round_ms,
        percentile(&spreads, 50.0),
        percentile(&spreads, 50.0) / round_ms,
        percentile(&spreads, 99.0),
        percentile(&spreads, 99.0) / round_ms,
        spreads.last().copied().unwrap_or(f64::NAN),
        spreads.last().copied().unwrap_or(f64::NAN) / round_ms,
    );
    println!(
        "put to everywhere as a client sees it, from the put's call until the bench heard the last agent's watcher: mean {mean:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
    );

    if args.versus_sim {
        real.loss_percent = args.loss;
        if args.partition_secs > 0 {
            let (mut cut, healed) =
                cut_and_heal(&args, &agents, &mut clients, &seen, &protocol).await?;
            // The kill comes next; the simulator puts its own as long after
            // its heal.
            cut.kill_after_heal = healed.elapsed();
            real.cut = Some(cut);
        }
        real.detection_ms = kill_one(&mut agents, &mut clients, &protocol).await?;
        drop(agents);
        let datagram_size = (args.transport == "udp")
            .then_some(rumour::transport::DATAGRAM_SIZE - rumour::transport::SEAL_OVERHEAD);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        return versus_sim::compare(n, &args.preset, datagram_size, &real, cores);
    }

    // 3. Sustained load through one agent.
    if args.load_rate > 0 {
        let total = args.load_rate * args.load_secs;
        // Four connections, 16 calls in flight on each.
        let mut writers = Vec::new();
        for _ in 0..4 {
            writers.push(connect(agents.apis[0], Duration::from_secs(5)).await?);
        }
        let started = Instant::now();
        let workers = 64u64;
        let mut tasks = Vec::new();
        for wk in 0..workers {
            let mut c = writers[wk as usize % writers.len()].clone();
            let (rate, keys) = (args.load_rate, args.load_keys.max(1));
            tasks.push(tokio::spawn(async move {
                let mut failed = 0u64;
                let mut i = wk;
                while i < total {
                    // Pace: put i is due at i / rate seconds.
                    let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                    let r = c
                        .put(pb::PutRequest {
                            key: format!("load/{}", i % keys),
                            value: i.to_le_bytes().to_vec(),
                            namespace: String::new(),
                        })
                        .await;
                    failed += r.is_err() as u64;
                    i += workers;
                }
                failed
            }));
        }
        let mut failed = 0;
        for t in tasks {
            failed += t.await.map_err(|e| e.to_string())?;
        }
        let took = started.elapsed().as_secs_f64();
        println!(
            "load: {total} puts through agent-00 in {took:.2} s ({:.0} puts/s achieved, {failed} failed)",
            total as f64 / took
        );
        let listing = |c: &mut RumourClient<Channel>| {
            let mut c = c.clone();
            async move {
                c.list(pb::ListRequest {
                    namespace: "agent-00".into(),
                    prefix: "load/".into(),
                })
                .await
                .map(|r| {
                    r.into_inner()
                        .entries
                        .into_iter()
                        .map(|e| (e.key, e.version, e.value))
                        .collect::<Vec<_>>()
                })
            }
        };
        let truth = listing(&mut clients[0]).await.map_err(|e| e.to_string())?;
        let sums = counter_sums(&mut clients).await?;
        let show = [
            "messages_in",
            "deltas_applied",
            "data_duplicates",
            "deltas_gap",
            "gap_pulls",
            "grafts",
            "prunes",
            "tree_adoptions",
            "transport_sent",
            "transport_bytes_sent",
            "transport_send_queue_full",
            "transport_intake_membership_full",
            "transport_intake_data_full",
            "transport_intake_shed",
            "transport_intake_paced",
        ];
        let line: Vec<String> = show
            .iter()
            .map(|k| format!("{k} {}", sums.get(*k).copied().unwrap_or(0)))
            .collect();
        println!("load: counters summed over agents: {}", line.join(", "));
        let end = Instant::now();
        let limit = protocol.push_pull_interval * 6;
        loop {
            let mut equal = 0;
            for c in clients.iter_mut().skip(1) {
                if listing(c).await.map_err(|e| e.to_string())? == truth {
                    equal += 1;
                }
            }
            if equal == n - 1 {
                println!(
                    "load: every replica equals the writer's ({} keys, last version {}) {:.2} s after the last put",
                    truth.len(),
                    truth.iter().map(|e| e.1).max().unwrap_or(0),
                    end.elapsed().as_secs_f64()
                );
                break;
            }
            if end.elapsed() > limit {
                println!(
                    "load: only {equal} of {} replicas equal the writer's after {limit:?}",
                    n - 1
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    drop(agents);
    Ok(())
}

/// Kill the last agent (SIGKILL: no leave) and return the time until every
/// other agent holds it dead, polling their status; `None` if that takes
/// longer than the failure detector's bound and a push-pull interval.
async fn kill_one(
    agents: &mut Agents,
    clients: &mut Vec<RumourClient<Channel>>,
    protocol: &Config,
) -> Result<Option<f64>, String> {
    let (Some(victim), Some(_)) = (agents.children.last_mut(), clients.pop()) else {
        return Ok(None);
    };
    let survivors = clients.len() as u32;
    let killed = unix_micros();
    victim
        .kill()
        .map_err(|e| format!("cannot kill an agent: {e}"))?;
    // Three times the design's bound: after a cut, local health stretches
    // the probe period for a while (a 20-agent run took over 25 s).
    let limit =
        (protocol.probe_period * 3 + protocol.suspicion_max + protocol.push_pull_interval) * 3;
    if let Some(at) = wait_for_live(clients, survivors, limit).await? {
        let ms = ms_between(killed, at);
        println!("kill: every other agent holds the killed one dead after {ms:.0} ms");
        Ok(Some(ms))
    } else {
        println!("kill: not every other agent held the killed one dead within {limit:?}");
        Ok(None)
    }
}

/// Wait until every agent of `clients` counts `live` live members (alive
/// or suspect, itself included), asking all of them at once every 10 ms,
/// and only those that did not yet. Returns when the last of them came to
/// that count by its own clock (`live_members_since_unix_micros`: the
/// polls' own delay is not in it), or `None` if `within` passes first.
/// Only for counts that, once reached, stay (no member joins or comes
/// back meanwhile): formation, and a death.
async fn wait_for_live(
    clients: &[RumourClient<Channel>],
    live: u32,
    within: Duration,
) -> Result<Option<u64>, String> {
    let start = Instant::now();
    let mut waiting: Vec<usize> = (0..clients.len()).collect();
    let mut last = 0u64;
    while !waiting.is_empty() {
        if start.elapsed() > within {
            return Ok(None);
        }
        let mut asks = tokio::task::JoinSet::new();
        for &i in &waiting {
            let mut c = clients[i].clone();
            asks.spawn(async move { (i, c.status(pb::StatusRequest {}).await) });
        }
        let mut reached = Vec::new();
        while let Some(done) = asks.join_next().await {
            let (i, s) = done.map_err(|e| e.to_string())?;
            let s = s.map_err(|e| e.to_string())?.into_inner();
            if s.live_members == live {
                reached.push(i);
                last = last.max(s.live_members_since_unix_micros);
            }
        }
        waiting.retain(|i| !reached.contains(i));
        if !waiting.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(Some(last))
}

/// Milliseconds from `from` to `to`, both in microseconds since the Unix
/// epoch; zero if `to` came first.
fn ms_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1000.0
}

/// Run the bench; agents are stopped at the end or on error.
pub fn run(args: BenchArgs) -> ExitCode {
    if args.needs_netns() {
        match netns::enter() {
            Ok(Some(code)) => return code,
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run_bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
