//! `rumour why NODE` and `rumour sim --explain NODE`: one member's
//! explanation ([`pb::ExplainResponse`]) as a timeline for people, or as
//! JSON for scripts. The agent's call and the simulation give the same
//! message, so both print alike; only the clock differs (Unix time from an
//! agent, time since the start from a simulation).

use rumour_proto::v1 as pb;
use serde_json::{json, Value};

use pb::member_change::Cause;

/// A member state's name.
fn state(s: i32) -> &'static str {
    match pb::MemberState::try_from(s) {
        Ok(pb::MemberState::Alive) => "alive",
        Ok(pb::MemberState::Suspect) => "suspect",
        Ok(pb::MemberState::Dead) => "dead",
        Ok(pb::MemberState::Left) => "left",
        Err(_) => "unknown",
    }
}

/// A time of the explanation: `12.345s` into a simulation, or the UTC time
/// of day with milliseconds from an agent.
fn at(ms: u64, simulated: bool) -> String {
    if simulated {
        return format!("{}.{:03}s", ms / 1000, ms % 1000);
    }
    let day = ms % 86_400_000;
    let (h, m, s) = (day / 3_600_000, day / 60_000 % 60, day / 1000 % 60);
    format!("{h:02}:{m:02}:{s:02}.{:03}", ms % 1000)
}

/// A duration in ms, as `2.5s` or `500ms`.
fn span(ms: u64) -> String {
    if ms >= 1000 {
        let s = format!("{:.3}", ms as f64 / 1000.0);
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{ms}ms")
    }
}

/// `name (address)` or the address alone.
fn peer(h: &pb::HeardFrom) -> String {
    if h.name.is_empty() {
        h.address.clone()
    } else {
        h.name.clone()
    }
}

/// Why a change happened, in one sentence.
fn cause(c: &pb::MemberChange, observer: &str) -> String {
    match &c.cause {
        Some(Cause::ProbeFailed(p)) => {
            let relays = if p.relays.is_empty() {
                "no relay to ask".to_string()
            } else {
                let each: Vec<String> = p
                    .relays
                    .iter()
                    .map(|r| {
                        let said = if r.nacked { "nacked" } else { "silent" };
                        format!("{} {said}", r.name)
                    })
                    .collect();
                format!("relays: {}", each.join(", "))
            };
            format!(
                "{observer}'s own probe failed: no ack within {}, none through the relays ({relays})",
                span(p.timeout_ms)
            )
        }
        Some(Cause::Rumour(h)) => heard("a rumour", h),
        Some(Cause::Sync(h)) => heard("a push-pull", h),
        Some(Cause::SuspicionTimedOut(_)) => {
            "the suspicion ran out without a refutation: this node's own verdict".to_string()
        }
        Some(Cause::Refuted(r)) => {
            let by = if r.by.is_empty() {
                String::new()
            } else {
                format!(" by {}", r.by)
            };
            format!(
                "refuted news of being {}{by}: raised its incarnation",
                state(r.claimed)
            )
        }
        Some(Cause::Reaped(_)) => "forgotten after dead_reap_after".to_string(),
        Some(Cause::Forgotten(_)) => "forgotten by an operator".to_string(),
        None => "no cause given".to_string(),
    }
}

fn heard(how: &str, h: &pb::HeardFrom) -> String {
    let mut s = format!("{how} from {}", peer(h));
    if !h.by.is_empty() {
        s.push_str(&format!(", declared by {}", h.by));
    }
    if h.doubted {
        s.push_str(" (news of a death, doubted: taken as a suspicion)");
    }
    s
}

/// The timeline: the member as held, then each change with its cause, a
/// suspicion's timeout and confirmations, and the health at the time.
pub(crate) fn timeline(r: &pb::ExplainResponse) -> String {
    let (sim, observer) = (r.simulated, r.observer.as_str());
    let mut out = match &r.member {
        Some(m) => format!(
            "{} ({}) as {observer} holds it: {}@{} since {}\n",
            r.name,
            m.address,
            state(m.state),
            m.incarnation,
            at(m.last_change_unix_ms, sim)
        ),
        None => format!("{} as {observer} remembers it: forgotten\n", r.name),
    };
    out.push_str(&format!("{observer}'s local health now: {}\n", r.health));
    if r.changes.is_empty() {
        out.push_str("no change since it joined\n");
        return out;
    }
    if r.dropped > 0 {
        out.push_str(&format!("({} older changes dropped)\n", r.dropped));
    }
    for c in &r.changes {
        out.push_str(&format!(
            "{}  {}@{}  {} [health {}]\n",
            at(c.at_ms, sim),
            state(c.state),
            c.incarnation,
            cause(c, observer),
            c.health
        ));
        if c.suspicion_timeout_ms > 0 {
            out.push_str(&format!(
                "    suspicion timeout {}",
                span(c.suspicion_timeout_ms)
            ));
            if c.confirmations.is_empty() {
                out.push_str(", no confirmation\n");
            } else {
                out.push('\n');
            }
        }
        for k in &c.confirmations {
            let by = if k.by == observer {
                format!("{observer}'s own failed probe")
            } else {
                k.by.clone()
            };
            out.push_str(&format!(
                "    {}  confirmed by {by}: timeout now {}, due {}\n",
                at(k.at_ms, sim),
                span(k.timeout_ms),
                at(c.at_ms + k.timeout_ms, sim)
            ));
        }
    }
    out
}

fn cause_json(c: &pb::MemberChange) -> Value {
    let heard = |kind: &str, h: &pb::HeardFrom| json!({"kind": kind, "from": h.address, "from_name": h.name, "by": h.by, "doubted": h.doubted});
    match &c.cause {
        Some(Cause::ProbeFailed(p)) => json!({
            "kind": "probe_failed",
            "timeout_ms": p.timeout_ms,
            "relays": p.relays.iter().map(|r| json!({"name": r.name, "nacked": r.nacked})).collect::<Vec<_>>(),
        }),
        Some(Cause::Rumour(h)) => heard("rumour", h),
        Some(Cause::Sync(h)) => heard("sync", h),
        Some(Cause::SuspicionTimedOut(_)) => json!({"kind": "suspicion_timed_out"}),
        Some(Cause::Refuted(r)) => {
            json!({"kind": "refuted", "claimed": state(r.claimed), "by": r.by})
        }
        Some(Cause::Reaped(_)) => json!({"kind": "reaped"}),
        Some(Cause::Forgotten(_)) => json!({"kind": "forgotten"}),
        None => Value::Null,
    }
}

/// The explanation as one JSON object.
pub(crate) fn json(r: &pb::ExplainResponse) -> String {
    let clock = if r.simulated {
        "ms_since_start"
    } else {
        "unix_ms"
    };
    let member = r.member.as_ref().map(|m| {
        json!({
            "address": m.address,
            "state": state(m.state),
            "incarnation": m.incarnation,
            "since": m.last_change_unix_ms,
        })
    });
    let changes: Vec<Value> = r
        .changes
        .iter()
        .map(|c| {
            json!({
                "at": c.at_ms,
                "state": state(c.state),
                "incarnation": c.incarnation,
                "health": c.health,
                "cause": cause_json(c),
                "suspicion_timeout_ms": (c.suspicion_timeout_ms > 0).then_some(c.suspicion_timeout_ms),
                "confirmations": c.confirmations.iter().map(|k| json!({
                    "by": k.by, "at": k.at_ms, "timeout_ms": k.timeout_ms,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let v = json!({
        "name": r.name,
        "observer": r.observer,
        "clock": clock,
        "member": member,
        "health": r.health,
        "dropped": r.dropped,
        "changes": changes,
    });
    format!("{v}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash() -> pb::ExplainResponse {
        let suspect = pb::MemberChange {
            at_ms: 10_120,
            state: pb::MemberState::Suspect as i32,
            incarnation: 0,
            health: 0,
            suspicion_timeout_ms: 6000,
            confirmations: vec![pb::Confirmation {
                by: "c".into(),
                at_ms: 10_300,
                timeout_ms: 4000,
            }],
            cause: Some(Cause::ProbeFailed(pb::ProbeFailed {
                timeout_ms: 200,
                relays: vec![
                    pb::RelayAnswer {
                        name: "b".into(),
                        nacked: true,
                    },
                    pb::RelayAnswer {
                        name: "c".into(),
                        nacked: false,
                    },
                ],
            })),
        };
        let dead = pb::MemberChange {
            at_ms: 14_120,
            state: pb::MemberState::Dead as i32,
            cause: Some(Cause::SuspicionTimedOut(pb::Empty {})),
            ..Default::default()
        };
        pb::ExplainResponse {
            name: "d".into(),
            member: Some(pb::Member {
                name: "d".into(),
                address: "127.0.0.1:7950".into(),
                state: pb::MemberState::Dead as i32,
                incarnation: 0,
                last_change_unix_ms: 14_120,
                public_key: String::new(),
            }),
            changes: vec![suspect, dead],
            dropped: 0,
            simulated: true,
            health: 0,
            observer: "a".into(),
        }
    }

    #[test]
    fn a_dead_verdict_reads_as_probes_confirmations_and_the_timeout() {
        let text = timeline(&crash());
        let expected = "\
d (127.0.0.1:7950) as a holds it: dead@0 since 14.120s
a's local health now: 0
10.120s  suspect@0  a's own probe failed: no ack within 200ms, none through the relays (relays: b nacked, c silent) [health 0]
    suspicion timeout 6s
    10.300s  confirmed by c: timeout now 4s, due 14.120s
14.120s  dead@0  the suspicion ran out without a refutation: this node's own verdict [health 0]
";
        assert_eq!(text, expected);
    }

    #[test]
    fn the_json_names_each_cause_and_the_clock() {
        let v: Value = serde_json::from_str(&json(&crash())).unwrap();
        assert_eq!(v["clock"], "ms_since_start");
        assert_eq!(v["changes"][0]["cause"]["kind"], "probe_failed");
        assert_eq!(v["changes"][0]["cause"]["relays"][1]["nacked"], false);
        assert_eq!(v["changes"][0]["confirmations"][0]["by"], "c");
        assert_eq!(v["changes"][1]["cause"]["kind"], "suspicion_timed_out");
        assert_eq!(v["changes"][1]["suspicion_timeout_ms"], Value::Null);
    }

    #[test]
    fn agent_times_read_as_utc_time_of_day() {
        // 2026-12-02 14:27:37.250 UTC.
        assert_eq!(at(1_796_221_657_250, false), "14:27:37.250");
        assert_eq!(span(2500), "2.5s");
        assert_eq!(span(4000), "4s");
    }
}
