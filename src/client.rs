//! The `rumour` client commands: one gRPC call (or one watch stream) against
//! a running agent's client API, printed for people and scripts.
//!
//! This module owns the command-line shape of those commands and the text
//! they print. It never holds cluster state and never retries: a command
//! prints what the agent answered, or one `error: ...` line on stderr and
//! exits 1. The formatting lives in small pure functions so that tests can
//! assert the exact output without an agent.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use rumour_proto::v1 as pb;
use rumour_proto::v1::rumour_client::RumourClient;
use serde_json::{json, Map, Value};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// How long to wait for the agent to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often to ping an idle connection, and how long to wait for the
/// answer: a watch notices a vanished host (or a listener that never
/// speaks HTTP/2) instead of hanging.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a unary call may take (a fresh read waits for the owner, then
/// falls back to the replica well within this).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The client API address option shared by every client command.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// The agent's client API address, ip:port or host:port.
    #[arg(
        long,
        env = "RUMOUR_API",
        default_value = "127.0.0.1:7947",
        global = true
    )]
    pub api: String,
}

/// Commands that talk to a running agent's client API.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// List the members this agent knows of.
    Members {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Write a key in this agent's namespace; prints the write's version.
    Put {
        /// The key.
        key: String,
        /// The value (stored as the argument's UTF-8 bytes).
        value: String,
    },
    /// Read a key; prints its value (raw bytes) and a newline.
    Get {
        /// Read this node's namespace [default: the agent's own].
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Ask the owner rather than the local replica.
        #[arg(long)]
        fresh: bool,
        /// Also print namespace, version and source to stderr.
        #[arg(short, long)]
        verbose: bool,
        /// The key.
        key: String,
    },
    /// Delete a key from this agent's namespace; exits 1 if it was not there.
    Del {
        /// The key.
        key: String,
    },
    /// List the keys of a namespace, one per line, in key order.
    Keys {
        /// List this node's namespace [default: the agent's own].
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Print `KEY<TAB>VALUE` (control characters escaped).
        #[arg(long)]
        values: bool,
    },
    /// Print the agent's events, one line each, until Ctrl-C.
    Watch {
        /// Only these kinds of event (repeatable or comma-separated) [default: all].
        #[arg(long = "kind", value_enum, value_delimiter = ',')]
        kinds: Vec<Kind>,
        /// Entry events of this node's namespace only.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Entry events whose key starts with this prefix only.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Join a cluster through one or more seed peer addresses.
    Join {
        /// Seed addresses, ip:port or host:port.
        #[arg(required = true, value_name = "ADDR")]
        addresses: Vec<String>,
    },
    /// Leave the cluster gracefully (the agent keeps serving reads).
    Leave,
    /// Send a user event to every live node; prints its version.
    Event {
        /// The event's name.
        name: String,
        /// The payload (UTF-8 bytes of the argument) [default: empty].
        #[arg(default_value = "")]
        payload: String,
    },
    /// Read or set the cluster-wide metadata register.
    Metadata {
        #[command(subcommand)]
        command: MetadataCommand,
    },
    /// Show this agent: identity, membership counts and counters.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also show the effective protocol configuration.
        #[arg(long)]
        config: bool,
    },
}

/// `rumour metadata get|set`.
#[derive(Subcommand, Debug)]
pub enum MetadataCommand {
    /// Print the register's value (exits 1 if none was published).
    Get {
        /// Also print origin and Lamport time to stderr.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Set the register (last writer wins); prints its Lamport time.
    Set {
        /// The value (UTF-8 bytes of the argument).
        value: String,
    },
}

/// Output format of `members` and `status`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// Kinds of event `watch` can filter on.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Membership changes.
    Member,
    /// Writes and deletes of entries.
    Entry,
    /// Changes of the cluster metadata register.
    Metadata,
    /// User events.
    User,
}

impl From<Kind> for pb::EventKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Member => pb::EventKind::Member,
            Kind::Entry => pb::EventKind::Entry,
            Kind::Metadata => pb::EventKind::Metadata,
            Kind::User => pb::EventKind::User,
        }
    }
}

/// Why a command stopped early.
#[derive(Debug)]
enum Failure {
    /// One line for stderr, without the `error: ` prefix.
    Message(String),
    /// Stdout was closed (say, piped into `head`): stop quietly.
    BrokenPipe,
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("cannot write to stdout: {e}"))
        }
    }
}

/// Run one client command against the agent at `api`; prints results to
/// stdout, errors as one line to stderr (`error: ...`), and returns the exit
/// code (0 ok, 1 on any error).
pub async fn run(api: &str, cmd: ClientCommand) -> ExitCode {
    match execute(api, cmd).await {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(m)) => {
            eprintln!("error: {}", one_line(&m));
            ExitCode::FAILURE
        }
    }
}

async fn execute(api: &str, cmd: ClientCommand) -> Result<(), Failure> {
    let mut client = connect(api).await?;
    let failed = |s: Status| Failure::Message(status_line(api, &s));
    let mut out = io::stdout().lock();
    match cmd {
        ClientCommand::Members { format } => {
            let r = client
                .members(unary(pb::MembersRequest {}))
                .await
                .map_err(failed)?
                .into_inner();
            let text = match format {
                Format::Table => members_table(&r.members),
                Format::Json => members_json(&r.members),
            };
            out.write_all(text.as_bytes())?;
        }
        ClientCommand::Put { key, value } => {
            let r = client
                .put(unary(pb::PutRequest {
                    key,
                    value: value.into_bytes(),
                    namespace: String::new(),
                }))
                .await
                .map_err(failed)?
                .into_inner();
            writeln!(out, "version {}", r.version)?;
        }
        ClientCommand::Get {
            node,
            fresh,
            verbose,
            key,
        } => {
            let r = client
                .get(unary(pb::GetRequest {
                    namespace: node.unwrap_or_default(),
                    key,
                    fresh,
                }))
                .await
                .map_err(failed)?
                .into_inner();
            if verbose {
                eprintln!("{}", read_details(&r));
            }
            out.write_all(&r.value)?;
            out.write_all(b"\n")?;
        }
        ClientCommand::Del { key } => {
            let r = client
                .delete(unary(pb::DeleteRequest {
                    key: key.clone(),
                    namespace: String::new(),
                }))
                .await
                .map_err(failed)?
                .into_inner();
            if !r.existed {
                return Err(Failure::Message(format!(
                    "no key {key:?} in this agent's namespace"
                )));
            }
            writeln!(out, "deleted (version {})", r.version)?;
        }
        ClientCommand::Keys {
            node,
            prefix,
            values,
        } => {
            let r = client
                .list(unary(pb::ListRequest {
                    namespace: node.unwrap_or_default(),
                    prefix,
                }))
                .await
                .map_err(failed)?
                .into_inner();
            out.write_all(keys_lines(&r.entries, values).as_bytes())?;
        }
        ClientCommand::Watch {
            kinds,
            node,
            prefix,
        } => {
            let request = pb::WatchRequest {
                kinds: kinds
                    .into_iter()
                    .map(|k| pb::EventKind::from(k) as i32)
                    .collect(),
                namespace: node.unwrap_or_default(),
                key_prefix: prefix,
            };
            // No deadline: a watch runs until the agent or the user ends it.
            let stream = client
                .watch(Request::new(request))
                .await
                .map_err(failed)?
                .into_inner();
            watch(api, stream, &mut out).await?;
        }
        ClientCommand::Join { addresses } => {
            let line = format!("joining through {}", addresses.join(", "));
            client
                .join(unary(pb::JoinRequest { addresses }))
                .await
                .map_err(failed)?;
            writeln!(out, "{line}")?;
        }
        ClientCommand::Leave => {
            client
                .leave(unary(pb::LeaveRequest {}))
                .await
                .map_err(failed)?;
            writeln!(out, "leaving the cluster (the agent keeps serving reads)")?;
        }
        ClientCommand::Event { name, payload } => {
            let r = client
                .send_event(unary(pb::SendEventRequest {
                    name,
                    payload: payload.into_bytes(),
                }))
                .await
                .map_err(failed)?
                .into_inner();
            writeln!(out, "version {}", r.version)?;
        }
        ClientCommand::Metadata {
            command: MetadataCommand::Get { verbose },
        } => {
            let r = client
                .get_metadata(unary(pb::GetMetadataRequest {}))
                .await
                .map_err(failed)?
                .into_inner();
            if verbose {
                eprintln!("origin={} lamport={}", r.origin, r.lamport);
            }
            out.write_all(&r.value)?;
            out.write_all(b"\n")?;
        }
        ClientCommand::Metadata {
            command: MetadataCommand::Set { value },
        } => {
            let r = client
                .publish_metadata(unary(pb::PublishMetadataRequest {
                    value: value.into_bytes(),
                }))
                .await
                .map_err(failed)?
                .into_inner();
            writeln!(out, "lamport {}", r.lamport)?;
        }
        ClientCommand::Status { format, config } => {
            let r = client
                .status(unary(pb::StatusRequest {}))
                .await
                .map_err(failed)?
                .into_inner();
            let text = match format {
                Format::Table => status_table(&r, config),
                Format::Json => status_json(&r, config),
            };
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Print watch events until the stream ends (exit 0), fails (exit 1) or the
/// user presses Ctrl-C (exit 0).
async fn watch(
    api: &str,
    mut stream: tonic::Streaming<pb::WatchEvent>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let mut listening = true;
    let mut last_seq = None;
    loop {
        tokio::select! {
            r = &mut interrupted, if listening => match r {
                Ok(()) => return Ok(()),
                // No signal handling here: rely on the default action.
                Err(_) => listening = false,
            },
            m = stream.message() => match m {
                Ok(Some(event)) => {
                    if let Some(w) = gap_warning(last_seq, event.seq) {
                        eprintln!("warning: {w}");
                    }
                    last_seq = Some(event.seq);
                    if let Some(line) = watch_line(&event) {
                        writeln!(out, "{line}")?;
                        out.flush()?;
                    }
                }
                Ok(None) => return Ok(()),
                Err(s) => return Err(Failure::Message(status_line(api, &s))),
            },
        }
    }
}

/// Connect to the agent, or explain in one line why not.
async fn connect(api: &str) -> Result<RumourClient<Channel>, Failure> {
    let uri = if api.contains("://") {
        api.to_string()
    } else {
        format!("http://{api}")
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| {
            Failure::Message(format!(
                "--api {api:?} is not an address (want ip:port or host:port): {}",
                cause_chain(&e)
            ))
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    // The outer timeout also bounds name resolution; a listener that
    // accepts but never speaks HTTP/2 is caught by the keep-alive instead.
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(RumourClient::new(channel)),
        Ok(Err(e)) => Err(Failure::Message(unreachable_line(api, &cause_chain(&e)))),
        Err(_) => Err(Failure::Message(unreachable_line(
            api,
            &format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        ))),
    }
}

/// A unary request with the client's deadline.
fn unary<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// The line for an agent that cannot be reached.
fn unreachable_line(api: &str, cause: &str) -> String {
    format!(
        "cannot reach the rumour agent at {api} (is `rumour agent` running? set --api or RUMOUR_API): {cause}"
    )
}

/// An error and its sources, `outer: inner: root`, skipping repeats.
fn cause_chain(e: &dyn StdError) -> String {
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
fn status_line(api: &str, s: &Status) -> String {
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
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes as text for line-oriented output: UTF-8 (lossily), with
/// backslashes and control characters escaped so one value stays one line.
fn printable(bytes: &[u8]) -> String {
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
fn columns(rows: &[Vec<String>]) -> String {
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
fn members_table(members: &[pb::Member]) -> String {
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
    })
}

/// `members` as a JSON array, pretty-printed, with a final newline.
fn members_json(members: &[pb::Member]) -> String {
    let v = Value::Array(members.iter().map(member_json).collect());
    format!("{v:#}\n")
}

/// `status` as aligned `field value` lines, then the counters (and with
/// `config` the configuration), each sorted by name.
fn status_table(s: &pb::StatusResponse, config: bool) -> String {
    let me = s.self_.clone().unwrap_or_default();
    let mut out = columns(&[
        vec!["name".into(), me.name],
        vec!["peer address".into(), s.peer_address.clone()],
        vec!["api address".into(), s.api_address.clone()],
        vec!["state".into(), state_name(me.state).into()],
        vec!["incarnation".into(), me.incarnation.to_string()],
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
fn status_json(s: &pb::StatusResponse, config: bool) -> String {
    let me = s.self_.clone().unwrap_or_default();
    let counters: BTreeMap<_, _> = s.counters.iter().collect();
    let mut v = Map::new();
    v.insert("name".into(), json!(me.name));
    v.insert("peer_address".into(), json!(s.peer_address));
    v.insert("api_address".into(), json!(s.api_address));
    v.insert("state".into(), json!(state_name(me.state)));
    v.insert("incarnation".into(), json!(me.incarnation));
    v.insert("left".into(), json!(s.left));
    v.insert("live_members".into(), json!(s.live_members));
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
fn read_details(r: &pb::GetResponse) -> String {
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
fn keys_lines(entries: &[pb::Entry], values: bool) -> String {
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
fn watch_line(e: &pb::WatchEvent) -> Option<String> {
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
fn gap_warning(last: Option<u64>, seq: u64) -> Option<String> {
    let missed = seq.checked_sub(last?.checked_add(1)?)?;
    (missed > 0).then(|| format!("missed {missed} events (this watcher fell behind)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn member(name: &str, address: &str, state: pb::MemberState, incarnation: u32) -> pb::Member {
        pb::Member {
            name: name.into(),
            address: address.into(),
            state: state as i32,
            incarnation,
            last_change_unix_ms: 1_700_000_000_000,
        }
    }

    fn event(event: pb::watch_event::Event) -> pb::WatchEvent {
        pb::WatchEvent {
            seq: 1,
            event: Some(event),
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
            members: 3,
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

    /// A stand-in for the binary's parser: the API flag at the top level,
    /// the client commands flattened beside it.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
        #[command(flatten)]
        api: ApiArgs,
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
                "left": false,
                "live_members": 2,
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
                event: None
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

    #[tokio::test]
    async fn connecting_to_a_closed_port_fails_fast() {
        // Scenario: nothing listens on the port a listener just gave back.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = format!("127.0.0.1:{port}");
        match connect(&api).await {
            Err(Failure::Message(m)) => assert!(
                m.starts_with(&format!("cannot reach the rumour agent at {api} ")),
                "{m}"
            ),
            other => panic!("expected an unreachable error, got {other:?}"),
        }
    }

    #[test]
    fn the_api_flag_is_global_and_commands_parse() {
        let cli = Cli::try_parse_from(["rumour", "get", "--node", "n2", "--fresh", "k"]).unwrap();
        assert_eq!(cli.api.api, "127.0.0.1:7947");
        assert!(matches!(
            cli.command,
            ClientCommand::Get { node: Some(ref n), fresh: true, verbose: false, ref key }
                if n == "n2" && key == "k"
        ));
        let cli = Cli::try_parse_from(["rumour", "members", "--api", "10.0.0.1:9000"]).unwrap();
        assert_eq!(cli.api.api, "10.0.0.1:9000");
        let cli = Cli::try_parse_from([
            "rumour",
            "watch",
            "--kind",
            "member,entry",
            "--kind",
            "user",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            ClientCommand::Watch { ref kinds, .. }
                if kinds == &[Kind::Member, Kind::Entry, Kind::User]
        ));
        let cli = Cli::try_parse_from(["rumour", "metadata", "set", "v"]).unwrap();
        assert!(matches!(
            cli.command,
            ClientCommand::Metadata { command: MetadataCommand::Set { ref value } } if value == "v"
        ));
        assert!(Cli::try_parse_from(["rumour", "join"]).is_err());
    }
}
