//! The client API's form of an explanation ([`rumour_core::Explanation`]):
//! one conversion for the agent's `Explain` call and the simulator's
//! `--explain`, so that both print the same timeline.

use rumour_core::{Cause, Change, Explanation, Member, MemberState, Time};

use crate::v1;

/// The API's member state.
pub fn state(s: MemberState) -> v1::MemberState {
    match s {
        MemberState::Alive => v1::MemberState::Alive,
        MemberState::Suspect => v1::MemberState::Suspect,
        MemberState::Dead => v1::MemberState::Dead,
        MemberState::Left => v1::MemberState::Left,
    }
}

/// The API's member, last changed at `since_ms`.
pub fn member(m: &Member, since_ms: u64) -> v1::Member {
    v1::Member {
        name: m.id.name().to_string(),
        address: m.id.addr().to_string(),
        state: state(m.state) as i32,
        incarnation: m.incarnation.0,
        last_change_unix_ms: since_ms,
        public_key: m.key.to_hex(),
    }
}

/// `e` as `observer` explains it through the API, with node times turned
/// into milliseconds by `ms` (Unix time for an agent; time since the start
/// for a simulation, with `simulated`), and `health` the observer's score
/// now.
pub fn explanation(
    observer: &str,
    e: &Explanation,
    ms: impl Fn(Time) -> u64,
    simulated: bool,
    health: u32,
) -> v1::ExplainResponse {
    v1::ExplainResponse {
        name: e.name.clone(),
        member: e.member.as_ref().map(|m| member(m, ms(m.since))),
        changes: e.changes.iter().map(|c| change(e, c, &ms)).collect(),
        dropped: e.dropped,
        simulated,
        health,
        observer: observer.to_string(),
    }
}

fn change(e: &Explanation, c: &Change, ms: &impl Fn(Time) -> u64) -> v1::MemberChange {
    use v1::member_change::Cause as Wire;
    let millis = |d: std::time::Duration| d.as_millis() as u64;
    let name = |s: &Option<std::sync::Arc<str>>| s.as_deref().unwrap_or_default().to_string();
    let heard = |from: &std::net::SocketAddr, by: &Option<std::sync::Arc<str>>, doubted: bool| {
        v1::HeardFrom {
            address: from.to_string(),
            name: e.peers.get(from).cloned().unwrap_or_default(),
            by: name(by),
            doubted,
        }
    };
    let cause = match &c.cause {
        Cause::Probe(p) => Wire::ProbeFailed(v1::ProbeFailed {
            timeout_ms: millis(p.timeout),
            relays: p
                .relays
                .iter()
                .map(|r| v1::RelayAnswer {
                    name: r.name.to_string(),
                    nacked: r.nacked,
                })
                .collect(),
        }),
        Cause::Rumour { from, by, doubted } => Wire::Rumour(heard(from, by, *doubted)),
        Cause::Sync { from, by, doubted } => Wire::Sync(heard(from, by, *doubted)),
        Cause::SuspicionTimedOut => Wire::SuspicionTimedOut(v1::Empty {}),
        Cause::Refuted { claimed, by } => Wire::Refuted(v1::Refuted {
            claimed: state(*claimed) as i32,
            by: name(by),
        }),
        Cause::Reaped => Wire::Reaped(v1::Empty {}),
        Cause::Forgotten => Wire::Forgotten(v1::Empty {}),
    };
    v1::MemberChange {
        at_ms: ms(c.at),
        state: state(c.state) as i32,
        incarnation: c.incarnation.0,
        health: c.health,
        suspicion_timeout_ms: c.timeout.map_or(0, millis),
        confirmations: c
            .confirmations
            .iter()
            .map(|k| v1::Confirmation {
                by: k.by.to_string(),
                at_ms: ms(k.at),
                timeout_ms: millis(k.timeout),
            })
            .collect(),
        cause: Some(cause),
    }
}
