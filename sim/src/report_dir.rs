//! `rumour sim --report DIR`: a finished run as a directory a person can
//! open: the plots and their CSVs ([`crate::plot`]), the summary as JSON,
//! and an `index.md` that embeds the plots and names the command, the seed
//! and the summary.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Report, Sim};

/// The file a writability check leaves for a moment.
const PROBE: &str = ".rumour-report-check";

/// Check, before a run, that `dir` can hold a report: it is created if
/// missing, and a file is written into it and removed. The error says why
/// not.
pub fn prepare(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let probe = dir.join(PROBE);
    fs::write(&probe, b"")?;
    fs::remove_file(&probe)
}

/// Write the report of a finished run into `dir` (created if missing):
/// the plots with their CSVs, `summary.json` (the report as `--json`
/// prints it) and `index.md`. `command` is the command line that ran it;
/// `explanation`, a timeline to include (`--explain`). Returns the files
/// written.
pub fn write(
    sim: &Sim,
    report: &Report,
    dir: &Path,
    command: &str,
    explanation: Option<&str>,
) -> io::Result<Vec<PathBuf>> {
    let mut files = crate::plot::write(sim, report, dir)?;
    let json = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
    let summary = dir.join("summary.json");
    fs::write(&summary, json + "\n")?;
    files.push(summary);
    let index = dir.join("index.md");
    fs::write(&index, index_md(report, command, &files, explanation))?;
    files.push(index);
    Ok(files)
}

/// Write the report of the dissemination experiment into `dir` (created
/// if missing): the infection plot with its CSV, `summary.json` (the rows
/// `--json` prints) and `index.md` with `command`, the seed and `table`
/// (the experiment's table as printed). Returns the files written.
pub fn write_experiment(
    rows: &[crate::experiment::Row],
    seed: u64,
    dir: &Path,
    command: &str,
    table: &str,
) -> io::Result<Vec<PathBuf>> {
    let mut files = crate::plot::write_experiment(rows, seed, dir)?;
    let json = serde_json::to_string_pretty(rows).map_err(io::Error::other)?;
    let summary = dir.join("summary.json");
    fs::write(&summary, json + "\n")?;
    files.push(summary);
    let mut md = String::new();
    let _ = writeln!(md, "# rumour sim: dissemination experiment · seed {seed}\n");
    let _ = writeln!(md, "Command:\n\n```sh\n{command}\n```\n");
    let _ = writeln!(
        md,
        "Seed {seed}: the same command gives the same rows. The rows are in `summary.json`.\n"
    );
    let _ = writeln!(md, "## Summary\n\n```text\n{table}```\n");
    let _ = writeln!(
        md,
        "## infection\n\nEach row's mean fraction of nodes holding an update against rounds since its write, and dashed the synchronous-round model of each (n, mode) that has one.\n\n![infection](infection.svg)\n\nSeries: [infection.csv](infection.csv)\n"
    );
    let index = dir.join("index.md");
    fs::write(&index, md)?;
    files.push(index);
    Ok(files)
}

/// What each plot shows, in the order the index shows them.
const PLOTS: [(&str, &str); 4] = [
    (
        "membership",
        "Membership: the fraction of running nodes whose view is complete, and the mean fraction of running members each knows.",
    ),
    (
        "infection",
        "Infection of updates: the fraction of nodes holding an update against gossip rounds since its write (mean, median, slowest 1%, single updates), with the synchronous-round model for the periodic modes.",
    ),
    (
        "traffic",
        "Traffic per node per second, all and by message kind, and bytes per node per second.",
    ),
    (
        "suspicions",
        "Suspicions and deaths announced so far (each observer counted), the false ones apart; crashes marked.",
    ),
];

fn index_md(
    report: &Report,
    command: &str,
    files: &[PathBuf],
    explanation: Option<&str>,
) -> String {
    let written = |name: &str| {
        files
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == name))
    };
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# rumour sim: {} · {} nodes · seed {}\n",
        report.scenario, report.nodes, report.seed
    );
    let _ = writeln!(md, "Command:\n\n```sh\n{command}\n```\n");
    let _ = writeln!(
        md,
        "Seed {}: the same command gives the same run, bit for bit (trace digest `{}`). \
         The numbers are in `summary.json`, and each plot's series in the CSV beside it.\n",
        report.seed, report.trace_digest
    );
    let _ = writeln!(md, "## Summary\n\n```text\n{report}\n```\n");
    for (name, what) in PLOTS {
        if !written(&format!("{name}.svg")) {
            continue;
        }
        let _ = writeln!(
            md,
            "## {name}\n\n{what}\n\n![{name}]({name}.svg)\n\nSeries: [{name}.csv]({name}.csv)\n"
        );
    }
    if let Some(text) = explanation {
        let _ = writeln!(md, "## Explanation\n\n```text\n{}```\n", text);
    }
    md
}
