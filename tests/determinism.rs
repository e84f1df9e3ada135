//! Same scenario, same seed: same run, bit for bit, through the binary and
//! through the library; and the command line refuses bad input with the
//! right exit code.

use std::process::{Command, Output};
use std::time::Duration;

use rumour::sim::{Report, Scenario, Sim, Workload};
use serde_json::Value;

fn rumour(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rumour"))
        .args(args)
        .output()
        .expect("the rumour binary runs")
}

/// `rumour sim --nodes 50 --duration 20s --seed SEED --json`, parsed.
fn sim_json(seed: u64) -> Value {
    let seed = seed.to_string();
    let out = rumour(&[
        "sim",
        "--nodes",
        "50",
        "--duration",
        "20s",
        "--seed",
        &seed,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "rumour sim --seed {seed} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn digest(v: &Value) -> &str {
    v["trace_digest"]
        .as_str()
        .expect("trace_digest is a string")
}

#[test]
fn the_binary_replays_a_seed_exactly() {
    // Scenario: the same command twice gives the same trace; another seed
    // gives another trace.
    let first = sim_json(7);
    let second = sim_json(7);
    assert!(!digest(&first).is_empty());
    assert_eq!(digest(&first), digest(&second), "seed 7 replays");
    let other = sim_json(8);
    assert_ne!(digest(&first), digest(&other), "seeds 7 and 8 differ");

    // Everything but the wall clock is a function of the scenario.
    let mut a = first.as_object().unwrap().clone();
    let mut b = second.as_object().unwrap().clone();
    a.remove("wall_ms");
    b.remove("wall_ms");
    assert_eq!(a, b);
}

#[test]
fn the_json_report_has_its_documented_keys() {
    let report = sim_json(7);
    let obj = report.as_object().expect("a JSON object");
    for key in [
        "nodes",
        "seed",
        "rounds_to_membership",
        "rounds_to_members_known",
        "detection_p50_ms",
        "detection_p99_ms",
        "false_positives",
        "msgs_per_node_per_s",
        "bytes_per_node_per_s",
        "wall_ms",
        "trace_digest",
    ] {
        assert!(obj.contains_key(key), "missing {key:?} in {report}");
    }
    assert_eq!(report["nodes"], 50);
    assert_eq!(report["seed"], 7);
    assert!(report["wall_ms"].is_number(), "the binary times the run");
    assert!(report["msgs_per_node_per_s"].as_f64().unwrap() > 0.0);
}

/// The churn scenario, cut down to 30 nodes and 60 s on a lossy network.
fn lossy_churn(seed: u64) -> Report {
    let mut s = Scenario::load("churn").expect("built in");
    s.nodes = 30;
    s.duration = Duration::from_secs(60);
    s.link.loss = 0.05;
    s.seed = seed;
    Sim::new(s).expect("valid").run()
}

#[test]
fn the_library_replays_a_faulty_run_exactly() {
    // Scenario: a run with crashes, restarts and lost messages, twice with
    // one seed. Every delivered message and event hashes the same, and so
    // does every figure of the report; a second seed takes another path.
    let first = lossy_churn(3);
    assert!(first.crashes > 0, "the churn fired: {first:?}");
    let second = lossy_churn(3);
    assert_eq!(first.trace_digest, second.trace_digest);
    assert_eq!(first, second);
    let other = lossy_churn(4);
    assert_ne!(first.trace_digest, other.trace_digest);
}

/// Twelve nodes on a lossy network, cut in two from 10 s to 20 s, writing
/// all the while: prefilled keys, random puts and deletes, user events and
/// metadata publications, all drawn from the run's seed.
fn with_writes(seed: u64, workload: bool) -> Report {
    let mut s = Scenario::from_toml(
        r#"
name = "writes"
nodes = 12
duration = "40s"
preset = "local"

[link]
loss = 0.05

[[faults]]
kind = "partition"
at = "10s"
groups = { a = "0..4", b = "4..12" }

[[faults]]
kind = "heal"
at = "20s"

[workload]
keys_per_node = 4
keys = 8
put_rate = 20.0
delete_fraction = 0.3
event_rate = 5.0
metadata_rate = 1.0
"#,
    )
    .expect("a valid scenario");
    s.seed = seed;
    if !workload {
        s.workload = Workload::default();
    }
    Sim::new(s).expect("valid").run()
}

#[test]
fn the_library_replays_a_run_with_writes_exactly() {
    // Scenario: puts, deletes, user events and metadata from many nodes,
    // with loss and a partition, twice with one seed: every message, every
    // data event and every figure agree. Another seed, or the same seed
    // without the writes, takes another path.
    let first = with_writes(11, true);
    assert!(first.updates > 100, "the workload wrote: {first:?}");
    assert!(first.data_bytes > 0, "data travelled: {first:?}");
    let second = with_writes(11, true);
    assert_eq!(first.trace_digest, second.trace_digest);
    assert_eq!(first, second);
    let other = with_writes(12, true);
    assert_ne!(first.trace_digest, other.trace_digest);
    let quiet = with_writes(11, false);
    assert_ne!(first.trace_digest, quiet.trace_digest);
}

/// Run with `args`, expect `code`, and return stderr.
fn fails_with(args: &[&str], code: i32) -> String {
    let out = rumour(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "rumour {} -> {:?}, stderr: {stderr}",
        args.join(" "),
        out.status
    );
    assert!(out.stdout.is_empty(), "no report on failure");
    stderr
}

#[test]
fn bad_arguments_are_usage_errors() {
    // clap's usage errors exit 2 and name the argument.
    for (args, arg) in [
        (&["sim", "--nodes", "0"][..], "--nodes"),
        (&["sim", "--loss", "2"][..], "--loss"),
        (&["sim", "--duration", "10"][..], "--duration"),
    ] {
        let stderr = fails_with(args, 2);
        assert!(stderr.contains(arg), "{stderr}");
    }
}

#[test]
fn an_unknown_scenario_is_a_one_line_error() {
    let stderr = fails_with(&["sim", "--scenario", "no-such-thing"], 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains("no-such-thing"), "{stderr}");
}

/// `rumour sim ... --plot DIR --json` into a fresh directory under the
/// test's temporary directory; returns the directory.
fn sim_plot(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("plot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = rumour(&[
        "sim",
        "--nodes",
        "30",
        "--duration",
        "20s",
        "--seed",
        "3",
        "--put-rate",
        "5",
        "--loss",
        "0.05",
        "--mode",
        "push",
        "--json",
        "--plot",
        dir.to_str().expect("a UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "rumour sim --plot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn plots_are_written_with_their_numbers_and_replay_exactly() {
    // Scenario: a small lossy run with writes, plotted twice with the same
    // seed into two directories.
    let a = sim_plot("a");
    let b = sim_plot("b");
    // 20 s in buckets of one LAN gossip interval (200 ms).
    let expected: [(&str, &str, std::ops::RangeInclusive<usize>); 4] = [
        (
            "membership",
            "time_s,running,complete,complete_fraction,known_fraction",
            100..=101,
        ),
        (
            "infection",
            "rounds,updates,mean,median,slowest_1pct,model",
            11..=1001,
        ),
        (
            "traffic",
            "time_s,msgs_per_node_s,bytes_per_node_s,",
            99..=101,
        ),
        (
            "suspicions",
            "time_s,suspected,false_suspected,died,false_died,",
            99..=101,
        ),
    ];
    for (name, header, rows) in expected {
        let svg = std::fs::read_to_string(a.join(format!("{name}.svg")))
            .unwrap_or_else(|e| panic!("{name}.svg: {e}"));
        assert!(svg.starts_with("<svg"), "{name}.svg starts with <svg");
        assert!(
            svg.trim_end().ends_with("</svg>"),
            "{name}.svg ends with </svg>"
        );
        let csv = std::fs::read_to_string(a.join(format!("{name}.csv")))
            .unwrap_or_else(|e| panic!("{name}.csv: {e}"));
        let mut lines = csv.lines();
        let head = lines.next().expect("a header");
        assert!(head.starts_with(header), "{name}.csv header: {head}");
        let columns = head.split(',').count();
        let body: Vec<&str> = lines.collect();
        assert!(
            rows.contains(&body.len()),
            "{name}.csv has {} rows, expected {rows:?}",
            body.len()
        );
        assert!(
            body.iter().all(|l| l.split(',').count() == columns),
            "{name}.csv rows have {columns} fields"
        );
        let again = std::fs::read_to_string(b.join(format!("{name}.csv"))).expect("second run");
        assert_eq!(csv, again, "{name}.csv replays");
        let svg_again = std::fs::read_to_string(b.join(format!("{name}.svg"))).expect("svg");
        assert_eq!(svg, svg_again, "{name}.svg replays");
    }
    // The cold start fills up: at the end every view is complete.
    let membership = std::fs::read_to_string(a.join("membership.csv")).unwrap();
    let last = membership.lines().last().unwrap();
    let complete: f64 = last.split(',').nth(3).unwrap().parse().unwrap();
    assert!(complete > 0.9, "membership at the end: {last}");
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn a_report_holds_the_plots_the_summary_and_an_index_and_its_numbers_add_up() {
    // Scenario: a small lossy run with a crash and writes, reported into a
    // directory, with node-2 explained.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = rumour(&[
        "sim",
        "--scenario",
        "crash",
        "--nodes",
        "30",
        "--seed",
        "5",
        "--put-rate",
        "5",
        "--loss",
        "0.05",
        "--json",
        "--explain",
        "node-2",
        "--report",
        dir.to_str().expect("a UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "rumour sim --report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let file = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let summary: Value = serde_json::from_str(&file("summary.json")).expect("summary.json");
    assert_eq!(summary["trace_digest"], printed["trace_digest"]);
    // The traffic CSV's own counts add up to the summary's totals.
    let traffic = file("traffic.csv");
    let mut lines = traffic.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).expect(name);
    let (m, b) = (col("msgs"), col("bytes"));
    let (mut msgs, mut bytes) = (0u64, 0u64);
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        msgs += f[m].parse::<u64>().unwrap();
        bytes += f[b].parse::<u64>().unwrap();
    }
    assert_eq!(
        msgs,
        summary["total_msgs"].as_u64().unwrap(),
        "messages add up"
    );
    assert_eq!(
        bytes,
        summary["total_bytes"].as_u64().unwrap(),
        "bytes add up"
    );
    // The index embeds every plot written and names the command and seed.
    let index = file("index.md");
    for name in ["membership", "infection", "traffic", "suspicions"] {
        let svg = file(&format!("{name}.svg"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(index.contains(&format!("![{name}]({name}.svg)")), "{index}");
    }
    assert!(
        index.contains("--report") && index.contains("Seed 5"),
        "{index}"
    );
    assert!(
        index.contains("## Explanation\n\n```text\nnode-2 ("),
        "{index}"
    );
    assert_eq!(printed["explain"]["name"], "node-2");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_report_dir_that_cannot_be_written_fails_before_the_run() {
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("report-file-{}", std::process::id()));
    std::fs::write(&file, b"not a directory").unwrap();
    let inside = file.join("out");
    let out = rumour(&[
        "sim",
        "--nodes",
        "10",
        "--duration",
        "1h",
        "--report",
        inside.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--report") && err.contains("cannot write"),
        "{err}"
    );
    // Before the run: no report line, nothing printed.
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_file(&file);
}

#[test]
fn the_dissemination_experiment_reports_its_rows_and_curves() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("report-experiment-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = rumour(&[
        "sim",
        "--experiment",
        "dissemination",
        "--sizes",
        "20",
        "--mode",
        "push",
        "--runs",
        "1",
        "--updates",
        "2",
        "--strict",
        "--report",
        dir.to_str().expect("a UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let index = std::fs::read_to_string(dir.join("index.md")).expect("index.md");
    let rows: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
            .expect("summary.json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["nodes"], 20);
    assert!(index.contains("![infection](infection.svg)"), "{index}");
    // The index holds the table as printed (but for the wall time).
    let first = printed.lines().nth(2).expect("a row");
    assert!(index.contains(first), "{index}\n---\n{printed}");
    let svg = std::fs::read_to_string(dir.join("infection.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}
