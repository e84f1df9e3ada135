//! Command-line arguments.

use clap::Parser;

use crate::spec::System;

/// Side-by-side benchmark of rumour, chitchat and foca: n nodes of each
/// over loopback UDP, one child process per system and n, printing one
/// table with rumour ÷ the best peer for each figure.
#[derive(Debug, Parser)]
#[command(name = "peers")]
pub struct Args {
    /// Systems to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rumour,chitchat,foca"
    )]
    pub systems: Vec<System>,

    /// Cluster sizes, comma-separated (each from 2 to 1000).
    #[arg(long, value_delimiter = ',', default_value = "10,50,100,200", value_parser = parse_n)]
    pub sizes: Vec<usize>,

    /// Sender-side loss of the second run of each system and n (0 skips it).
    #[arg(long, default_value_t = 0.2, value_parser = parse_loss)]
    pub loss: f64,

    /// Seed of the write sequence, the loss hooks and each node's RNG.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// A CI-sized run: n = 10 only, 3 writes, short windows; fails unless
    /// every row of the table was produced.
    #[arg(long)]
    pub quick: bool,

    /// Print the results and the table as JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,

    /// Print each run's phases (formation, every write, idle) as they end.
    #[arg(long)]
    pub verbose: bool,

    /// Also write the JSON (as `--json` prints it) to this file.
    #[arg(long)]
    pub save: Option<std::path::PathBuf>,

    /// Writes measured per run.
    #[arg(long, default_value_t = 10)]
    pub writes: u32,

    /// Length of the idle window, in seconds.
    #[arg(long, default_value_t = 20)]
    pub idle_secs: u64,

    /// Internal: run one system and n in this process (a JSON spec) and
    /// print its result as JSON.
    #[arg(long, hide = true)]
    pub run_one: Option<String>,
}

fn parse_n(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (2..=1000).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a cluster size: expected a whole number from 2 to 1000"
        )),
    }
}

fn parse_loss(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..1.0).contains(&p) => Ok(p),
        _ => Err(format!(
            "{s:?} is not a loss rate: expected a number from 0 to below 1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_and_sizes_are_refused() {
        assert!(Args::try_parse_from(["peers", "--systems", "rumour,serf"]).is_err());
        assert!(Args::try_parse_from(["peers", "--sizes", "10,1"]).is_err());
        assert!(Args::try_parse_from(["peers", "--sizes", "ten"]).is_err());
        assert!(Args::try_parse_from(["peers", "--loss", "1.5"]).is_err());
        let a = Args::try_parse_from(["peers", "--systems", "foca", "--sizes", "10,50"]).unwrap();
        assert_eq!(a.systems, vec![System::Foca]);
        assert_eq!(a.sizes, vec![10, 50]);
    }
}
