//! What the client commands print: tables, JSON and one-line texts for
//! answers, events and errors, as small pure functions that tests can check
//! without an agent.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use rumour_proto::v1 as pb;
use serde_json::{json, Map, Value};
use tonic::{Code, Status};

/// The line for an agent that cannot be reached.
pub(super) fn unreachable_line(api: &str, cause: &str) -> String {
    format!(
        "cannot reach the rumour agent at {api} (is `rumour agent` running? set --api or RUMOUR_API): {cause}"
    )
}

/// The line for an agent whose certificate the client refused (another
/// CA signed it, or it names another host): reached, but not trusted.
pub(super) fn untrusted_line(api: &str, cause: &str) -> String {
    format!(
        "the TLS handshake with {api} failed: {cause} (is --ca the CA that signed the agent's certificate, and does the certificate name the host of --api, or --tls-server-name?)"
    )
}

/// What to try when the agent dropped the connection: a TLS agent drops a
/// plaintext client, and one that requires client certificates drops a
/// client without one, neither with a message of its own.
pub(super) fn tls_hint(message: &str, tls: bool, client_cert: bool) -> Option<&'static str> {
    if !message.starts_with("lost the connection") {
        return None;
    }
    match (tls, client_cert) {
        (false, _) => Some("if the agent serves TLS, give its CA with --ca FILE"),
        (true, false) => {
            Some("if the agent requires client certificates, give --client-cert and --client-key")
        }
        (true, true) => None,
    }
}

/// An error and its sources, `outer: inner: root`, skipping repeats.
pub(super) fn cause_chain(e: &dyn StdError) -> String {
    chain_after(String::new(), Some(e))
}

/// `first` followed by `next` and its sources, skipping any text an
/// earlier part already contains.
fn chain_after(first: String, mut next: Option<&dyn StdError>) -> String {
    let mut parts: Vec<String> = vec![first];
    parts.retain(|p| !p.is_empty());
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// A gRPC error as one line: the agent's message, with a short prefix
/// naming the code where the message alone would not say it.
pub(super) fn status_line(api: &str, s: &Status) -> String {
    let message = if s.message().is_empty() {
        s.code().description().to_string()
    } else {
        s.message().to_string()
    };
    // Only a status raised by this client's own transport carries a source:
    // the agent did not answer at all.
    if let Some(source) = s.source() {
        return one_line(&format!(
            "lost the connection to the rumour agent at {api}: {}",
            chain_after(message, Some(source))
        ));
    }
    let prefix = match s.code() {
        // The agent's messages already say "no key ...", "no namespace ...".
        Code::NotFound => "",
        Code::InvalidArgument => "invalid argument: ",
        Code::PermissionDenied => "permission denied: ",
        Code::ResourceExhausted => "too large: ",
        Code::Unavailable => "agent unavailable: ",
        Code::DeadlineExceeded => "timed out: ",
        Code::Cancelled => "cancelled: ",
        Code::Unauthenticated => {
            return one_line(&format!(
                "the agent at {api} refused the call: {message} (give the agent's API token with --token or RUMOUR_API_TOKEN)"
            ))
        }
        Code::Unimplemented => {
            return one_line(&format!(
                "the server at {api} does not serve the rumour client API (is --api the agent's API address, not its peer address?): {message}"
            ))
        }
        _ => "",
    };
    one_line(&format!("{prefix}{message}"))
}

/// Collapse line breaks so an error stays on one line.
pub(super) fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes as text for line-oriented output: UTF-8 (lossily), with
/// backslashes and control characters escaped so one value stays one line.
pub(super) fn printable(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        if c == '\\' || c.is_control() {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    s
}

/// A member state's name: alive, suspect, dead or left.
fn state_name(state: i32) -> &'static str {
    match pb::MemberState::try_from(state) {
        Ok(pb::MemberState::Alive) => "alive",
        Ok(pb::MemberState::Suspect) => "suspect",
        Ok(pb::MemberState::Dead) => "dead",
        Ok(pb::MemberState::Left) => "left",
        Err(_) => "unknown",
    }
}

/// Rows as columns padded to their widest cell, two spaces apart, without
/// trailing spaces; each row ends in a newline.
pub(super) fn columns(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i] - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `members` as a table: NAME, ADDRESS, STATUS, INCARNATION.
pub(super) fn members_table(members: &[pb::Member]) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "ADDRESS".to_string(),
        "STATUS".to_string(),
        "INCARNATION".to_string(),
    ]];
    rows.extend(members.iter().map(|m| {
        vec![
            m.name.clone(),
            m.address.clone(),
            state_name(m.state).to_string(),
            m.incarnation.to_string(),
        ]
    }));
    columns(&rows)
}

fn member_json(m: &pb::Member) -> Value {
    json!({
        "name": m.name,
        "address": m.address,
        "status": state_name(m.state),
        "incarnation": m.incarnation,
        "last_change_unix_ms": m.last_change_unix_ms,
        "public_key": m.public_key,
    })
}

/// The reconnect list as a table: NAME, LAST ADDRESS, NEXT TRY (seconds
/// from `now_ms`), KEPT FOR (hours and minutes from `now_ms`); one line
/// saying it is empty otherwise.
pub(super) fn reconnect_table(list: &[pb::Reconnect], now_ms: u64) -> String {
    if list.is_empty() {
        return "reconnect list: empty\n".to_string();
    }
    let mut rows = vec![vec![
        "RECONNECT".to_string(),
        "LAST ADDRESS".to_string(),
        "NEXT TRY".to_string(),
        "KEPT FOR".to_string(),
    ]];
    rows.extend(list.iter().map(|r| {
        let next = r.next_try_unix_ms.saturating_sub(now_ms).div_ceil(1000);
        let kept = r.until_unix_ms.saturating_sub(now_ms) / 60_000;
        vec![
            r.name.clone(),
            r.address.clone(),
            format!("in {next} s"),
            format!("{}h {:02}m", kept / 60, kept % 60),
        ]
    }));
    columns(&rows)
}

/// `members --all` as one JSON object: `members` and `reconnect`.
pub(super) fn members_all_json(members: &[pb::Member], list: &[pb::Reconnect]) -> String {
    let reconnect: Vec<Value> = list
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "address": r.address,
                "next_try_unix_ms": r.next_try_unix_ms,
                "until_unix_ms": r.until_unix_ms,
            })
        })
        .collect();
    let v = json!({
        "members": members.iter().map(member_json).collect::<Vec<_>>(),
        "reconnect": reconnect,
    });
    format!("{v:#}\n")
}

/// `members` as a JSON array, pretty-printed, with a final newline.
pub(super) fn members_json(members: &[pb::Member]) -> String {
    let v = Value::Array(members.iter().map(member_json).collect());
    format!("{v:#}\n")
}

/// `status` as aligned `field value` lines, then the counters (and with
/// `config` the configuration), each sorted by name.
pub(super) fn status_table(s: &pb::StatusResponse, config: bool) -> String {
    let me = s.self_.clone().unwrap_or_default();
    let mut out = columns(&[
        vec!["name".into(), me.name],
        vec!["peer address".into(), s.peer_address.clone()],
        vec!["api address".into(), s.api_address.clone()],
        vec!["state".into(), state_name(me.state).into()],
        vec!["incarnation".into(), me.incarnation.to_string()],
        vec!["public key".into(), me.public_key.clone()],
        vec![
            "namespace".into(),
            format!("generation {} version {}", s.generation, s.version),
        ],
        vec![
            "members".into(),
            format!("{} live of {}", s.live_members, s.members),
        ],
        vec!["namespaces".into(), s.namespaces.to_string()],
    ]);
    let mut section = |title: &str, rows: Vec<Vec<String>>| {
        out.push_str(&format!("\n{title}:\n"));
        for line in columns(&rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    };
    let counters: BTreeMap<_, _> = s.counters.iter().collect();
    section(
        "counters",
        counters
            .into_iter()
            .map(|(k, v)| vec![k.clone(), v.to_string()])
            .collect(),
    );
    if config {
        let config: BTreeMap<_, _> = s.config.iter().collect();
        section(
            "config",
            config
                .into_iter()
                .map(|(k, v)| vec![k.clone(), v.clone()])
                .collect(),
        );
    }
    out
}

/// `status` as one pretty-printed JSON object with a final newline; the
/// `config` object (TOML value text by field) only when asked for.
pub(super) fn status_json(s: &pb::StatusResponse, config: bool) -> String {
    let me = s.self_.clone().unwrap_or_default();
    let counters: BTreeMap<_, _> = s.counters.iter().collect();
    let mut v = Map::new();
    v.insert("name".into(), json!(me.name));
    v.insert("peer_address".into(), json!(s.peer_address));
    v.insert("api_address".into(), json!(s.api_address));
    v.insert("state".into(), json!(state_name(me.state)));
    v.insert("incarnation".into(), json!(me.incarnation));
    v.insert("public_key".into(), json!(me.public_key));
    v.insert("generation".into(), json!(s.generation));
    v.insert("version".into(), json!(s.version));
    v.insert("left".into(), json!(s.left));
    v.insert("live_members".into(), json!(s.live_members));
    v.insert(
        "live_members_since_unix_micros".into(),
        json!(s.live_members_since_unix_micros),
    );
    v.insert("started_unix_micros".into(), json!(s.started_unix_micros));
    v.insert("members".into(), json!(s.members));
    v.insert("namespaces".into(), json!(s.namespaces));
    v.insert("counters".into(), json!(counters));
    if config {
        let config: BTreeMap<_, _> = s.config.iter().collect();
        v.insert("config".into(), json!(config));
    }
    format!("{:#}\n", Value::Object(v))
}

/// The `get -v` details line.
pub(super) fn read_details(r: &pb::GetResponse) -> String {
    let source = match pb::Source::try_from(r.source) {
        Ok(pb::Source::Owner) => "owner",
        Ok(pb::Source::Replica) => "replica",
        Err(_) => "unknown",
    };
    format!(
        "namespace={} version={} source={source}",
        r.namespace, r.version
    )
}

/// `keys`: one key per line, or `KEY<TAB>VALUE` with `values`.
pub(super) fn keys_lines(entries: &[pb::Entry], values: bool) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&printable(e.key.as_bytes()));
        if values {
            out.push('\t');
            out.push_str(&printable(&e.value));
        }
        out.push('\n');
    }
    out
}

/// One watch event as one line; `None` for an event this client does not
/// know (a newer agent).
pub(super) fn watch_line(e: &pb::WatchEvent) -> Option<String> {
    use pb::member_event::Change;
    use pb::watch_event::Event;
    Some(match e.event.as_ref()? {
        Event::Member(m) => {
            let change = match Change::try_from(m.change) {
                Ok(Change::Joined) => "joined",
                Ok(Change::Suspected) => "suspected",
                Ok(Change::Alive) => "alive",
                Ok(Change::Died) => "died",
                Ok(Change::Left) => "left",
                Err(_) => "changed",
            };
            let who = m.member.clone().unwrap_or_default();
            format!(
                "member {change} {} {} incarnation {}",
                who.name, who.address, who.incarnation
            )
        }
        Event::Entry(en) if en.deleted => format!(
            "entry {} {} deleted (version {})",
            en.namespace,
            printable(en.key.as_bytes()),
            en.version
        ),
        Event::Entry(en) => format!(
            "entry {} {} = {} (version {})",
            en.namespace,
            printable(en.key.as_bytes()),
            printable(&en.value),
            en.version
        ),
        Event::Metadata(md) => format!(
            "metadata from {} (lamport {}): {}",
            md.origin,
            md.lamport,
            printable(&md.value)
        ),
        Event::User(u) => format!(
            "event {} from {}: {}",
            printable(u.name.as_bytes()),
            u.origin,
            printable(&u.payload)
        ),
    })
}

/// A warning when event `seq` does not follow `last`: the agent dropped
/// events because this watcher fell behind.
pub(super) fn gap_warning(last: Option<u64>, seq: u64) -> Option<String> {
    let missed = seq.checked_sub(last?.checked_add(1)?)?;
    (missed > 0).then(|| format!("missed {missed} events (this watcher fell behind)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn member(name: &str, address: &str, state: pb::MemberState, incarnation: u32) -> pb::Member {
        pb::Member {
            name: name.into(),
            address: address.into(),
            state: state as i32,
            incarnation,
            last_change_unix_ms: 1_700_000_000_000,
            public_key: "ab".repeat(32),
        }
    }

    fn event(event: pb::watch_event::Event) -> pb::WatchEvent {
        pb::WatchEvent {
            seq: 1,
            event: Some(event),
            at_unix_micros: 1_700_000_000_000_000,
        }
    }

    fn status() -> pb::StatusResponse {
        pb::StatusResponse {
            self_: Some(member(
                "node-1",
                "127.0.0.1:7946",
                pb::MemberState::Alive,
                2,
            )),
            live_members: 2,
            live_members_since_unix_micros: 1_700_000_000_000_000,
            started_unix_micros: 1_699_999_990_000_000,
            members: 3,
            generation: 5,
            version: 17,
            counters: [
                ("pings_sent".to_string(), 12),
                ("acks_received".to_string(), 9),
            ]
            .into_iter()
            .collect(),
            config: [
                ("fanout".to_string(), "3".to_string()),
                ("dissemination".to_string(), "\"tree\"".to_string()),
            ]
            .into_iter()
            .collect(),
            namespaces: 2,
            peer_address: "127.0.0.1:7946".into(),
            api_address: "127.0.0.1:7947".into(),
            left: false,
        }
    }

    #[test]
    fn members_table_pads_columns_like_serf() {
        // Scenario: a three-node cluster where node-3 is suspected.
        let members = [
            member("node-1", "127.0.0.1:7946", pb::MemberState::Alive, 0),
            member("node-2", "127.0.0.1:17946", pb::MemberState::Alive, 12),
            member("node-3", "10.0.0.3:7946", pb::MemberState::Suspect, 1),
        ];
        assert_eq!(
            members_table(&members),
            "NAME    ADDRESS          STATUS   INCARNATION\n\
             node-1  127.0.0.1:7946   alive    0\n\
             node-2  127.0.0.1:17946  alive    12\n\
             node-3  10.0.0.3:7946    suspect  1\n"
        );
    }

    #[test]
    fn members_table_names_every_state() {
        let members = [
            member("a", "x", pb::MemberState::Dead, 1),
            member("b", "y", pb::MemberState::Left, 2),
            pb::Member {
                state: 99,
                ..member("c", "z", pb::MemberState::Alive, 3)
            },
        ];
        assert_eq!(
            members_table(&members),
            "NAME  ADDRESS  STATUS   INCARNATION\n\
             a     x        dead     1\n\
             b     y        left     2\n\
             c     z        unknown  3\n"
        );
    }

    #[test]
    fn tls_failures_say_which_flag_to_look_at() {
        let lost = "lost the connection to the rumour agent at a:1: broken pipe";
        assert_eq!(
            tls_hint(lost, false, false),
            Some("if the agent serves TLS, give its CA with --ca FILE")
        );
        assert!(tls_hint(lost, true, false).is_some_and(|h| h.contains("--client-cert")));
        assert_eq!(tls_hint(lost, true, true), None);
        assert_eq!(tls_hint("no key \"k\"", false, false), None);
        let line = untrusted_line("a:1", "invalid peer certificate: UnknownIssuer");
        assert!(line.starts_with("the TLS handshake with a:1 failed: invalid peer certificate"));
        assert!(line.contains("--ca") && line.contains("--tls-server-name"));
    }

    #[test]
    fn the_reconnect_list_reads_as_a_table() {
        let list = [pb::Reconnect {
            name: "gone".into(),
            address: "10.0.0.9:7946".into(),
            next_try_unix_ms: 1_000_012_500,
            until_unix_ms: 1_000_000_000 + 3_600_000 * 23 + 60_000 * 5,
        }];
        assert_eq!(
            reconnect_table(&list, 1_000_000_000),
            "RECONNECT  LAST ADDRESS   NEXT TRY  KEPT FOR\n\
             gone       10.0.0.9:7946  in 13 s   23h 05m\n"
        );
        assert_eq!(reconnect_table(&[], 0), "reconnect list: empty\n");
        let v: Value = serde_json::from_str(&members_all_json(&[], &list)).unwrap();
        assert_eq!(v["reconnect"][0]["name"], "gone");
        assert_eq!(v["members"], json!([]));
    }

    #[test]
    fn members_json_lists_objects() {
        let members = [member("node-1", "127.0.0.1:7946", pb::MemberState::Left, 4)];
        let v: Value = serde_json::from_str(&members_json(&members)).unwrap();
        assert_eq!(
            v,
            json!([{
                "name": "node-1",
                "address": "127.0.0.1:7946",
                "status": "left",
                "incarnation": 4,
                "last_change_unix_ms": 1_700_000_000_000u64,
                "public_key": "ab".repeat(32),
            }])
        );
        assert_eq!(members_json(&[]), "[]\n");
    }

    #[test]
    fn status_table_sorts_counters_and_shows_config_on_request() {
        assert_eq!(
            status_table(&status(), false),
            "name          node-1\n\
             peer address  127.0.0.1:7946\n\
             api address   127.0.0.1:7947\n\
             state         alive\n\
             incarnation   2\n\
             public key    abababababababababababababababababababababababababababababababab\n\
             namespace     generation 5 version 17\n\
             members       2 live of 3\n\
             namespaces    2\n\
             \n\
             counters:\n  \
               acks_received  9\n  \
               pings_sent     12\n"
        );
        assert!(status_table(&status(), true).ends_with(
            "\nconfig:\n  \
               dissemination  \"tree\"\n  \
               fanout         3\n"
        ));
    }

    #[test]
    fn status_json_is_one_object() {
        let v: Value = serde_json::from_str(&status_json(&status(), false)).unwrap();
        assert_eq!(
            v,
            json!({
                "name": "node-1",
                "peer_address": "127.0.0.1:7946",
                "api_address": "127.0.0.1:7947",
                "state": "alive",
                "incarnation": 2,
                "public_key": "ab".repeat(32),
                "generation": 5,
                "version": 17,
                "left": false,
                "live_members": 2,
                "live_members_since_unix_micros": 1_700_000_000_000_000u64,
                "started_unix_micros": 1_699_999_990_000_000u64,
                "members": 3,
                "namespaces": 2,
                "counters": {"acks_received": 9, "pings_sent": 12},
            })
        );
        let v: Value = serde_json::from_str(&status_json(&status(), true)).unwrap();
        assert_eq!(
            v["config"],
            json!({"dissemination": "\"tree\"", "fanout": "3"})
        );
    }

    #[test]
    fn watch_lines_read_as_sentences() {
        use pb::watch_event::Event;
        let joined = event(Event::Member(pb::MemberEvent {
            change: pb::member_event::Change::Joined as i32,
            member: Some(member(
                "node-2",
                "127.0.0.1:7948",
                pb::MemberState::Alive,
                5,
            )),
        }));
        assert_eq!(
            watch_line(&joined).unwrap(),
            "member joined node-2 127.0.0.1:7948 incarnation 5"
        );
        let died = event(Event::Member(pb::MemberEvent {
            change: pb::member_event::Change::Died as i32,
            member: Some(member("node-3", "10.0.0.3:7946", pb::MemberState::Dead, 1)),
        }));
        assert_eq!(
            watch_line(&died).unwrap(),
            "member died node-3 10.0.0.3:7946 incarnation 1"
        );
        let put = event(Event::Entry(pb::EntryEvent {
            namespace: "node-1".into(),
            key: "greeting".into(),
            version: 3,
            value: b"hello".to_vec(),
            deleted: false,
        }));
        assert_eq!(
            watch_line(&put).unwrap(),
            "entry node-1 greeting = hello (version 3)"
        );
        let del = event(Event::Entry(pb::EntryEvent {
            namespace: "node-1".into(),
            key: "greeting".into(),
            version: 4,
            value: Vec::new(),
            deleted: true,
        }));
        assert_eq!(
            watch_line(&del).unwrap(),
            "entry node-1 greeting deleted (version 4)"
        );
        let md = event(Event::Metadata(pb::MetadataEvent {
            value: b"v2".to_vec(),
            origin: "node-1".into(),
            lamport: 7,
        }));
        assert_eq!(
            watch_line(&md).unwrap(),
            "metadata from node-1 (lamport 7): v2"
        );
        let user = event(Event::User(pb::UserEvent {
            origin: "node-1".into(),
            name: "deploy".into(),
            payload: b"v1.2\nnow".to_vec(),
            lamport: 9,
        }));
        assert_eq!(
            watch_line(&user).unwrap(),
            "event deploy from node-1: v1.2\\nnow"
        );
        assert_eq!(
            watch_line(&pb::WatchEvent {
                seq: 1,
                event: None,
                at_unix_micros: 0,
            }),
            None
        );
    }

    #[test]
    fn gaps_in_seq_warn() {
        assert_eq!(gap_warning(None, 17), None);
        assert_eq!(gap_warning(Some(3), 4), None);
        assert_eq!(
            gap_warning(Some(3), 7).unwrap(),
            "missed 3 events (this watcher fell behind)"
        );
        // A seq that goes backwards is not a gap.
        assert_eq!(gap_warning(Some(9), 2), None);
    }

    #[test]
    fn keys_print_one_per_line_and_escape_values() {
        let entries = [
            pb::Entry {
                key: "a".into(),
                value: b"1".to_vec(),
                version: 1,
            },
            pb::Entry {
                key: "b".into(),
                value: b"x\ty\\z\xff".to_vec(),
                version: 2,
            },
        ];
        assert_eq!(keys_lines(&entries, false), "a\nb\n");
        assert_eq!(keys_lines(&entries, true), "a\t1\nb\tx\\ty\\\\z\u{fffd}\n");
        assert_eq!(keys_lines(&[], true), "");
    }

    #[test]
    fn get_details_name_the_source() {
        let r = pb::GetResponse {
            namespace: "node-2".into(),
            key: "k".into(),
            value: b"v".to_vec(),
            version: 8,
            source: pb::Source::Owner as i32,
        };
        assert_eq!(read_details(&r), "namespace=node-2 version=8 source=owner");
    }

    #[test]
    fn grpc_errors_are_one_line_with_a_short_prefix() {
        let api = "127.0.0.1:7947";
        assert_eq!(
            status_line(api, &Status::not_found("no key \"k\" in namespace \"n\"")),
            "no key \"k\" in namespace \"n\""
        );
        assert_eq!(
            status_line(
                api,
                &Status::permission_denied("node-2 owns that\nnamespace")
            ),
            "permission denied: node-2 owns that namespace"
        );
        assert_eq!(
            status_line(api, &Status::unavailable("the agent is shutting down")),
            "agent unavailable: the agent is shutting down"
        );
        assert_eq!(
            status_line(api, &Status::invalid_argument("")),
            "invalid argument: Client specified an invalid argument"
        );
        assert!(status_line(api, &Status::unimplemented(""))
            .starts_with("the server at 127.0.0.1:7947 does not serve the rumour client API"));
    }

    #[test]
    fn transport_failures_name_the_agent_and_the_cause() {
        // Scenario: the agent stopped in the middle of a watch.
        let io = io::Error::new(
            io::ErrorKind::BrokenPipe,
            "stream closed because of a broken pipe",
        );
        let mut s = Status::unknown("h2 protocol error: error reading a body from connection");
        s.set_source(std::sync::Arc::new(io));
        assert_eq!(
            status_line("127.0.0.1:7947", &s),
            "lost the connection to the rumour agent at 127.0.0.1:7947: \
             h2 protocol error: error reading a body from connection: \
             stream closed because of a broken pipe"
        );
    }

    #[test]
    fn unreachable_agent_is_one_clear_line() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            unreachable_line("127.0.0.1:7947", &cause_chain(&io)),
            "cannot reach the rumour agent at 127.0.0.1:7947 (is `rumour agent` running? \
             set --api or RUMOUR_API): Connection refused"
        );
    }
}
