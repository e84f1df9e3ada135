//! Pictures of a finished run: SVG plots, each with a CSV of the same
//! series beside it. This module only reads what the run measured (the
//! report, the time-bucketed [`Series`], the update tracker); the event
//! loop knows nothing of it.
//!
//! - `membership.svg`: fraction of running nodes whose view is complete,
//!   and the mean fraction of running members each knows, per bucket; the
//!   last start of the cold start marked.
//! - `infection.svg` (when the run wrote updates): fraction of nodes
//!   holding an update against rounds since its write: mean, median and
//!   the slowest 1%, a few single updates in light colour, and for push,
//!   pull and push-and-pull the synchronous-round model
//!   ([`crate::experiment::model_curve`]).
//! - `traffic.svg`: messages per node per second by kind, and bytes per
//!   node per second.
//! - `suspicions.svg`: suspicions and deaths over time, cumulative, with
//!   the false ones (of running members) apart; crashes marked.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use rumour_core::{Dissemination, Time};

use crate::metrics::Series;
use crate::updates::Tracker;
use crate::{Report, Sim};

/// Points per round of the infection curve.
const STEPS_PER_ROUND: usize = 10;
/// Single updates drawn in light colour.
const SINGLE_CURVES: usize = 5;
/// Plot size in pixels.
const SIZE: (u32, u32) = (900, 520);

/// Write the plots of a finished run into `dir` (created if missing);
/// returns the files written.
pub fn write(sim: &Sim, report: &Report, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let series = sim.series();
    let title = format!(
        "{} · {} nodes · seed {} · loss {:.0}% · {}",
        report.scenario,
        report.nodes,
        report.seed,
        report.loss * 100.0,
        sim.config().dissemination
    );
    let mut files = Vec::new();
    let mut put = |name: &str, (svg, csv): (String, String)| -> io::Result<()> {
        let svg_path = dir.join(format!("{name}.svg"));
        let csv_path = dir.join(format!("{name}.csv"));
        fs::write(&svg_path, svg)?;
        fs::write(&csv_path, csv)?;
        files.push(svg_path);
        files.push(csv_path);
        Ok(())
    };
    put("membership", membership(series, report, &title)?)?;
    let end = sim.now();
    if let Some(plot) = infection(sim.updates(), sim, end, &title)? {
        put("infection", plot)?;
    }
    put("traffic", traffic(series, report, &title)?)?;
    put("suspicions", suspicions(series, &title)?)?;
    Ok(files)
}

/// Write the infection curves of the dissemination experiment into `dir`
/// (created if missing): one line per row (mean over its updates, at each
/// whole round) and, dashed, the synchronous-round model of each (n, mode)
/// that has one. Returns the files written.
pub fn write_experiment(
    rows: &[crate::experiment::Row],
    seed: u64,
    dir: &Path,
) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut models: Vec<(String, Vec<f64>)> = Vec::new();
    for r in rows {
        let name = format!("model n={} {} k={}", r.nodes, r.mode, r.fanout);
        if models.iter().any(|m| m.0 == name) {
            continue;
        }
        let mode: Dissemination = match r.mode.parse() {
            Ok(m) => m,
            Err(_) => continue,
        };
        if let Some(c) = crate::experiment::model_curve(mode, r.fanout, r.nodes, seed) {
            models.push((name, c));
        }
    }
    let label = |r: &crate::experiment::Row| format!("n={} {} {}", r.nodes, r.mode, r.phases);
    // Up to two rounds past the slowest mean curve reaching 99.9%.
    let reach = |c: &[f64]| c.iter().position(|f| *f >= 0.999).unwrap_or(c.len());
    let len = rows.iter().map(|r| r.curve.len()).max().unwrap_or(0);
    let rounds = rows
        .iter()
        .map(|r| reach(&r.curve))
        .chain(models.iter().map(|m| reach(&m.1)))
        .max()
        .unwrap_or(0)
        .saturating_add(2)
        .min(len.saturating_sub(1))
        .max(1);
    let mut csv = String::from("rounds");
    for r in rows {
        let _ = write!(csv, ",{}", label(r));
    }
    for m in &models {
        let _ = write!(csv, ",{}", m.0);
    }
    csv.push('\n');
    for x in 0..=rounds {
        let _ = write!(csv, "{x}");
        for r in rows {
            let v = r.curve.get(x).copied().unwrap_or(f64::NAN);
            let _ = write!(csv, ",{v:.6}");
        }
        for m in &models {
            let _ = write!(csv, ",{:.6}", m.1.get(x).copied().unwrap_or(1.0));
        }
        csv.push('\n');
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "dissemination experiment: mean infection per round",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..rounds as f64, 0.0..1.05)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("rounds since the write")
            .y_desc("fraction of nodes holding it")
            .draw()
            .map_err(draw_err)?;
        for (j, r) in rows.iter().enumerate() {
            let color = Palette99::pick(j).to_rgba();
            let pts: Vec<(f64, f64)> = (0..=rounds)
                .filter_map(|x| r.curve.get(x).map(|v| (x as f64, *v)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(draw_err)?
                .label(label(r))
                .legend(legend_line(color));
        }
        for (j, m) in models.iter().enumerate() {
            let color = Palette99::pick(rows.len() + j).to_rgba();
            let pts: Vec<(f64, f64)> = (0..=rounds)
                .map(|x| (x as f64, m.1.get(x).copied().unwrap_or(1.0)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(pts, 6, 4, color.stroke_width(1)))
                .map_err(draw_err)?
                .label(m.0.clone())
                .legend(legend_line(color));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(draw_err)?;
    }
    let svg_path = dir.join("infection.svg");
    let csv_path = dir.join("infection.csv");
    fs::write(&svg_path, svg)?;
    fs::write(&csv_path, csv)?;
    Ok(vec![svg_path, csv_path])
}

fn draw_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(format!("plotting: {e}"))
}

fn secs(t: Time) -> f64 {
    t.as_secs_f64()
}

/// A vertical marker from `y.start` to `y.end` at `x`.
fn vline(x: f64, y: &Range<f64>) -> Vec<(f64, f64)> {
    vec![(x, y.start), (x, y.end)]
}

/// The legend box every chart carries, at `at`.
fn legend<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    at: SeriesLabelPosition,
) -> io::Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)
}

fn legend_line(color: RGBAColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

fn membership(series: &Series, report: &Report, title: &str) -> io::Result<(String, String)> {
    let width = series.bucket.as_secs_f64();
    let rows: Vec<(f64, usize, usize, f64, f64)> = series
        .membership
        .iter()
        .enumerate()
        .map(|(k, m)| {
            let running = m.running.max(1) as f64;
            (
                k as f64 * width,
                m.running,
                m.complete,
                m.complete as f64 / running,
                m.known as f64 / running / running,
            )
        })
        .collect();
    let mut csv = String::from("time_s,running,complete,complete_fraction,known_fraction\n");
    for (t, r, c, cf, kf) in &rows {
        let _ = writeln!(csv, "{t:.3},{r},{c},{cf:.6},{kf:.6}");
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let xmax = rows.last().map_or(1.0, |r| r.0).max(width);
        let y = 0.0..1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("membership · {title}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..xmax, y.clone())
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("fraction")
            .draw()
            .map_err(draw_err)?;
        let blue = BLUE.to_rgba();
        let green = RGBColor(0, 140, 60).to_rgba();
        chart
            .draw_series(LineSeries::new(
                rows.iter().map(|r| (r.0, r.4)),
                green.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label("alive members known, mean over running nodes")
            .legend(legend_line(green));
        chart
            .draw_series(LineSeries::new(
                rows.iter().map(|r| (r.0, r.3)),
                blue.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label("running nodes that see every running node alive")
            .legend(legend_line(blue));
        let grey = RGBColor(230, 120, 0).to_rgba();
        chart
            .draw_series(DashedLineSeries::new(
                vline(report.last_start_ms / 1e3, &y),
                6,
                4,
                grey.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(format!(
                "last start ({:.2} s); converged {}",
                report.last_start_ms / 1e3,
                report
                    .rounds_to_membership
                    .map_or("never".into(), |r| format!("{r:.1} rounds after it"))
            ))
            .legend(legend_line(grey));
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(draw_err)?;
    }
    Ok((svg, csv))
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn infection(
    tracker: &Tracker,
    sim: &Sim,
    end: Time,
    title: &str,
) -> io::Result<Option<(String, String)>> {
    let gi = sim.config().gossip_interval;
    let updates: Vec<_> = tracker.updates().filter(|u| u.target > 0).collect();
    if updates.is_empty() {
        return Ok(None);
    }
    // Fraction of nodes (the writer included) holding `u` at `x` rounds.
    let frac = |u: &crate::updates::Update, x: f64| {
        let until = u.at + gi.mul_f64(x);
        let held = u.times.partition_point(|t| *t <= until).min(u.target);
        (held + 1) as f64 / (u.target + 1) as f64
    };
    let seen = |u: &crate::updates::Update, x: f64| u.at + gi.mul_f64(x) <= end;
    // Up to the slowest completion, one round beyond, within 100 rounds.
    let slowest = updates
        .iter()
        .filter_map(|u| {
            u.complete
                .map(|c| (c - u.at).as_secs_f64() / gi.as_secs_f64())
        })
        .fold(1.0f64, f64::max);
    let rounds = (slowest.ceil() as usize + 1).min(100);
    let steps = rounds * STEPS_PER_ROUND;
    let singles: Vec<_> = updates
        .iter()
        .filter(|u| seen(u, rounds as f64))
        .take(SINGLE_CURVES)
        .collect();
    let config = sim.config();
    let model = match config.dissemination {
        Dissemination::Tree => None,
        mode => crate::experiment::model_curve(mode, config.fanout, sim.len(), sim.scenario().seed),
    };
    let mut csv = String::from("rounds,updates,mean,median,slowest_1pct,model");
    for s in 1..=singles.len() {
        let _ = write!(csv, ",update_{s}");
    }
    csv.push('\n');
    let mut mean_pts = Vec::new();
    let mut median_pts = Vec::new();
    let mut p1_pts = Vec::new();
    let mut single_pts = vec![Vec::new(); singles.len()];
    for step in 0..=steps {
        let x = step as f64 / STEPS_PER_ROUND as f64;
        let mut f: Vec<f64> = updates
            .iter()
            .filter(|u| seen(u, x))
            .map(|u| frac(u, x))
            .collect();
        if f.is_empty() {
            break;
        }
        f.sort_by(f64::total_cmp);
        let mean = f.iter().sum::<f64>() / f.len() as f64;
        let (median, p1) = (quantile(&f, 0.5), quantile(&f, 0.01));
        mean_pts.push((x, mean));
        median_pts.push((x, median));
        p1_pts.push((x, p1));
        let m = (step % STEPS_PER_ROUND == 0)
            .then(|| {
                model
                    .as_ref()
                    .map(|m| m.get(step / STEPS_PER_ROUND).copied().unwrap_or(1.0))
            })
            .flatten();
        let _ = write!(
            csv,
            "{x:.1},{},{mean:.6},{median:.6},{p1:.6},{}",
            f.len(),
            m.map_or(String::new(), |m| format!("{m:.6}"))
        );
        for (s, u) in singles.iter().enumerate() {
            let v = frac(u, x);
            single_pts[s].push((x, v));
            let _ = write!(csv, ",{v:.6}");
        }
        csv.push('\n');
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("infection of {} updates · {title}", updates.len()),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..rounds as f64, 0.0..1.05)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "rounds since the write (gossip interval {} ms)",
                gi.as_millis()
            ))
            .y_desc("fraction of nodes holding it")
            .draw()
            .map_err(draw_err)?;
        let light = RGBColor(150, 170, 230).mix(0.6);
        for (s, pts) in single_pts.into_iter().enumerate() {
            let drawn = chart
                .draw_series(LineSeries::new(pts, light.stroke_width(1)))
                .map_err(draw_err)?;
            if s == 0 {
                drawn.label("single updates").legend(legend_line(light));
            }
        }
        let red = RGBColor(200, 40, 40).to_rgba();
        chart
            .draw_series(LineSeries::new(p1_pts, red.stroke_width(2)))
            .map_err(draw_err)?
            .label("slowest 1% of updates")
            .legend(legend_line(red));
        let teal = RGBColor(0, 140, 140).to_rgba();
        chart
            .draw_series(LineSeries::new(median_pts, teal.stroke_width(1)))
            .map_err(draw_err)?
            .label("median")
            .legend(legend_line(teal));
        let blue = BLUE.to_rgba();
        chart
            .draw_series(LineSeries::new(mean_pts, blue.stroke_width(2)))
            .map_err(draw_err)?
            .label("mean")
            .legend(legend_line(blue));
        if let Some(model) = &model {
            let black = BLACK.to_rgba();
            let pts: Vec<(f64, f64)> = (0..=rounds)
                .map(|r| (r as f64, model.get(r).copied().unwrap_or(1.0)))
                .collect();
            chart
                .draw_series(DashedLineSeries::new(pts, 6, 4, black.stroke_width(1)))
                .map_err(draw_err)?
                .label(format!("synchronous-round model, fanout {}", config.fanout))
                .legend(legend_line(black));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Some((svg, csv)))
}

fn traffic(series: &Series, report: &Report, title: &str) -> io::Result<(String, String)> {
    let width = series.bucket.as_secs_f64();
    let per = |x: u64| x as f64 / report.nodes.max(1) as f64 / width;
    // Kinds in name order, so the columns do not depend on which came first.
    let mut kinds: Vec<(usize, &str)> = series.kinds.iter().copied().enumerate().collect();
    kinds.sort_by_key(|k| k.1);
    let mut csv = String::from("time_s,msgs_per_node_s,bytes_per_node_s");
    for (_, k) in &kinds {
        let _ = write!(csv, ",{k}_msgs_per_node_s");
    }
    // The bucket's own counts last: they add up to the report's totals.
    csv.push_str(",msgs,bytes\n");
    let mut total_msgs = Vec::new();
    let mut total_bytes = Vec::new();
    let mut by_kind = vec![Vec::new(); kinds.len()];
    for (b, t) in series.traffic.iter().enumerate() {
        let x = b as f64 * width;
        let (m, bytes) = (per(t.msgs), per(t.bytes));
        total_msgs.push((x, m));
        total_bytes.push((x, bytes));
        let _ = write!(csv, "{x:.3},{m:.3},{bytes:.1}");
        for (j, (i, _)) in kinds.iter().enumerate() {
            let v = per(t.by_kind.get(*i).map_or(0, |k| k.msgs));
            by_kind[j].push((x, v));
            let _ = write!(csv, ",{v:.3}");
        }
        let _ = writeln!(csv, ",{},{}", t.msgs, t.bytes);
    }
    let xmax = (series.traffic.len() as f64 * width).max(width);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, SIZE.1 * 3 / 2)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let root = root
            .titled(&format!("traffic · {title}"), ("sans-serif", 18))
            .map_err(draw_err)?;
        let (upper, lower) = root.split_vertically(SIZE.1 * 3 / 4);
        let mmax = total_msgs.iter().map(|p| p.1).fold(1.0, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(&upper)
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..mmax)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("messages / node / s")
            .draw()
            .map_err(draw_err)?;
        let black = BLACK.to_rgba();
        chart
            .draw_series(LineSeries::new(total_msgs, black.stroke_width(2)))
            .map_err(draw_err)?
            .label("all")
            .legend(legend_line(black));
        for (j, pts) in by_kind.into_iter().enumerate() {
            let color = Palette99::pick(j).to_rgba();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(1)))
                .map_err(draw_err)?
                .label(kinds[j].1)
                .legend(legend_line(color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        let bmax = total_bytes.iter().map(|p| p.1).fold(1.0, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(&lower)
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..bmax)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("bytes / node / s")
            .draw()
            .map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(total_bytes, BLUE.stroke_width(2)))
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok((svg, csv))
}

fn suspicions(series: &Series, title: &str) -> io::Result<(String, String)> {
    let width = series.bucket.as_secs_f64();
    let mut csv = String::from(
        "time_s,suspected,false_suspected,died,false_died,suspected_total,false_suspected_total,died_total,false_died_total\n",
    );
    let mut totals = [0u64; 4];
    let mut lines: [Vec<(f64, f64)>; 4] = Default::default();
    // Through the whole run, not only to the last suspicion.
    let buckets = series
        .suspicions
        .len()
        .max(series.traffic.len())
        .max(series.membership.len().saturating_sub(1));
    for b in 0..buckets {
        let s = series.suspicions.get(b).copied().unwrap_or_default();
        // Each point is the total at the end of its bucket.
        let x = (b + 1) as f64 * width;
        let row = [s.suspected, s.false_suspected, s.died, s.false_died];
        for (i, v) in row.iter().enumerate() {
            totals[i] += v;
            lines[i].push((x, totals[i] as f64));
        }
        let _ = writeln!(
            csv,
            "{x:.3},{},{},{},{},{},{},{},{}",
            row[0], row[1], row[2], row[3], totals[0], totals[1], totals[2], totals[3]
        );
    }
    let xmax = (buckets as f64 * width).max(width);
    let ymax = (totals.iter().copied().max().unwrap_or(0) as f64 * 1.05).max(1.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("suspicions and deaths · {title}"),
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc("announced so far (each observer counted)")
            .draw()
            .map_err(draw_err)?;
        let grey = RGBColor(150, 150, 150).to_rgba();
        for (c, at) in series.crashes.iter().enumerate() {
            let drawn = chart
                .draw_series(LineSeries::new(
                    vline(secs(*at), &(0.0..ymax)),
                    grey.stroke_width(1),
                ))
                .map_err(draw_err)?;
            if c == 0 {
                drawn.label("crash").legend(legend_line(grey));
            }
        }
        let styles = [
            ("suspected", RGBColor(230, 150, 0)),
            ("suspected while running (false)", RGBColor(240, 200, 60)),
            ("declared dead", RGBColor(40, 40, 40)),
            (
                "declared dead while running (false positive)",
                RGBColor(210, 30, 30),
            ),
        ];
        for (i, pts) in lines.into_iter().enumerate() {
            let (label, color) = styles[i];
            let color = color.to_rgba();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(draw_err)?
                .label(label)
                .legend(legend_line(color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(draw_err)?;
    }
    Ok((svg, csv))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Scenario;

    fn small() -> Scenario {
        let mut s = Scenario::from_toml(
            "name = \"t\"\nnodes = 20\nseed = 5\nduration = \"12s\"\n[workload]\nput_rate = 4.0\n[link]\nloss = 0.05\n",
        )
        .expect("a valid scenario");
        s.duration = Duration::from_secs(12);
        s
    }

    #[test]
    fn running_in_slices_measures_the_same_series() {
        let mut whole = Sim::new(small()).unwrap();
        whole.run_until(whole.end());
        let mut sliced = Sim::new(small()).unwrap();
        let end = sliced.end();
        while sliced.now() < end {
            let next = (sliced.now() + Duration::from_millis(333)).min(end);
            sliced.run_until(next);
        }
        assert_eq!(whole.series(), sliced.series());
        assert_eq!(whole.report(), sliced.report());
        let s = whole.series();
        assert_eq!(s.bucket, Duration::from_millis(200));
        // Boundaries 0, 0.2 s, ..., 12 s.
        assert_eq!(s.membership.len(), 61);
        let last = s.membership.last().unwrap();
        assert_eq!((last.running, last.complete), (20, 20));
        assert_eq!(last.known, 400);
        let msgs: u64 = s.traffic.iter().map(|t| t.msgs).sum();
        assert_eq!(msgs, whole.report().total_msgs);
    }

    #[test]
    fn the_plots_of_a_run_are_written() {
        let mut sim = Sim::new(small()).unwrap();
        sim.run_until(sim.end());
        let report = sim.final_report();
        let dir = std::env::temp_dir().join(format!("rumour-sim-plot-{}", std::process::id()));
        let files = write(&sim, &report, &dir).unwrap();
        assert_eq!(files.len(), 8, "{files:?}");
        for f in &files {
            let text = fs::read_to_string(f).unwrap();
            if f.extension().is_some_and(|e| e == "svg") {
                assert!(text.starts_with("<svg") && text.contains("</svg>"), "{f:?}");
            } else {
                assert!(text.lines().count() > 2, "{f:?}");
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_experiment_curves_are_written() {
        let plan = crate::experiment::Plan {
            nodes: vec![20],
            modes: vec![Dissemination::Push],
            fanout: 3,
            seeds: 1,
            seed: 1,
            updates: 2,
            loss: 0.0,
            phases: vec![crate::experiment::Phases::Lockstep],
            preset: "lan".into(),
            formed: true,
        };
        let rows = crate::experiment::run(&plan, |_| {}).unwrap();
        let dir = std::env::temp_dir().join(format!("rumour-exp-plot-{}", std::process::id()));
        let files = write_experiment(&rows, 1, &dir).unwrap();
        let svg = fs::read_to_string(&files[0]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("</svg>"));
        let csv = fs::read_to_string(&files[1]).unwrap();
        assert!(
            csv.starts_with("rounds,n=20 push lockstep,model n=20 push k=3\n"),
            "{csv}"
        );
        assert!(csv.lines().count() > 3, "{csv}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_model_curve_rises_from_one_node_to_all() {
        let c = crate::experiment::model_curve(Dissemination::Push, 3, 100, 1).unwrap();
        assert!((c[0] - 0.01).abs() < 1e-9);
        assert!((c.last().unwrap() - 1.0).abs() < 1e-9);
        assert!(c.windows(2).all(|w| w[0] <= w[1]));
        assert!(crate::experiment::model_curve(Dissemination::Tree, 3, 100, 1).is_none());
    }
}
