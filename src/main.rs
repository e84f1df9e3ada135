//! The `rumour` command line.

mod agent;
mod bench;
mod client;
mod heap;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use rumour::core::{parse_duration, Dissemination};
use rumour::sim::experiment::{self, Phases, Plan};
use rumour::sim::net::Latency;
use rumour::sim::{Scenario, Sim};

#[derive(Parser)]
#[command(
    name = "rumour",
    version,
    about = "Gossip membership, failure detection and replicated state"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    api: client::ApiArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: join a cluster (or start one) and serve the client API.
    Agent(agent::AgentArgs),
    /// Measure real agents on loopback: idle cost, put latency, load.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
    /// Print a fresh cluster key (32 random bytes from the operating
    /// system, base64) for `rumour agent --key`.
    Keygen,
    /// Run a seeded, deterministic simulation of a rumour cluster.
    Sim(SimArgs),
}

#[derive(Args)]
struct SimArgs {
    /// A built-in scenario (steady, crash, partition-heal, lossy, churn, leave) or a TOML file.
    #[arg(long, default_value = "steady")]
    scenario: String,
    /// Cluster size (overrides the scenario).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    nodes: Option<u64>,
    /// The run's seed (overrides the scenario).
    #[arg(long)]
    seed: Option<u64>,
    /// Probability that a message is lost, 0 to 1 (overrides the scenario).
    #[arg(long, value_parser = parse_probability)]
    loss: Option<f64>,
    /// Link latency: `5ms`, `1ms..10ms` (uniform) or `tail:2ms..50ms` (median..p99).
    #[arg(long, value_parser = parse_latency)]
    latency: Option<Latency>,
    /// Simulated time to run, e.g. `100s` or `10m` (overrides the scenario).
    #[arg(long, value_parser = parse_duration_arg)]
    duration: Option<Duration>,
    /// Protocol preset: lan, wan or local (overrides the scenario).
    #[arg(long, value_parser = ["lan", "wan", "local"])]
    preset: Option<String>,
    /// Align every node's timers (synchronous rounds; messages still travel
    /// at network speed, so a pull may be answered with data that arrived
    /// earlier in the same round).
    #[arg(long)]
    lockstep: bool,
    /// The synchronous model of the literature, exactly: aligned timers,
    /// and data that periodic gossip carries takes effect at the end of its
    /// round, so a pull is answered with what the peer held at the round's
    /// start (implies --lockstep).
    #[arg(long)]
    strict: bool,
    /// Start the cluster formed (every node knows every other from time
    /// zero) instead of joining through a seed: skips the cold start, which
    /// costs the simulator about n² work.
    #[arg(long)]
    formed: bool,
    /// Entries each node writes into its namespace when it starts.
    #[arg(long)]
    keys_per_node: Option<usize>,
    /// Random puts per simulated second across the cluster (from the end of
    /// the start window to the end of the run).
    #[arg(long, value_parser = parse_rate)]
    put_rate: Option<f64>,
    /// Run an experiment instead of a scenario: `dissemination` measures
    /// rounds to reach every node, per mode, for n in --sizes (default
    /// 100 and 1000; for 10000 add --formed), with random phases, in
    /// lockstep and in strict lockstep (--lockstep or --strict: only that).
    #[arg(long, value_parser = ["dissemination"])]
    experiment: Option<String>,
    /// Dissemination mode: tree, push, pull or push-and-pull (repeatable; the
    /// experiment runs all four by default).
    #[arg(long, value_parser = parse_mode)]
    mode: Vec<Dissemination>,
    /// Peers per gossip round.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    fanout: Option<u64>,
    /// Experiment: cluster sizes, comma-separated (default 100,1000).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Experiment: runs (seeds) per row.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    runs: u64,
    /// Experiment: measured updates per run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10000))]
    updates: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write SVG plots of the run (membership, infection of updates,
    /// traffic, suspicions), each with a CSV of its series, into this
    /// directory (created if missing).
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Write a report of the run into this directory (created if missing;
    /// checked before the run): the plots of --plot with their CSVs,
    /// `summary.json`, and an `index.md` that embeds the plots and names
    /// the command, the seed and the summary.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// After the run, explain this node as another holds it (see `rumour
    /// why`): each change of belief about it with its cause. With --json,
    /// the report gains an `explain` object.
    #[arg(long, value_name = "NODE")]
    explain: Option<String>,
    /// With --explain: the node that explains [default: the first node
    /// still running, other than the one explained].
    #[arg(long, value_name = "NODE", requires = "explain")]
    observer: Option<String>,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if r.is_finite() && r >= 0.0 {
        Ok(r)
    } else {
        Err(format!("{r} is not a non-negative rate"))
    }
}

fn parse_mode(s: &str) -> Result<Dissemination, String> {
    s.parse().map_err(|e: rumour::core::ConfigError| e.reason)
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability between 0 and 1"))
    }
}

fn parse_latency(s: &str) -> Result<Latency, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be non-zero".into());
    }
    Ok(d)
}

/// The experiment's table as printed.
fn experiment_table(plan: &Plan, rows: &[experiment::Row], started: Instant) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out,
        "dissemination of one update · fanout {} · loss {:.0}% · {} runs x {} updates per row · {} preset{}",
        plan.fanout,
        plan.loss * 100.0,
        plan.seeds,
        plan.updates,
        plan.preset,
        if plan.formed { " · formed start" } else { "" }
    );
    let _ = writeln!(out,
        "{:>6} {:>9} {:>8} | {:>6} {:>6} {:>6} {:>6} {:>6} | {:>9} {:>9} {:>6} | {:>6} {:>8} | reference",
        "n", "mode", "phases", "50%", "99%", "mean", "p99", "max", "msgs/node", "B/node", "redund", "deliv", "model"
    );
    for r in rows {
        let _ = writeln!(out,
            "{:>6} {:>9} {:>8} | {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} | {:>9.2} {:>9.1} {:>5.2}x | {:>6.3} {:>8} | {}",
            r.nodes,
            r.mode,
            r.phases,
            r.rounds_50,
            r.rounds_99,
            r.rounds_mean,
            r.rounds_p99,
            r.rounds_max,
            r.msgs_per_node,
            r.bytes_per_node,
            r.redundancy,
            r.delivery_ratio,
            r.model_rounds.map_or("-".into(), |m| format!("{m:.2}")),
            r.theory
        );
    }
    let _ = writeln!(out,
        "rounds = time from the write until 50%/99%/100% of the other nodes hold it, / gossip interval; wall {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if !plan.nodes.iter().any(|&n| n >= 10_000) {
        let _ = writeln!(out,
            "for n = 10000 add --sizes 10000 --formed (a formed start; a cold one costs the simulator about n^2)"
        );
    }
    out
}

fn run_experiment(args: SimArgs) -> Result<(), String> {
    let modes = if args.mode.is_empty() {
        vec![
            Dissemination::Tree,
            Dissemination::Push,
            Dissemination::Pull,
            Dissemination::PushAndPull,
        ]
    } else {
        args.mode.clone()
    };
    let nodes = match (&args.sizes[..], args.nodes) {
        ([], Some(n)) => vec![n as usize],
        ([], None) => vec![100, 1000],
        (s, _) => s.to_vec(),
    };
    if nodes.iter().any(|&n| n < 2) {
        return Err("--sizes: every cluster needs at least 2 nodes".into());
    }
    let plan = Plan {
        nodes,
        modes,
        fanout: args.fanout.unwrap_or(3) as usize,
        seeds: args.runs,
        seed: args.seed.unwrap_or(0),
        updates: args.updates as usize,
        loss: args.loss.unwrap_or(0.0),
        phases: match (args.lockstep, args.strict) {
            (false, false) => vec![Phases::Random, Phases::Lockstep, Phases::Strict],
            (true, false) => vec![Phases::Lockstep],
            (false, true) => vec![Phases::Strict],
            (true, true) => vec![Phases::Lockstep, Phases::Strict],
        },
        preset: args.preset.clone().unwrap_or_else(|| "lan".into()),
        formed: args.formed,
    };
    if let Some(dir) = &args.report {
        rumour::sim::report_dir::prepare(dir)
            .map_err(|e| format!("--report {}: cannot write there: {e}", dir.display()))?;
    }
    let started = Instant::now();
    let rows =
        experiment::run(&plan, |line| eprintln!("  done: {line}")).map_err(|e| e.to_string())?;
    if let Some(dir) = &args.plot {
        let files = rumour::sim::plot::write_experiment(&rows, plan.seed, dir)
            .map_err(|e| format!("--plot {}: {e}", dir.display()))?;
        if !args.json {
            eprintln!("wrote {} files into {}", files.len(), dir.display());
        }
    }
    if let Some(dir) = &args.report {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let table = experiment_table(&plan, &rows, started);
        let files =
            rumour::sim::report_dir::write_experiment(&rows, plan.seed, dir, &command, &table)
                .map_err(|e| format!("--report {}: {e}", dir.display()))?;
        if !args.json {
            eprintln!("wrote {} files into {}", files.len(), dir.display());
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&rows).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    print!("{}", experiment_table(&plan, &rows, started));
    Ok(())
}

fn run_sim(args: SimArgs) -> Result<(), String> {
    if args.experiment.is_some() {
        return run_experiment(args);
    }
    let mut scenario = Scenario::load(&args.scenario).map_err(|e| e.to_string())?;
    if let Some(n) = args.nodes {
        scenario.nodes = n as usize;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(loss) = args.loss {
        scenario.link.loss = loss;
    }
    if let Some(latency) = args.latency {
        scenario.link.latency = latency;
    }
    if let Some(d) = args.duration {
        scenario.duration = d;
    }
    if let Some(p) = args.preset {
        scenario.preset = p;
    }
    scenario.lockstep |= args.lockstep;
    scenario.strict |= args.strict;
    scenario.formed |= args.formed;
    if let Some(k) = args.keys_per_node {
        scenario.workload.keys_per_node = k;
    }
    if let Some(r) = args.put_rate {
        scenario.workload.put_rate = r;
    }
    if let Some(k) = args.fanout {
        scenario
            .config
            .insert("fanout".into(), toml::Value::Integer(k as i64));
    }
    if let Some(m) = args.mode.first() {
        scenario
            .config
            .insert("dissemination".into(), toml::Value::String(m.to_string()));
    }
    scenario.validate().map_err(|e| e.to_string())?;
    let n = scenario.nodes;
    let node_of = |flag: &str, name: &str| {
        (0..n)
            .find(|&i| rumour::sim::node_name(i) == name)
            .ok_or_else(|| format!("{flag} {name:?}: no such node (node-0 to node-{})", n - 1))
    };
    let explain = match &args.explain {
        Some(name) => Some(node_of("--explain", name)?),
        None => None,
    };
    let observer = match &args.observer {
        Some(name) => Some(node_of("--observer", name)?),
        None => None,
    };
    if let Some(dir) = &args.report {
        rumour::sim::report_dir::prepare(dir)
            .map_err(|e| format!("--report {}: cannot write there: {e}", dir.display()))?;
    }
    let mut sim = Sim::new(scenario).map_err(|e| e.to_string())?;
    let started = Instant::now();
    run_with_progress(&mut sim, !args.json && std::io::stderr().is_terminal());
    let mut report = sim.final_report();
    report.wall_ms = Some(started.elapsed().as_secs_f64() * 1e3);
    if let Some(dir) = &args.plot {
        let files = rumour::sim::plot::write(&sim, &report, dir)
            .map_err(|e| format!("--plot {}: {e}", dir.display()))?;
        if !args.json {
            eprintln!("wrote {} files into {}", files.len(), dir.display());
        }
    }
    let explained = match explain {
        Some(subject) => Some(explain_in(&sim, subject, observer)?),
        None => None,
    };
    if let Some(dir) = &args.report {
        let command = std::env::args().collect::<Vec<_>>().join(" ");
        let text = explained.as_ref().map(client::why::timeline);
        let files = rumour::sim::report_dir::write(&sim, &report, dir, &command, text.as_deref())
            .map_err(|e| format!("--report {}: {e}", dir.display()))?;
        if !args.json {
            eprintln!("wrote {} files into {}", files.len(), dir.display());
        }
    }
    if args.json {
        let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        if let (Some(e), Some(map)) = (&explained, v.as_object_mut()) {
            let e: serde_json::Value =
                serde_json::from_str(&client::why::json(e)).map_err(|e| e.to_string())?;
            map.insert("explain".into(), e);
        }
        println!("{v}");
    } else {
        println!("{report}");
        if let Some(e) = &explained {
            print!("\n{}", client::why::timeline(e));
        }
    }
    Ok(())
}

/// Node `subject` as `observer` (or the first running node but it)
/// explains it at the end of the run.
fn explain_in(
    sim: &Sim,
    subject: usize,
    observer: Option<usize>,
) -> Result<rumour::proto::v1::ExplainResponse, String> {
    let name = rumour::sim::node_name(subject);
    let (i, node) = match observer {
        Some(i) => match sim.node(i) {
            Some(node) => (i, node),
            None => {
                let o = rumour::sim::node_name(i);
                return Err(format!("--observer {o}: not running at the end of the run"));
            }
        },
        None => (0..sim.len())
            .filter(|&i| i != subject)
            .find_map(|i| sim.node(i).map(|n| (i, n)))
            .ok_or("--explain: no other node is running at the end of the run")?,
    };
    let observer = rumour::sim::node_name(i);
    let e = node
        .explain(&name)
        .ok_or_else(|| format!("--explain {name}: {observer} neither holds nor remembers it"))?;
    let ms = |t: rumour::core::Time| t.as_micros() / 1000;
    Ok(rumour::proto::explain::explanation(
        &observer,
        &e,
        ms,
        true,
        node.health(),
    ))
}

/// Run the simulation to its end in slices of simulated time; with `show`,
/// draw a progress bar on stderr (simulated time reached, and the wall
/// time left as the bar estimates it). Slicing does not change the run: it
/// is the same events in the same order.
fn run_with_progress(sim: &mut Sim, show: bool) {
    let end = sim.end();
    if !show {
        sim.run_until(end);
        return;
    }
    let bar = indicatif::ProgressBar::new(end.as_micros() / 1000);
    let style = indicatif::ProgressStyle::with_template(
        "  {bar:30} simulated {msg} · {elapsed} wall, about {eta} left",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    let slice = Duration::from_secs(1);
    while sim.now() < end {
        let next = (sim.now() + slice).min(end);
        sim.run_until(next);
        bar.set_position(sim.now().as_micros() / 1000);
        bar.set_message(format!(
            "{:.0} s of {:.0} s",
            sim.now().as_secs_f64(),
            end.as_secs_f64()
        ));
    }
    bar.finish_and_clear();
}

/// Run a client command on a small runtime of its own.
fn run_client(api: &client::ApiArgs, cmd: client::ClientCommand) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(client::run(api, cmd)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => run_sim(args),
        Command::Agent(_) if cli.api.client_tls_flag().is_some() => Err(format!(
            "{} is the client commands' flag; the agent's are --tls-cert, --tls-key, --tls-ca and --peer-tls-*",
            cli.api.client_tls_flag().unwrap_or_default()
        )),
        Command::Agent(args) => return agent::run(args, &cli.api.api, cli.api.token.is_some()),
        Command::Bench(args) => return bench::run(args),
        Command::Keygen => rumour::transport::ClusterKey::generate()
            .map(|k| println!("{}", k.to_base64()))
            .map_err(|e| e.to_string()),
        Command::Client(cmd) => return run_client(&cli.api, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
