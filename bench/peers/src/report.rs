//! The table: one row per (n, loss, figure), one column per system, and
//! rumour ÷ the best peer. Every figure is lower-is-better.

use std::fmt::Write as _;

use serde::Serialize;

use crate::result::RunResult;
use crate::spec::System;

/// One figure: its label and how it is read from a result.
struct Figure {
    label: &'static str,
    value: fn(&RunResult) -> Option<f64>,
    /// Digits after the point.
    digits: usize,
}

const FIGURES: &[Figure] = &[
    Figure {
        label: "members known (rounds)",
        value: |r| r.formed_rounds,
        digits: 1,
    },
    Figure {
        label: "write to all: mean (rounds)",
        value: |r| r.write_rounds_mean,
        digits: 2,
    },
    Figure {
        label: "write to all: max (rounds)",
        value: |r| r.write_rounds_max,
        digits: 2,
    },
    Figure {
        label: "writes never arrived",
        value: |r| Some(r.writes_lost as f64),
        digits: 0,
    },
    Figure {
        label: "idle msgs/node/s",
        value: |r| Some(r.idle_msgs),
        digits: 1,
    },
    Figure {
        label: "idle payload B/node/s",
        value: |r| Some(r.idle_payload_bytes),
        digits: 0,
    },
    Figure {
        label: "idle wire B/node/s",
        value: |r| Some(r.idle_wire_bytes),
        digits: 0,
    },
    Figure {
        label: "CPU (cores, idle)",
        value: |r| r.cpu_cores,
        digits: 3,
    },
    Figure {
        label: "peak RSS (MiB)",
        value: |r| r.peak_rss_kib.map(|k| k as f64 / 1024.0),
        digits: 1,
    },
    Figure {
        label: "false dead declarations",
        value: |r| Some(r.false_dead as f64),
        digits: 0,
    },
];

/// A row of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub n: usize,
    pub loss: f64,
    pub figure: &'static str,
    /// One cell per system asked for, in the order asked; `None` if the run
    /// failed or the figure could not be measured.
    pub values: Vec<(System, Option<f64>)>,
    /// Set when a value is missing for a reason the run reported.
    pub notes: Vec<(System, String)>,
    /// rumour ÷ the smallest peer value.
    pub ratio: Option<f64>,
}

fn find(results: &[RunResult], s: System, n: usize, loss: f64) -> Option<&RunResult> {
    results
        .iter()
        .find(|r| r.system == s && r.n == n && r.loss == loss)
}

/// Why a figure has no value although the run finished.
fn note(f: &Figure, r: &RunResult) -> Option<String> {
    if (f.value)(r).is_some() {
        return None;
    }
    if r.formed_rounds.is_none() && f.label.starts_with("members") {
        return Some(format!("{} short", r.formed_short));
    }
    if r.write_rounds_mean.is_none() && f.label.starts_with("write to all") && r.writes > 0 {
        return Some("all lost".to_string());
    }
    None
}

pub fn rows(
    results: &[RunResult],
    systems: &[System],
    sizes: &[usize],
    losses: &[f64],
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &n in sizes {
        for &loss in losses {
            for f in FIGURES {
                let mut values = Vec::new();
                let mut notes = Vec::new();
                for &s in systems {
                    let r = find(results, s, n, loss);
                    values.push((s, r.and_then(|r| (f.value)(r))));
                    if let Some(text) = r.and_then(|r| note(f, r)) {
                        notes.push((s, text));
                    }
                }
                let ratio = ratio(&values);
                rows.push(Row {
                    n,
                    loss,
                    figure: f.label,
                    values,
                    notes,
                    ratio,
                });
            }
        }
    }
    rows
}

fn ratio(values: &[(System, Option<f64>)]) -> Option<f64> {
    let rumour = values.iter().find(|(s, _)| *s == System::Rumour)?.1?;
    let best = values
        .iter()
        .filter(|(s, _)| *s != System::Rumour)
        .filter_map(|(_, v)| *v)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))))?;
    if best == 0.0 {
        // Equal at zero, or rumour worse than a peer at zero.
        return Some(if rumour == 0.0 { 1.0 } else { f64::INFINITY });
    }
    Some(rumour / best)
}

/// Whether a row has a figure (or a reported reason) for every system.
pub fn complete(row: &Row) -> bool {
    row.values
        .iter()
        .all(|(s, v)| v.is_some() || row.notes.iter().any(|(t, _)| t == s))
}

fn cell(row: &Row, s: System, v: Option<f64>) -> String {
    let digits = FIGURES
        .iter()
        .find(|f| f.label == row.figure)
        .map_or(2, |f| f.digits);
    match v {
        Some(v) => format!("{v:.digits$}"),
        None => match row.notes.iter().find(|(t, _)| *t == s) {
            Some((_, text)) => text.clone(),
            None => "failed".to_string(),
        },
    }
}

/// The table in Markdown.
pub fn markdown(rows: &[Row], systems: &[System]) -> String {
    let mut out = String::from("| n | loss | figure |");
    for s in systems {
        let _ = write!(out, " {} |", s.name());
    }
    out.push_str(" rumour ÷ best peer |\n|---|---|---|");
    for _ in systems {
        out.push_str("---|");
    }
    out.push_str("---|\n");
    for row in rows {
        let _ = write!(
            out,
            "| {} | {:.0}% | {} |",
            row.n,
            row.loss * 100.0,
            row.figure
        );
        for (s, v) in &row.values {
            let _ = write!(out, " {} |", cell(row, *s, *v));
        }
        let ratio = match row.ratio {
            Some(r) if r.is_infinite() => "∞ (peer 0)".to_string(),
            Some(r) => format!("{r:.2}"),
            None => "—".to_string(),
        };
        let _ = writeln!(out, " {ratio} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_divides_by_the_best_peer() {
        let v = [
            (System::Rumour, Some(2.0)),
            (System::Chitchat, Some(4.0)),
            (System::Foca, Some(1.0)),
        ];
        assert_eq!(ratio(&v), Some(2.0));
        let zero = [(System::Rumour, Some(0.0)), (System::Foca, Some(0.0))];
        assert_eq!(ratio(&zero), Some(1.0));
        assert_eq!(ratio(&[(System::Rumour, Some(1.0))]), None);
    }
}
