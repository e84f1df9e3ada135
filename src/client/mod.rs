//! The `rumour` client commands: one gRPC call (or one watch stream) against
//! a running agent's client API, printed for people and scripts.
//!
//! This module owns the command-line shape of those commands and the text
//! they print. It never holds cluster state and never retries: a command
//! prints what the agent answered, or one `error: ...` line on stderr and
//! exits 1. The formatting lives in small pure functions so that tests can
//! assert the exact output without an agent.
//!
//! The parts: this file holds the command-line shape and the dispatch;
//! `commands` does what each command does against the gRPC API; `output`
//! turns answers and errors into the tables, JSON and lines printed; `keys`
//! does both for the cluster keyring commands (`rumour keys list|install|
//! use|remove`), and `query` for cluster-wide queries (`rumour query`).

mod commands;
mod keys;
mod output;
mod query;
pub(crate) mod why;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use rumour::transport::{TlsCa, TlsFile, TlsIdentity};
use rumour_proto::v1 as pb;
use tonic::transport::ClientTlsConfig;

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
    /// The agent's API token (see `rumour agent --api-token`), sent as
    /// `authorization: Bearer TOKEN`.
    #[arg(
        long,
        env = "RUMOUR_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<crate::agent::Secret>,
    /// Connect over TLS (https), trusting this CA (PEM) for the agent's
    /// certificate (see `rumour agent --tls-cert`). The certificate must
    /// name the host of --api, or --tls-server-name.
    #[arg(long, env = "RUMOUR_CA", value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,
    /// With --ca: present this client certificate (PEM), for an agent that
    /// requires one (`rumour agent --tls-ca`). Needs --client-key.
    #[arg(long, env = "RUMOUR_CLIENT_CERT", value_name = "FILE", global = true)]
    pub client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM).
    #[arg(long, env = "RUMOUR_CLIENT_KEY", value_name = "FILE", global = true)]
    pub client_key: Option<PathBuf>,
    /// With --ca: the name the agent's certificate must carry [default:
    /// the host of --api].
    #[arg(
        long,
        env = "RUMOUR_TLS_SERVER_NAME",
        value_name = "NAME",
        global = true
    )]
    pub tls_server_name: Option<String>,
}

impl ApiArgs {
    /// A client TLS flag given on the command line (not only through its
    /// environment variable), if any: `rumour agent --ca FILE` is a slip
    /// for `--tls-ca`, and would otherwise be ignored.
    pub fn client_tls_flag(&self) -> Option<&'static str> {
        [
            (self.ca.is_some(), "--ca", "RUMOUR_CA"),
            (
                self.client_cert.is_some(),
                "--client-cert",
                "RUMOUR_CLIENT_CERT",
            ),
            (
                self.client_key.is_some(),
                "--client-key",
                "RUMOUR_CLIENT_KEY",
            ),
            (
                self.tls_server_name.is_some(),
                "--tls-server-name",
                "RUMOUR_TLS_SERVER_NAME",
            ),
        ]
        .into_iter()
        .find(|(given, _, env)| *given && std::env::var_os(env).is_none())
        .map(|(_, flag, _)| flag)
    }

    /// The TLS setting the flags ask for: none without `--ca`. A file that
    /// cannot be read or is not PEM is one line naming the flag (never
    /// what the file holds).
    fn tls(&self) -> Result<Option<ClientTlsConfig>, Failure> {
        let fail = |m: String| Failure::Message(m);
        let Some(ca) = &self.ca else {
            return match (&self.client_cert, &self.client_key, &self.tls_server_name) {
                (None, None, None) => Ok(None),
                _ => Err(fail(
                    "--client-cert, --client-key and --tls-server-name need --ca (the CA that signed the agent's certificate)".into(),
                )),
            };
        };
        let ca = TlsCa::from_file(ca).map_err(|e| fail(format!("--ca: {e}")))?;
        let identity = match (&self.client_cert, &self.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsIdentity::from_files(cert, key).map_err(|e| {
                let flag = match e.file() {
                    TlsFile::Cert => "--client-cert",
                    _ => "--client-key",
                };
                fail(format!("{flag}: {e}"))
            })?),
            (Some(_), None) => return Err(fail("--client-cert needs --client-key".into())),
            (None, Some(_)) => return Err(fail("--client-key needs --client-cert".into())),
        };
        let config = ca.client_config(identity.as_ref());
        Ok(Some(match &self.tls_server_name {
            Some(name) => config.domain_name(name.clone()),
            None => config,
        }))
    }
}

/// Commands that talk to a running agent's client API.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// List the members this agent knows of.
    Members {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also list the reconnect list: members forgotten while dead,
        /// their last address, and when each is next knocked on.
        #[arg(long)]
        all: bool,
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
    /// List the keys of a namespace, one per line, in key order; or, with
    /// a subcommand, list or change the cluster keys of every live member.
    #[command(args_conflicts_with_subcommands = true)]
    Keys {
        /// The cluster keyring: `list`, `install KEY`, `use KEY`,
        /// `remove KEY`.
        #[command(subcommand)]
        keyring: Option<KeyringCommand>,
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
    /// Forget a dead or departed member now, on this agent only (run it on
    /// each agent): its name is then free here for a node that comes back
    /// under a new key, as after a lost data dir.
    Forget {
        /// The member's name.
        name: String,
    },
    /// Why this agent holds a member as it does: each change of its belief
    /// (suspected, dead, alive again, reaped) with its cause: its own failed
    /// probes and what each relay answered, rumours and who declared them,
    /// every confirmation and the suspicion timeout in force, refutations.
    Why {
        /// The member's name.
        name: String,
        /// Output format (table: a readable timeline).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
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
    /// Ask every live member a query (`ping` is built in; other names are
    /// answered by clients subscribed to them): prints each answer as it
    /// arrives, then who answered and how long each took. Ends when every
    /// member asked has answered, or at --timeout; exits 1 naming any
    /// member that did not answer.
    Query {
        /// The query's name.
        name: String,
        /// The payload (UTF-8 bytes of the argument) [default: empty].
        #[arg(default_value = "")]
        payload: String,
        /// Wait at most this long for every member asked to answer (e.g.
        /// `5s`, `500ms`; at most 60 s).
        #[arg(long, default_value = "5s", value_parser = parse_timeout)]
        timeout: std::time::Duration,
        /// Ask only members whose name matches this regular expression
        /// (unanchored: `^web-` for a prefix).
        #[arg(long, value_name = "REGEX")]
        filter_name: Option<String>,
        /// Output format: a line per answer, or a JSON object per line.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
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

/// `rumour keys list|install|use|remove`: the cluster keyring, on every
/// live member. Each prints every key's fingerprint (never the key), how
/// many members hold it and how many use it as primary, and exits 1 if a
/// member refused or did not answer within --timeout.
#[derive(Subcommand, Debug)]
pub enum KeyringCommand {
    /// Show the keys every live member holds.
    List {
        #[command(flatten)]
        wait: KeyWait,
    },
    /// Add a key on every live member: it opens at once, and seals once
    /// `use`d. Step 1 of a rotation.
    Install {
        /// The key in base64 (from `rumour keygen`).
        key: crate::agent::Secret,
        #[command(flatten)]
        wait: KeyWait,
    },
    /// Make an installed key every member's primary: it seals from now on.
    /// Step 2.
    Use {
        /// The key in base64.
        key: crate::agent::Secret,
        #[command(flatten)]
        wait: KeyWait,
    },
    /// Remove a key from every live member; refused for the primary (and
    /// so for the last key). Step 3.
    Remove {
        /// The key in base64.
        key: crate::agent::Secret,
        #[command(flatten)]
        wait: KeyWait,
    },
}

/// How long a keyring command waits for members' answers.
#[derive(Args, Debug, Clone, Copy)]
pub struct KeyWait {
    /// Wait at most this long for every live member to answer (e.g. `5s`,
    /// `500ms`; at most 60 s); the command returns as soon as all have.
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = rumour_core::parse_duration(s)?;
    if d.is_zero() || d > std::time::Duration::from_secs(60) {
        return Err("must be more than 0 and at most 60s".into());
    }
    Ok(d)
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

/// Run one client command against the agent at `args.api` (over TLS with
/// `--ca`, sending `--token` if given); prints results to stdout, errors as
/// one line to stderr (`error: ...`), and returns the exit code (0 ok, 1
/// on any error).
pub async fn run(args: &ApiArgs, cmd: ClientCommand) -> ExitCode {
    let token = args.token.as_ref().map(crate::agent::Secret::expose);
    let done = match args.tls() {
        Ok(tls) => commands::execute(&args.api, token, tls, cmd).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Message(m)) => {
            let m = match output::tls_hint(&m, args.ca.is_some(), args.client_cert.is_some()) {
                Some(hint) => format!("{m} ({hint})"),
                None => m,
            };
            eprintln!("error: {}", output::one_line(&m));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
