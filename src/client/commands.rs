//! What each client command does: connect to the agent, make its one gRPC
//! call (or follow its watch stream) and write the answer to stdout.

use std::io::{self, Write};
use std::time::Duration;

use rumour_proto::v1 as pb;
use rumour_proto::v1::rumour_client::RumourClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::{InterceptedService, Interceptor};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use super::output::{
    cause_chain, gap_warning, keys_lines, members_all_json, members_json, members_table,
    read_details, reconnect_table, status_json, status_line, status_table, unreachable_line,
    untrusted_line, watch_line,
};
use super::{ClientCommand, Failure, Format, MetadataCommand};

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

/// Adds `authorization: Bearer TOKEN` to every call, if a token was given.
#[derive(Clone)]
pub(super) struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    fn new(token: Option<&str>) -> Result<Bearer, Failure> {
        let Some(token) = token else {
            return Ok(Bearer(None));
        };
        // The error never shows the token.
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}").parse().map_err(|_| {
            Failure::Message(
                "--token (or RUMOUR_API_TOKEN) must be visible ASCII characters only".into(),
            )
        })?;
        value.set_sensitive(true);
        Ok(Bearer(Some(value)))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut r: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// The client: a channel to the agent, with the token on every call.
pub(super) type Client = RumourClient<InterceptedService<Channel, Bearer>>;

pub(super) async fn execute(
    api: &str,
    token: Option<&str>,
    tls: Option<ClientTlsConfig>,
    cmd: ClientCommand,
) -> Result<(), Failure> {
    let bearer = Bearer::new(token)?;
    let mut client = connect(api, bearer, tls).await?;
    let failed = |s: Status| Failure::Message(status_line(api, &s));
    let mut out = io::stdout().lock();
    match cmd {
        ClientCommand::Members { format, all } => {
            let r = client
                .members(unary(pb::MembersRequest { all }))
                .await
                .map_err(failed)?
                .into_inner();
            let text = match (format, all) {
                (Format::Table, false) => members_table(&r.members),
                (Format::Json, false) => members_json(&r.members),
                (Format::Table, true) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    members_table(&r.members) + "\n" + &reconnect_table(&r.reconnect, now)
                }
                (Format::Json, true) => members_all_json(&r.members, &r.reconnect),
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
            keyring: Some(command),
            ..
        } => {
            let text = super::keys::execute(&mut client, command)
                .await
                .map_err(failed)?;
            out.write_all(text.table.as_bytes())?;
            out.flush()?;
            if let Some(problem) = text.problem {
                return Err(Failure::Message(problem));
            }
        }
        ClientCommand::Keys {
            keyring: None,
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
        ClientCommand::Forget { name } => {
            let held = client
                .forget(unary(pb::ForgetRequest { name: name.clone() }))
                .await
                .map_err(failed)?
                .into_inner()
                .held;
            if held {
                writeln!(out, "forgot {name}: its name is free here for a new key")?;
            } else {
                writeln!(
                    out,
                    "{name} was not a member here (and is off the reconnect list)"
                )?;
            }
        }
        ClientCommand::Why { name, format } => {
            let r = client
                .explain(unary(pb::ExplainRequest { name }))
                .await
                .map_err(failed)?
                .into_inner();
            let text = match format {
                Format::Table => super::why::timeline(&r),
                Format::Json => super::why::json(&r),
            };
            out.write_all(text.as_bytes())?;
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
        ClientCommand::Query {
            name,
            payload,
            timeout,
            filter_name,
            format,
        } => {
            let asked = super::query::Asked {
                name,
                payload,
                timeout,
                filter_name,
                format,
            };
            super::query::execute(&mut client, asked, &mut out, failed).await?;
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

/// Connect to the agent (over TLS with `tls`), or explain in one line why
/// not.
async fn connect(
    api: &str,
    bearer: Bearer,
    tls: Option<ClientTlsConfig>,
) -> Result<Client, Failure> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let uri = if api.contains("://") {
        api.to_string()
    } else {
        format!("{scheme}://{api}")
    };
    let bad = |e: tonic::transport::Error| {
        Failure::Message(format!(
            "--api {api:?} is not an address (want ip:port or host:port): {}",
            cause_chain(&e)
        ))
    };
    let endpoint = Endpoint::from_shared(uri.clone()).map_err(bad)?;
    let tls_on = tls.is_some();
    let endpoint = match tls {
        Some(tls) if uri.starts_with("https://") => endpoint.tls_config(tls).map_err(bad)?,
        Some(_) => {
            return Err(Failure::Message(format!(
                "--api {api:?} is not https but --ca asks for TLS: give the address as ip:port or https://host:port"
            )))
        }
        None if uri.starts_with("https://") => {
            return Err(Failure::Message(format!(
                "--api {api:?} is https: give the CA that signed the agent's certificate with --ca FILE (or RUMOUR_CA)"
            )))
        }
        None => endpoint,
    };
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    // The outer timeout also bounds name resolution; a listener that
    // accepts but never speaks HTTP/2 is caught by the keep-alive instead.
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(RumourClient::with_interceptor(channel, bearer)),
        Ok(Err(e)) => {
            let cause = cause_chain(&e);
            // rustls says "invalid peer certificate: ..." when the agent's
            // certificate is not trusted: the agent was reached.
            if tls_on && cause.contains("peer certificate") {
                Err(Failure::Message(untrusted_line(api, &cause)))
            } else if tls_on && cause.contains("corrupt message") {
                // What rustls makes of a plaintext HTTP/2 answer.
                Err(Failure::Message(format!(
                    "{} (--ca asks for TLS: does the agent serve it, with --tls-cert?)",
                    unreachable_line(api, &cause)
                )))
            } else {
                Err(Failure::Message(unreachable_line(api, &cause)))
            }
        }
        Err(_) => Err(Failure::Message(unreachable_line(
            api,
            &format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        ))),
    }
}

/// A unary request with the client's deadline.
pub(super) fn unary<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(CALL_TIMEOUT);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connecting_to_a_closed_port_fails_fast() {
        // Scenario: nothing listens on the port a listener just gave back.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = format!("127.0.0.1:{port}");
        match connect(&api, Bearer(None), None).await {
            Err(Failure::Message(m)) => assert!(
                m.starts_with(&format!("cannot reach the rumour agent at {api} ")),
                "{m}"
            ),
            other => panic!("expected an unreachable error, got {other:?}"),
        }
    }
}
