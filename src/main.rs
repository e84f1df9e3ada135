//! The `rumour` command line.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use rumour::core::parse_duration;
use rumour::sim::net::Latency;
use rumour::sim::{Scenario, Sim};

#[derive(Parser)]
#[command(
    name = "rumour",
    version,
    about = "Gossip membership and failure detection"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a seeded, deterministic simulation of a rumour cluster.
    Sim(SimArgs),
}

#[derive(Args)]
struct SimArgs {
    /// A built-in scenario (steady, crash, partition-heal, lossy, churn) or a TOML file.
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
    /// Align every node's timers: the synchronous-round model of the literature.
    #[arg(long)]
    lockstep: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
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

fn run_sim(args: SimArgs) -> Result<(), String> {
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
    let sim = Sim::new(scenario).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut report = sim.run();
    report.wall_ms = Some(started.elapsed().as_secs_f64() * 1e3);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!("{report}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => run_sim(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
