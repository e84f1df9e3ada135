//! `rumour bench --versus-sim`: the same scenarios on real agents and in
//! the simulator, side by side.
//!
//! The real run gives its figures (below, [`Real`]), its cold start made
//! [`COLD_SEEDS`] times over (a cold start under loss ends with its
//! unluckiest joiner, so one run says little); the simulator then
//! runs the same cluster: the same size, preset and datagram size, node 0
//! the seed and the others starting within the window the real agents took
//! to come up, from when the seed answered (the bench starts it alone and
//! waits for it), the same settle and idle windows, the same number of 100-byte
//! puts about one a round, and one node killed after them. The link model
//! is the simulator's default (0.2 to 1 ms), loopback's order of
//! magnitude, with the real run's loss (`--loss`) and streams that behave
//! as TCP's (`[link] tcp_streams`: a loss delays, never drops) and, without
//! `--key`, the agents' reply budget (`[link] reply_budget`); a real partition
//! (`--partition-secs`) is simulated as a run of its own: the halves cut
//! apart from the end of the settle, a put a round meanwhile, then the
//! heal.
//!
//! It runs twice: once as the simulator models a cluster by default (a
//! machine per node, handling a message takes no time), and once on a
//! shared host ([`rumour::sim::Host`]) with this machine's cores, shared
//! fairly among the work ready for them as the kernel shares them among
//! the agents' threads (`scheduling = "fair"`: a woken node starts on its
//! messages at once, at a share of a core), and the agents' own CPU
//! costs: a wake-up from idle and a message, fitted to their cold start
//! and puts, a signature check, timed, and a start, the agents' own when
//! all start together, each alone.
//! Each figure
//! is printed with the ratio simulated ÷ real; a ratio within 0.8 to 1.25
//! is marked `agrees`.
//!
//! What the simulator counts as bytes is the encoded envelope, as the
//! agents' `transport_bytes_sent` does; run without `--key`, or the real
//! side carries the seal too.

use std::time::Duration;

use rumour::core::{Config, MESSAGES_IN_BY_KIND, MESSAGE_KINDS};
use rumour::sim::{Report, Scenario, Sim};

/// What the real run measured, for the comparison.
#[derive(Debug, Default)]
pub(super) struct Real {
    /// From the first agent's start until the last one's API answered.
    pub start_window: Duration,
    /// From the first agent's start until it, the seed, answered: the
    /// others start only then.
    pub seed_up: Duration,
    /// From the first agent's start until the last was launched.
    pub launch_window: Duration,
    /// From the last agent's start until every agent saw all live (ms, by
    /// the agents' own clocks), in
    /// each of [`COLD_SEEDS`] cold starts (this run's among them), sorted.
    pub cold_starts: Vec<f64>,
    /// Over the last cold start, to when all saw all: the messages the
    /// agents took in, the batches they took them in (all that arrived
    /// together, at once), and the batches that woke an agent from idle.
    pub cold_intake: Intake,
    /// The settle before the idle window, and the idle window.
    pub settle: Duration,
    pub idle: Duration,
    /// Envelopes sent per agent per second while idle, and their bytes.
    pub idle_msgs: f64,
    pub idle_bytes: f64,
    /// Puts made, and their time to everywhere (ms): mean and p99.
    pub puts: u64,
    pub put_mean_ms: f64,
    pub put_p99_ms: f64,
    /// From killing one agent until every other held it dead (not alive,
    /// not suspect); `None`: not within the wait.
    pub detection_ms: Option<f64>,
    /// The agents' CPU time per message taken in and per wake-up from
    /// idle, fitted to the last cold start and the puts (see [`cpu_fit`]),
    /// their start and signature checks apart.
    pub cpu_per_message: Duration,
    pub cpu_per_wakeup: Duration,
    /// What one signature verification costs this machine, alone and in a
    /// batch (the agents' checks are taken out of the other costs at
    /// these).
    pub per_signature: Duration,
    pub per_batched_signature: Duration,
    /// The CPU time of one agent's start, until its API answers (all
    /// started together, each alone).
    pub cpu_per_start: Duration,
    /// Packets dropped on the peer ports, in percent (`--loss`).
    pub loss_percent: u32,
    /// The agents ran with a cluster key (`--key`): no reply budget.
    pub keyed: bool,
    /// Failed probes (suspicions raised) and refutations from the first
    /// start until the end of the idle window, per agent per minute.
    pub failed_probes: f64,
    pub refutations: f64,
    /// Deaths the agents declared (each by its own suspicion timing out)
    /// over the same span, all of them false: nothing was killed yet.
    pub false_deaths: u64,
    /// The partition, if one was made (`--partition-secs`).
    pub cut: Option<Cut>,
}

/// What a partition and its heal measured.
#[derive(Debug)]
pub(super) struct Cut {
    /// How long the halves were cut apart.
    pub secs: Duration,
    /// Puts made during the cut.
    pub puts: usize,
    /// From the heal until every agent saw all alive.
    pub members_ms: Option<f64>,
    /// From the heal until every put of the cut was at every agent.
    pub data_ms: Option<f64>,
    /// From the heal until the kill (which then follows the cut).
    pub kill_after_heal: Duration,
}

/// Messages taken in, in how many batches, how many of which woke a node,
/// the sends dropped for a reply budget, and the messages the nodes took
/// by kind (`Stats::messages_in_by_kind`, summed).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Intake {
    pub taken: u64,
    pub batches: u64,
    pub after_idle: u64,
    pub over_budget: u64,
    pub by_kind: [u64; MESSAGE_KINDS.len()],
}

/// The agents' CPU seconds over a phase (their signature checks taken
/// out), the times they woke from idle in it, and the messages they took.
pub(super) struct Phase {
    pub cpu: f64,
    pub wakeups: f64,
    pub taken: f64,
}

/// The CPU of a wake-up from idle and of a message that account for both
/// phases: a cold start takes many messages awake, the puts wake for about
/// each one, so the two tell the costs apart. Where the exact solution has
/// a cost below zero (the phases are noisy), that cost is zero and the
/// other the least-squares fit to both.
pub(super) fn cpu_fit(cold: &Phase, puts: &Phase) -> (Duration, Duration) {
    let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
    let det = cold.wakeups * puts.taken - puts.wakeups * cold.taken;
    if det.abs() > f64::EPSILON {
        let wakeup = (cold.cpu * puts.taken - puts.cpu * cold.taken) / det;
        let message = (cold.wakeups * puts.cpu - puts.wakeups * cold.cpu) / det;
        if wakeup >= 0.0 && message >= 0.0 {
            return (secs(wakeup), secs(message));
        }
    }
    // One cost alone: the one whose fit leaves the smaller error.
    let alone = |x: fn(&Phase) -> f64| {
        let cost = (x(cold) * cold.cpu + x(puts) * puts.cpu)
            / (x(cold).powi(2) + x(puts).powi(2)).max(f64::EPSILON);
        let cost = cost.max(0.0);
        let error = (cold.cpu - cost * x(cold)).powi(2) + (puts.cpu - cost * x(puts)).powi(2);
        (cost, error)
    };
    let (wakeup, by_wakeups) = alone(|p| p.wakeups);
    let (message, by_messages) = alone(|p| p.taken);
    if by_wakeups <= by_messages {
        (secs(wakeup), Duration::ZERO)
    } else {
        (Duration::ZERO, secs(message))
    }
}

/// The scenario both simulated runs share: the cold start, then `rest`.
fn scenario(
    n: usize,
    preset: &str,
    datagram_size: Option<usize>,
    real: &Real,
    host: Option<usize>,
    rest: &str,
) -> Result<Scenario, String> {
    let config = match datagram_size {
        Some(size) => format!("[config]\ndatagram_size = {size}\n"),
        None => String::new(),
    };
    let host = match host {
        Some(cores) => format!(
            "[host]\ncores = {cores}\nper_message = \"{}us\"\nper_signature = \"{}us\"\n\
             per_batched_signature = \"{}us\"\nper_wakeup = \"{}us\"\nper_start = \"{}us\"\nscheduling = \"{}\"\n",
            real.cpu_per_message.as_micros(),
            real.per_signature.as_micros(),
            real.per_batched_signature.as_micros(),
            real.cpu_per_wakeup.as_micros(),
            real.cpu_per_start.as_micros(),
            "fair",
        ),
        None => String::new(),
    };
    // The agents' streams are TCP: what goes by stream is delayed by a
    // loss, not lost. Without a key they hold what they send to an
    // address they do not vouch for to what came from it.
    let link = format!(
        "[link]\ntcp_streams = true\nloss = {}\nreply_budget = {}\n",
        f64::from(real.loss_percent) / 100.0,
        !real.keyed,
    );
    // The seed starts alone and the others once it answered, launched
    // one after another as the bench launches them: on the shared host
    // each start then costs its CPU (`per_start`), and the starts queue
    // for the cores as the agents' processes do.
    let others_from = real.seed_up.as_micros();
    let window = real.launch_window.as_micros().max(others_from + 1000);
    let text = format!(
        "name = \"versus-real\"\nnodes = {n}\npreset = \"{preset}\"\nstart_window = \"{window}us\"\nothers_from = \"{others_from}us\"\n{rest}\n{config}{host}{link}",
    );
    Scenario::from_toml(&text).map_err(|e| format!("the simulated scenario: {e}"))
}

fn run(s: Scenario) -> Result<Report, String> {
    Ok(Sim::new(s).map_err(|e| e.to_string())?.run())
}

/// What the nodes took in from the first start until all saw all, read a
/// millisecond after (as the bench reads the agents' counters once they
/// do); `None` if they never did within the scenario.
fn cold_intake(s: Scenario) -> Result<Option<Intake>, String> {
    let mut sim = Sim::new(s).map_err(|e| e.to_string())?;
    while sim.now() < sim.end() {
        sim.run_for(Duration::from_millis(1));
        let r = sim.report();
        if r.membership_ms.is_some() {
            let counter = |name: &str| r.node_counters.get(name).copied().unwrap_or(0);
            return Ok(Some(Intake {
                taken: counter("messages_in"),
                batches: r.intake_batches,
                after_idle: r.intake_after_idle,
                over_budget: r.replies_over_budget,
                by_kind: MESSAGES_IN_BY_KIND.map(counter),
            }));
        }
    }
    Ok(None)
}

/// The simulated figures of one model: the idle run and the busy run.
struct Simulated {
    idle: Report,
    busy: Report,
    /// The partition and its heal, if the real run made one, under seeds
    /// 0 to [`COLD_SEEDS`] - 1 (seed 0 first).
    cuts: Vec<Report>,
    /// Without a cut: the kill's time until every other held it dead under
    /// seeds 0 to [`COLD_SEEDS`] - 1 (seed 0's is the busy run's).
    kills: Vec<Option<f64>>,
    /// Time to membership after the last start over [`COLD_SEEDS`] seeds,
    /// sorted (runs that never got there left out).
    cold: Vec<f64>,
    /// Seed 0's cold start, counted up to when all saw all.
    cold_intake: Option<Intake>,
}

/// Run both simulated scenarios, on a shared host of `host` cores or not.
fn simulate(
    n: usize,
    preset: &str,
    datagram_size: Option<usize>,
    real: &Real,
    host: Option<usize>,
) -> Result<Simulated, String> {
    let protocol = Config::preset(preset).map_err(|e| e.to_string())?;
    let round = protocol.gossip_interval;
    let ms = |d: Duration| d.as_millis();
    let sim = |rest: String| run(scenario(n, preset, datagram_size, real, host, &rest)?);
    // 100-byte puts one a round from `from` to `until`.
    let workload = |keys: usize, from: Duration, until: Duration| {
        format!(
            "[workload]\nput_rate = {}\nvalue_size = 100\nkeys = {}\nfrom = \"{}ms\"\nuntil = \"{}ms\"\n",
            1.0 / round.as_secs_f64(),
            keys.max(1),
            ms(from),
            ms(until)
        )
    };
    // Idle: the cold start, the settle, and the idle window measured.
    let idle_from = real.start_window + real.settle;
    let idle = sim(format!(
        "duration = \"{}ms\"\nmeasure_from = \"{}ms\"",
        ms(idle_from + real.idle),
        ms(idle_from)
    ))?;
    // Puts, one a round, then a kill once a push-pull interval has passed.
    let puts_from = idle_from + real.idle;
    let puts_until = puts_from + round * real.puts.max(1) as u32;
    let kill_at = puts_until + protocol.push_pull_interval;
    let end = kill_at + protocol.probe_period * 3 + protocol.suspicion_max + Duration::from_secs(5);
    let busy_run = |seed: u64| {
        sim(format!(
            "seed = {seed}\nduration = \"{}ms\"\n{}[[faults]]\nkind = \"crash\"\nat = \"{}ms\"\nnodes = \"{}\"\n",
            ms(end),
            workload(real.puts as usize, puts_from, puts_until),
            ms(kill_at),
            n - 1
        ))
    };
    let busy = busy_run(0)?;
    // The kill again under other seeds: where the probe order stands when
    // it comes decides how soon the dead node is probed, and one run says
    // little (the real one is one run too).
    let mut kills = vec![busy.detection_p50_ms];
    if real.cut.is_none() {
        for seed in 1..COLD_SEEDS {
            kills.push(busy_run(seed)?.detection_p50_ms);
        }
    }
    // The cold start again under other seeds: when the last joiner lands
    // decides whether its news goes down the tree or waits for a round.
    let cold_intake = cold_intake(scenario(
        n,
        preset,
        datagram_size,
        real,
        host,
        &format!("duration = \"{}ms\"", ms(idle_from)),
    )?)?;
    let mut cold: Vec<f64> = Vec::new();
    for seed in 1..COLD_SEEDS {
        let s = sim(format!("seed = {seed}\nduration = \"{}ms\"", ms(idle_from)))?;
        cold.extend(s.membership_ms);
    }
    cold.extend(idle.membership_ms);
    cold.sort_by(f64::total_cmp);
    // The cut: the halves apart from the end of the settle, a put a round
    // meanwhile, then the heal and time for both figures to settle.
    let mut cuts: Vec<Report> = Vec::new();
    if let Some(c) = &real.cut {
        let heal = idle_from + c.secs;
        let half = n / 2;
        // The kill as long after the heal as the real one: a cut leaves
        // local health raised for a while, and the kill's detection with
        // it.
        let kill_at = heal + c.kill_after_heal;
        let detected = kill_at + protocol.probe_period * 3 + protocol.suspicion_max;
        // Under several seeds: the phase of the push-pull rounds after the
        // heal decides how soon the cut's writes cross.
        for seed in 0..COLD_SEEDS {
            cuts.push(sim(format!(
                "seed = {seed}\nduration = \"{}ms\"\n{}\
                 [[faults]]\nkind = \"partition\"\nat = \"{}ms\"\ngroups = {{ a = \"0..{half}\", b = \"{half}..{n}\" }}\n\
                 [[faults]]\nkind = \"heal\"\nat = \"{}ms\"\n\
                 [[faults]]\nkind = \"crash\"\nat = \"{}ms\"\nnodes = \"{}\"\n",
                ms((heal + protocol.push_pull_interval * 6).max(detected) + Duration::from_secs(5)),
                workload(c.puts, idle_from, heal),
                ms(idle_from),
                ms(heal),
                ms(kill_at),
                n - 1,
            ))?);
        }
    }
    Ok(Simulated {
        idle,
        busy,
        cuts,
        kills,
        cold,
        cold_intake,
    })
}

/// A node counter of the idle run, per node per minute: from the first
/// start to the end of the idle window, as the agents' counters are read.
fn per_minute(s: &Simulated, name: &str) -> Option<f64> {
    let minutes = s.idle.simulated_s / 60.0;
    s.idle
        .node_counters
        .get(name)
        .map(|c| *c as f64 / s.idle.nodes as f64 / minutes)
}

/// Seeds the cold start and the cut are simulated with (0 and the next
/// ones), and real cold starts made.
pub(super) const COLD_SEEDS: u64 = 5;

/// The median of figures, a run that never got there (`None`) counting as
/// the slowest; of an even count, the upper middle one.
fn median(mut runs: Vec<Option<f64>>) -> Option<f64> {
    runs.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(y),
        (a, b) => b.is_some().cmp(&a.is_some()),
    });
    runs.get(runs.len() / 2).copied().flatten()
}

/// The median over the cut's seeds of one of its figures.
fn cut_median(s: &Simulated, figure: fn(&Report) -> Option<f64>) -> Option<f64> {
    median(s.cuts.iter().map(figure).collect())
}

/// Simulated ÷ real, marked when within 0.8 to 1.25.
fn ratio(real: Option<f64>, simulated: Option<f64>) -> String {
    match (real, simulated) {
        (Some(r), Some(s)) if r > 0.0 => {
            let q = s / r;
            let verdict = if (0.8..=1.25).contains(&q) {
                " agrees"
            } else {
                ""
            };
            format!("{q:.2}{verdict}")
        }
        _ => "-".into(),
    }
}

/// Each kind that any of the three took a message of, as `kind real / sim
/// / host`, the simulated ones `-` where a run never formed.
fn by_kind(real: &Intake, own: Option<&Intake>, shared: Option<&Intake>) -> String {
    let show = |i: Option<&Intake>, k: usize| i.map_or("-".into(), |i| i.by_kind[k].to_string());
    let taken = |i: Option<&Intake>, k: usize| i.is_some_and(|i| i.by_kind[k] > 0);
    let kinds: Vec<String> = (0..MESSAGE_KINDS.len())
        .filter(|&k| taken(Some(real), k) || taken(own, k) || taken(shared, k))
        .map(|k| {
            let (r, o, h) = (show(Some(real), k), show(own, k), show(shared, k));
            format!("{} {r} / {o} / {h}", MESSAGE_KINDS[k])
        })
        .collect();
    kinds.join(", ")
}

/// Run the simulator on the real run's scenarios, on machines of their own
/// and on a shared host of `cores` cores, and print both beside the real
/// figures.
pub(super) fn compare(
    n: usize,
    preset: &str,
    datagram_size: Option<usize>,
    real: &Real,
    cores: usize,
) -> Result<(), String> {
    let round_ms = Config::preset(preset)
        .map_err(|e| e.to_string())?
        .gossip_interval
        .as_secs_f64()
        * 1e3;
    let own = simulate(n, preset, datagram_size, real, None)?;
    let shared = simulate(n, preset, datagram_size, real, Some(cores))?;
    type Figure = fn(&Simulated, f64) -> Option<f64>;
    let mut rows: Vec<(&str, Option<f64>, Figure, &str)> = vec![
        (
            "cold start: messages taken",
            Some(real.cold_intake.taken as f64),
            |s, _| s.cold_intake.map(|c| c.taken as f64),
            "",
        ),
        (
            "cold start: batches taken",
            Some(real.cold_intake.batches as f64),
            // On a machine per node, a node takes each message alone.
            |s, _| {
                s.cold_intake.map(|c| match c.batches {
                    0 => c.taken as f64,
                    b => b as f64,
                })
            },
            "",
        ),
        (
            "cold start: batches that woke a node",
            Some(real.cold_intake.after_idle as f64),
            // Only a shared host models idling.
            |s, _| {
                s.cold_intake
                    .filter(|c| c.batches > 0)
                    .map(|c| c.after_idle as f64)
            },
            "",
        ),
        (
            "cold start: sends over a reply budget",
            Some(real.cold_intake.over_budget as f64),
            |s, _| s.cold_intake.map(|c| c.over_budget as f64),
            "",
        ),
        (
            "cold start after the last start, median",
            median(real.cold_starts.iter().copied().map(Some).collect()),
            |s, _| {
                // Seeds that never reached membership count as the slowest.
                let never = (COLD_SEEDS as usize).saturating_sub(s.cold.len());
                median(
                    s.cold
                        .iter()
                        .copied()
                        .map(Some)
                        .chain(vec![None; never])
                        .collect(),
                )
            },
            "ms",
        ),
        (
            "idle: messages per node per second",
            Some(real.idle_msgs),
            |s, _| Some(s.idle.msgs_per_node_per_s),
            "",
        ),
        (
            "idle: envelope bytes per node per second",
            Some(real.idle_bytes),
            |s, _| Some(s.idle.bytes_per_node_per_s),
            "B",
        ),
        (
            "put to everywhere, mean",
            Some(real.put_mean_ms),
            |s, r| s.busy.update_rounds_mean.map(|x| x * r),
            "ms",
        ),
        (
            "put to everywhere, p99",
            Some(real.put_p99_ms),
            |s, r| s.busy.update_rounds_p99.map(|x| x * r),
            "ms",
        ),
        (
            "a killed node held dead by every other",
            real.detection_ms,
            // The median of the seeds, after the cut's heal if there was
            // one, as in the real run.
            |s, _| match s.cuts.is_empty() {
                true => median(s.kills.clone()),
                false => cut_median(s, |c| c.detection_p50_ms),
            },
            "ms",
        ),
    ];
    if real.loss_percent > 0 {
        rows.push((
            "failed probes per node per minute",
            Some(real.failed_probes),
            |s, _| per_minute(s, "failed_probes"),
            "",
        ));
        rows.push((
            "refutations per node per minute",
            Some(real.refutations),
            |s, _| per_minute(s, "refutations"),
            "",
        ));
        rows.push((
            "false deaths declared, to the end of idle",
            Some(real.false_deaths as f64),
            |s, _| {
                s.idle
                    .node_counters
                    .get("deaths_declared")
                    .map(|c| *c as f64)
            },
            "",
        ));
    }
    if let Some(c) = &real.cut {
        rows.push((
            "after the heal: all see all alive",
            c.members_ms,
            |s, _| cut_median(s, |c| c.heal_members_ms),
            "ms",
        ));
        rows.push((
            "after the heal: every put of the cut everywhere",
            c.data_ms,
            |s, _| cut_median(s, |c| c.heal_data_ms),
            "ms",
        ));
    }
    println!(
        "simulator versus real: {n} nodes, {preset} preset, datagram size {}, seed 0 \
         (the cold start: the median of {COLD_SEEDS} real runs against that of seeds 0-{}; the kill, and what follows a cut: \
         the median of seeds 0-{}), link latency {}; \
         simulated on a machine per node, and on one host of {cores} cores shared fairly at {} µs of CPU per message \
         taken and {} µs per wake-up from idle (the agents' own, fitted to their cold start and puts), \
         {} µs per signature verified ({} in a batch), {} µs per start (the agents started together, each alone); loss {}%; \
         ratio = simulated / real, `agrees` within 0.8 to 1.25",
        datagram_size.map_or("none (streams)".to_string(), |s| s.to_string()),
        COLD_SEEDS - 1,
        COLD_SEEDS - 1,
        own.idle.latency,
        real.cpu_per_message.as_micros(),
        real.cpu_per_wakeup.as_micros(),
        real.per_signature.as_micros(),
        real.per_batched_signature.as_micros(),
        real.cpu_per_start.as_micros(),
        real.loss_percent,
    );
    println!(
        "{:<46} {:>11} {:>11} {:>12} {:>11} {:>12}",
        "figure", "real", "sim", "ratio", "sim, host", "ratio"
    );
    for (name, r, figure, unit) in rows {
        let missing = if unit == "ms" { "never" } else { "-" };
        let show = |v: Option<f64>| v.map_or(missing.to_string(), |v| format!("{v:.1} {unit}"));
        let (a, b) = (figure(&own, round_ms), figure(&shared, round_ms));
        println!(
            "{name:<46} {:>11} {:>11} {:>12} {:>11} {:>12}",
            show(r),
            show(a),
            ratio(r, a),
            show(b),
            ratio(r, b)
        );
    }
    let cold: Vec<String> = real.cold_starts.iter().map(|c| format!("{c:.1}")).collect();
    println!("real cold starts: {} ms", cold.join(", "));
    let kinds = by_kind(
        &real.cold_intake,
        own.cold_intake.as_ref(),
        shared.cold_intake.as_ref(),
    );
    println!("cold start, messages the nodes took by kind (real / sim / sim, host): {kinds}");
    for (model, s) in [("a machine per node", &own), ("the shared host", &shared)] {
        let cold: Vec<String> = s.cold.iter().map(|c| format!("{c:.1}")).collect();
        println!(
            "simulated cold start on {model}, seeds 0-{}: {} ms ({} of {} reached membership)",
            COLD_SEEDS - 1,
            cold.join(", "),
            s.cold.len(),
            COLD_SEEDS
        );
        println!(
            "simulated on {model}: {} puts tracked, delivery {:.3}; false dead declarations {} (idle run {}); the kill detected by all: {} of {}",
            s.busy.updates,
            s.busy.update_delivery_ratio.unwrap_or(f64::NAN),
            s.busy.false_positives,
            s.idle.false_positives,
            s.busy.detected,
            s.busy.crashes
        );
        if s.cuts.is_empty() {
            let kills: Vec<String> = s
                .kills
                .iter()
                .map(|k| k.map_or("never".into(), |x| format!("{x:.0}")))
                .collect();
            println!(
                "simulated kill on {model}, seeds 0-{}: held dead by every other after {} ms",
                COLD_SEEDS - 1,
                kills.join(", ")
            );
        }
        if let Some(c) = s.cuts.first() {
            println!(
                "simulated cut on {model}: {} puts, delivery {:.3}, dead declarations across the cut {}; the kill {:.1} s after the heal detected by all: {} of {}",
                c.updates,
                c.update_delivery_ratio.unwrap_or(f64::NAN),
                c.false_positives,
                real.cut.as_ref().map_or(0.0, |r| r.kill_after_heal.as_secs_f64()),
                c.detected,
                c.crashes
            );
            let seeds = |f: fn(&Report) -> Option<f64>| -> String {
                let v: Vec<String> = s
                    .cuts
                    .iter()
                    .map(|c| f(c).map_or("never".into(), |x| format!("{x:.0}")))
                    .collect();
                v.join(", ")
            };
            println!(
                "simulated cut on {model}, seeds 0-{}: all see all after the heal {} ms; every put of the cut everywhere {} ms; the kill held dead {} ms",
                COLD_SEEDS - 1,
                seeds(|c| c.heal_members_ms),
                seeds(|c| c.heal_data_ms),
                seeds(|c| c.detection_p50_ms)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{cold_intake, cpu_fit, median, scenario, Phase, Real};
    use std::time::Duration;

    #[test]
    fn the_cost_of_a_wakeup_and_of_a_message_come_back_from_two_phases() {
        // 100 µs a wake-up and 20 µs a message: a cold start of 10,000
        // messages after 1,000 wake-ups, and puts of 3,000 after 2,800.
        let phase = |wakeups: f64, taken: f64| Phase {
            cpu: wakeups * 100e-6 + taken * 20e-6,
            wakeups,
            taken,
        };
        let (wakeup, message) = cpu_fit(&phase(1000.0, 10_000.0), &phase(2800.0, 3000.0));
        assert_eq!(wakeup.as_micros(), 100);
        assert_eq!(message.as_micros(), 20);
        // Phases that no costs of zero or more explain exactly: the puts
        // cheaper than the cold start's messages alone. The wake-ups then
        // cost nothing, and the messages what fits both best: 27.8 µs
        // (0.3 s over 10,000 and 0.01 s over 3,000).
        let cold = phase(1000.0, 10_000.0);
        let cheap = Phase {
            cpu: 0.01,
            wakeups: 2800.0,
            taken: 3000.0,
        };
        let (wakeup, message) = cpu_fit(&cold, &cheap);
        assert_eq!(wakeup, Duration::ZERO);
        assert_eq!(message.as_micros(), 27);
        // And the other way round: a cold start that cost less than its
        // wake-ups at the puts' rate puts everything on the wake-ups.
        let quiet = Phase {
            cpu: 0.03,
            wakeups: 259.0,
            taken: 1040.0,
        };
        let busy = Phase {
            cpu: 0.38,
            wakeups: 3030.0,
            taken: 3497.0,
        };
        let (wakeup, message) = cpu_fit(&quiet, &busy);
        assert_eq!((wakeup.as_micros(), message), (125, Duration::ZERO));
    }

    #[test]
    fn the_cold_start_intake_is_counted_until_all_see_all() {
        // 20 nodes on 2 shared cores: the batches are fewer than the
        // messages, and no more of them woke a node than were taken. On a
        // machine per node nothing is batched; a run too short to form
        // counts nothing.
        let real = Real {
            start_window: Duration::from_millis(300),
            launch_window: Duration::from_millis(300),
            per_signature: Duration::from_micros(40),
            per_batched_signature: Duration::from_micros(30),
            cpu_per_wakeup: Duration::from_micros(150),
            ..Default::default()
        };
        let cold = |host, ms: u64| {
            let rest = format!("duration = \"{ms}ms\"");
            cold_intake(scenario(20, "lan", Some(1336), &real, host, &rest).unwrap()).unwrap()
        };
        let shared = cold(Some(2), 5000).expect("formed");
        assert!(shared.taken > 0, "{shared:?}");
        assert!(shared.batches < shared.taken, "{shared:?}");
        assert!(shared.after_idle <= shared.batches, "{shared:?}");
        let own = cold(None, 5000).expect("formed");
        assert!(own.taken > 0 && own.batches == 0, "{own:?}");
        assert!(cold(Some(2), 100).is_none());
    }

    #[test]
    fn a_run_that_never_got_there_counts_as_the_slowest_in_a_median() {
        assert_eq!(median(vec![Some(3.0), None, Some(1.0)]), Some(3.0));
        assert_eq!(median(vec![None, Some(2.0), None]), None);
        let five = [5.0, 1.0, 3.0, 4.0, 2.0].map(Some).to_vec();
        assert_eq!(median(five), Some(3.0));
        assert_eq!(median(vec![Some(2.0), Some(1.0)]), Some(2.0));
        assert_eq!(median(Vec::new()), None);
    }
}
