//! `peers`: rumour, chitchat and foca side by side on loopback UDP.

mod child;
mod cli;
mod link;
mod procstat;
mod recv;
mod report;
mod result;
mod scenario;
mod spec;
mod systems;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::Args;
use crate::result::RunResult;
use crate::spec::{Spec, Timings};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(spec) = &args.run_one {
        return match child::run_here(spec) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("peers: run failed: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    run_all(&args)
}

fn run_all(args: &Args) -> ExitCode {
    let (sizes, timings) = if args.quick {
        (vec![10], Timings::quick())
    } else {
        let idle = Duration::from_secs(args.idle_secs);
        (args.sizes.clone(), Timings::full(args.writes, idle))
    };
    let mut losses = vec![0.0];
    if args.loss > 0.0 {
        losses.push(args.loss);
    }
    let mut results: Vec<RunResult> = Vec::new();
    let mut failures = 0;
    for &n in &sizes {
        for &loss in &losses {
            for &system in &args.systems {
                let spec = Spec {
                    system,
                    n,
                    loss,
                    seed: args.seed,
                    timings,
                    verbose: args.verbose,
                };
                eprint!("peers: {} n={n} loss={loss} ... ", system.name());
                match child::run_child(&spec) {
                    Ok(r) => {
                        eprintln!("done");
                        results.push(r);
                    }
                    Err(e) => {
                        eprintln!("FAILED: {e}");
                        failures += 1;
                    }
                }
            }
        }
    }
    let rows = report::rows(&results, &args.systems, &sizes, &losses);
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "results": results, "rows": rows }))
            .expect("results serialize");
    if let Some(path) = &args.save {
        if let Err(e) = std::fs::write(path, &json) {
            eprintln!("peers: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        println!("{json}");
    } else {
        println!("{}", report::markdown(&rows, &args.systems));
    }
    let incomplete = rows.iter().filter(|r| !report::complete(r)).count();
    if failures > 0 || incomplete > 0 {
        eprintln!("peers: {failures} runs failed, {incomplete} rows incomplete");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
