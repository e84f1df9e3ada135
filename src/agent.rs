//! `rumour agent`: run a node on the network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rumour::core::Config;
use rumour::transport::{
    load_agent_file, Agent, AgentConfig, AgentFile, ApiTls, ApiToken, DataDir, Keyring, PeerTls,
    TlsCa, TlsError, TlsFile, TlsIdentity, TlsPaths, Transport, TransportConfig,
};
use tracing::{error, info, warn};

/// Flags of `rumour agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    /// This node's name, unique in the cluster [default: the hostname].
    #[arg(long)]
    name: Option<String>,
    /// Address the peer service listens on.
    #[arg(long, default_value = rumour::transport::DEFAULT_BIND)]
    bind: SocketAddr,
    /// Address other nodes reach this one at [default: the bind address].
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// A seed to join through, ip:port or host:port (repeatable). A name
    /// is resolved again on every retry and every address it resolves to
    /// is tried, this node's own skipped: a headless Kubernetes service's
    /// name joins its pods. A name that does not resolve yet leaves the
    /// agent alone until it does. Without a seed the agent starts a
    /// cluster of its own.
    #[arg(long = "join", value_name = "ADDR", value_parser = seed_arg)]
    join: Vec<String>,
    /// How peer messages travel: udp (probes, acks, membership rumours,
    /// tree traffic and data gossip in datagrams of at most datagram_size
    /// bytes, 1,400 by default, on the peer port's number; push-pull,
    /// queries and a record too large for a datagram over a gRPC stream)
    /// or grpc (every message over an HTTP/2 stream per peer). Every agent
    /// of a cluster needs the same. Wins over the config file's
    /// `transport`. [default: udp]
    #[arg(long, value_name = "TRANSPORT", value_parser = ["grpc", "udp"])]
    transport: Option<String>,
    /// Protocol preset: lan, wan or local.
    #[arg(long, default_value = "lan", value_parser = ["lan", "wan", "local"])]
    preset: String,
    /// A TOML file setting any field of the protocol configuration (over
    /// the preset), and `transport`, `key` (a base64 key or a list of
    /// them), `label`,
    /// and the TLS files `tls_cert`, `tls_key`, `tls_ca`, `peer_tls_cert`,
    /// `peer_tls_key`, `peer_tls_ca`, `peer_tls_name` (the flags below win
    /// over the file). An unknown or invalid field
    /// stops the agent.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve Prometheus metrics (every counter of `rumour status`, and the
    /// member counts) over HTTP at this address, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Require `authorization: Bearer TOKEN` on every client API call
    /// (gRPC health and reflection stay open). Clients pass it with
    /// `--token`.
    #[arg(
        long,
        env = "RUMOUR_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<Secret>,
    /// With --api-token, let clients on a loopback address call without the
    /// token, except shutdown, leave, join and the key commands.
    #[arg(long, requires = "api_token")]
    api_open_loopback: bool,
    /// Serve the client API on a non-loopback address without a token
    /// (refused otherwise): anyone who reaches it can write, join, leave and
    /// shut the agent down.
    #[arg(long)]
    insecure: bool,
    /// The cluster key: 32 bytes in base64, from `rumour keygen`. Every
    /// peer message is then sealed (XChaCha20-Poly1305) and every one
    /// received must open with the key, or it is dropped. Repeat the flag
    /// (or, in RUMOUR_KEY, separate keys with commas) for a keyring: the
    /// first seals, all open. With a data dir this seeds the keyring the
    /// first time only: afterwards the data dir's keyring, which `rumour
    /// keys install|use|remove` change, wins over the flag.
    #[arg(
        long = "key",
        env = "RUMOUR_KEY",
        value_name = "KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    keys: Vec<Secret>,
    /// With --key: a label bound to every sealed message, so that clusters
    /// sharing a key (say staging and production) never mix.
    #[arg(long, env = "RUMOUR_LABEL", value_name = "LABEL")]
    label: Option<String>,
    /// Where the node keeps its identity key and its state between runs
    /// (created if missing, mode 0700); a dir belongs to one node name.
    /// [default: $XDG_DATA_HOME/rumour/NAME, else
    /// $HOME/.local/share/rumour/NAME]
    #[arg(long, env = "RUMOUR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep nothing on disk: a new identity every start, no state kept
    /// (tests, benches, throwaway nodes). Overrides --data-dir and
    /// RUMOUR_DATA_DIR.
    #[arg(long)]
    no_data_dir: bool,
    /// Serve the client API over TLS with this certificate (PEM; needs
    /// --tls-key). Clients then connect with `--ca`. The API token, if
    /// set, is still required.
    #[arg(long, env = "RUMOUR_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "RUMOUR_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// With --tls-cert: require every API client to present a certificate
    /// signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "RUMOUR_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Mutual TLS on the peer port: this node's certificate (PEM), served
    /// to peers and presented when dialling them. Needs --peer-tls-key and
    /// --peer-tls-ca; every agent of the cluster needs the same setting.
    #[arg(long, env = "RUMOUR_PEER_TLS_CERT", value_name = "FILE")]
    peer_tls_cert: Option<PathBuf>,
    /// The private key of --peer-tls-cert (PEM).
    #[arg(long, env = "RUMOUR_PEER_TLS_KEY", value_name = "FILE")]
    peer_tls_key: Option<PathBuf>,
    /// The CA every peer's certificate must be signed by (PEM).
    #[arg(long, env = "RUMOUR_PEER_TLS_CA", value_name = "FILE")]
    peer_tls_ca: Option<PathBuf>,
    /// The name (a DNS subject alternative name) every dialled peer's
    /// certificate must carry: peers are dialled by address, so all peer
    /// certificates carry one agreed name. [default: rumour-peer]
    #[arg(long, env = "RUMOUR_PEER_TLS_NAME", value_name = "NAME")]
    peer_tls_name: Option<String>,
}

/// A `--join` value checked for shape (a port, a host): a malformed seed
/// is an error naming the flag; whether a name resolves is found out later.
fn seed_arg(s: &str) -> Result<String, String> {
    s.parse::<rumour::transport::Seed>()
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// A flag's value that must never be printed: `Debug` hides it.
#[derive(Clone)]
pub struct Secret(String);

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl Secret {
    /// The value itself, to use (never to print).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The machine's hostname, or `rumour` if it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "rumour".to_string())
}

/// Log to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Install the Prometheus exporter at `addr` and keep its values fresh from
/// the agent's status, once a second.
fn serve_metrics(addr: SocketAddr, handle: rumour::transport::Handle) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Ok(status) = handle.status().await else {
                return;
            };
            for (name, value) in status.counters {
                metrics::counter!(format!("rumour_{name}_total")).absolute(value);
            }
            metrics::gauge!("rumour_live_members").set(status.live_members as f64);
            metrics::gauge!("rumour_members").set(status.members as f64);
            metrics::gauge!("rumour_namespaces").set(status.namespaces as f64);
            metrics::gauge!("rumour_incarnation").set(f64::from(status.me.incarnation.0));
        }
    });
    Ok(())
}

fn agent_config(args: &AgentArgs, api: SocketAddr) -> Result<AgentConfig, String> {
    let preset = Config::preset(&args.preset).map_err(|e| e.to_string())?;
    let flag = match &args.transport {
        Some(t) => Some(
            t.parse::<Transport>()
                .map_err(|e| format!("--transport: {e}"))?,
        ),
        None => None,
    };
    let (protocol, file) = match &args.config {
        Some(path) => load_agent_file(path, &preset, flag).map_err(|e| e.to_string())?,
        None => (
            flag.unwrap_or_default().defaults(preset),
            AgentFile::default(),
        ),
    };
    let transport = flag.or(file.transport).unwrap_or_default();
    let mut config = AgentConfig::new(args.name.clone().unwrap_or_else(hostname));
    config.bind = args.bind;
    config.advertise = args.advertise;
    config.api = api;
    config.join = args.join.clone();
    config.api_token = match &args.api_token {
        Some(Secret(t)) => {
            Some(ApiToken::new(t.as_str()).map_err(|e| format!("--api-token: {e}"))?)
        }
        None => None,
    };
    config.api_open_loopback = args.api_open_loopback;
    config.insecure_api = args.insecure;
    // Checked here too (the agent checks again) so that it is one line,
    // before logging starts.
    if !api.ip().to_canonical().is_loopback() && config.api_token.is_none() && !args.insecure {
        return Err(format!(
            "the client API on {api} is reachable beyond this host: set --api-token TOKEN (or RUMOUR_API_TOKEN), or --insecure to serve it open"
        ));
    }
    let tls = tls_paths(args, &file);
    config.api_tls = api_tls(&tls)?;
    config.peer_tls = peer_tls(&tls)?;
    config.keyring = keyring(args, file)?;
    config.data_dir = match (&args.data_dir, args.no_data_dir) {
        (_, true) => None,
        (Some(dir), false) => Some(dir.clone()),
        (None, false) => Some(DataDir::default_path(&config.name).ok_or(
            "no data dir: neither XDG_DATA_HOME nor HOME is set; pass --data-dir DIR (or --no-data-dir to keep nothing)",
        )?),
    };
    config.transport = TransportConfig::for_protocol(&protocol);
    config.peer_transport = transport;
    config.protocol = protocol;
    Ok(config)
}

/// The TLS paths from the flags (and their environment variables), each
/// over the config file's key of the same name.
fn tls_paths(args: &AgentArgs, file: &AgentFile) -> TlsPaths {
    let f = &file.tls;
    TlsPaths {
        cert: args.tls_cert.clone().or_else(|| f.cert.clone()),
        key: args.tls_key.clone().or_else(|| f.key.clone()),
        ca: args.tls_ca.clone().or_else(|| f.ca.clone()),
        peer_cert: args.peer_tls_cert.clone().or_else(|| f.peer_cert.clone()),
        peer_key: args.peer_tls_key.clone().or_else(|| f.peer_key.clone()),
        peer_ca: args.peer_tls_ca.clone().or_else(|| f.peer_ca.clone()),
        peer_name: args.peer_tls_name.clone().or_else(|| f.peer_name.clone()),
    }
}

/// A TLS error as one line naming the flag: `prefix` is `--tls-` or
/// `--peer-tls-`. The message names the file, never what it holds.
fn tls_error(prefix: &str, e: TlsError) -> String {
    let flag = match e.file() {
        TlsFile::Cert => "cert",
        TlsFile::Key => "key",
        TlsFile::Ca => "ca",
    };
    format!("{prefix}{flag}: {e}")
}

/// TLS on the client API: `--tls-cert` with `--tls-key` serve TLS,
/// `--tls-ca` as well requires client certificates. Each file is read and
/// checked here, so that a bad one stops the agent in one line.
fn api_tls(tls: &TlsPaths) -> Result<Option<ApiTls>, String> {
    let (cert, key) =
        match (&tls.cert, &tls.key) {
            (None, None) => return match tls.ca {
                Some(_) => Err(
                    "--tls-ca needs --tls-cert and --tls-key (the API's own certificate and key)"
                        .into(),
                ),
                None => Ok(None),
            },
            (Some(_), None) => {
                return Err("--tls-cert needs --tls-key (the certificate's private key)".into())
            }
            (None, Some(_)) => {
                return Err("--tls-key needs --tls-cert (the certificate it belongs to)".into())
            }
            (Some(cert), Some(key)) => (cert, key),
        };
    let identity = TlsIdentity::from_files(cert, key).map_err(|e| tls_error("--tls-", e))?;
    let ca = match &tls.ca {
        Some(ca) => Some(TlsCa::from_file(ca).map_err(|e| tls_error("--tls-", e))?),
        None => None,
    };
    ApiTls::new(identity, ca)
        .map(Some)
        .map_err(|e| tls_error("--tls-", e))
}

/// Mutual TLS on the peer port: all three of `--peer-tls-cert`,
/// `--peer-tls-key` and `--peer-tls-ca`, or none.
fn peer_tls(tls: &TlsPaths) -> Result<Option<PeerTls>, String> {
    let (cert, key, ca) = match (&tls.peer_cert, &tls.peer_key, &tls.peer_ca) {
        (None, None, None) => {
            return match tls.peer_name {
                Some(_) => Err(
                    "--peer-tls-name needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca"
                        .into(),
                ),
                None => Ok(None),
            }
        }
        (Some(cert), Some(key), Some(ca)) => (cert, key, ca),
        (cert, key, ca) => {
            let missing: Vec<&str> = [
                (cert.is_none(), "--peer-tls-cert"),
                (key.is_none(), "--peer-tls-key"),
                (ca.is_none(), "--peer-tls-ca"),
            ]
            .into_iter()
            .filter_map(|(gone, flag)| gone.then_some(flag))
            .collect();
            return Err(format!(
                "peer TLS is mutual and needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together: missing {}",
                missing.join(" and ")
            ));
        }
    };
    let identity = TlsIdentity::from_files(cert, key).map_err(|e| tls_error("--peer-tls-", e))?;
    let ca = TlsCa::from_file(ca).map_err(|e| tls_error("--peer-tls-", e))?;
    let peer = PeerTls::new(identity, ca).map_err(|e| tls_error("--peer-tls-", e))?;
    Ok(Some(match &tls.peer_name {
        Some(name) if name.is_empty() => return Err("--peer-tls-name: must not be empty".into()),
        Some(name) => peer.with_server_name(name.clone()),
        None => peer,
    }))
}

/// The keyring from `--key`/`RUMOUR_KEY` (or else the config file's `key`)
/// and `--label`/`RUMOUR_LABEL` (or else the file's `label`). A bad key is
/// named by where it came from and its position, never by its text.
fn keyring(args: &AgentArgs, file: AgentFile) -> Result<Option<Keyring>, String> {
    let (keys, source): (Vec<&str>, &str) = if args.keys.is_empty() {
        (
            file.keys.iter().map(String::as_str).collect(),
            "config file key",
        )
    } else {
        (args.keys.iter().map(Secret::expose).collect(), "--key")
    };
    let label = args.label.clone().or(file.label);
    if keys.is_empty() {
        return match label {
            Some(_) => {
                Err("--label needs a cluster key (--key KEY; make one with `rumour keygen`)".into())
            }
            None => Ok(None),
        };
    }
    let many = keys.len() > 1;
    Keyring::from_base64(&keys, label.unwrap_or_default())
        .map(Some)
        .map_err(|(i, e)| {
            if many {
                format!("{source} (number {i} of {}): {e}", keys.len())
            } else {
                format!("{source}: {e}")
            }
        })
}

/// Run the agent until SIGINT, SIGTERM or a `Shutdown` call; leave the
/// cluster gracefully and exit 0.
/// `client_token`: the client flag `--token` was given (a mistake for
/// `--api-token` unless that is set too).
pub fn run(args: AgentArgs, api: &str, client_token: bool) -> ExitCode {
    if client_token && args.api_token.is_none() {
        eprintln!("error: --token is the client commands' flag; the agent's is --api-token");
        return ExitCode::FAILURE;
    }
    let api: SocketAddr = match api.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --api {api:?} is not an ip:port address to listen on: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match agent_config(&args, api) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let agent = match Agent::start(config).await {
            Ok(a) => a,
            Err(e) => {
                error!(error = %e, "cannot start");
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let handle = agent.handle();
        if let Some(addr) = args.metrics {
            if let Err(e) = serve_metrics(addr, handle.clone()) {
                error!(error = %e, "cannot serve metrics");
                eprintln!("error: {e}");
                agent.shutdown().await;
                return ExitCode::FAILURE;
            }
            info!(%addr, "serving Prometheus metrics");
        }
        tokio::spawn(async {
            let mut every = tokio::time::interval(crate::heap::TRIM_EVERY);
            loop {
                every.tick().await;
                let _ = tokio::task::spawn_blocking(crate::heap::trim).await;
            }
        });
        tokio::spawn(async move {
            let signal = shutdown_signal().await;
            info!(signal, "shutting down: leaving the cluster");
            handle.shutdown();
            let again = shutdown_signal().await;
            warn!(signal = again, "second signal: exiting at once");
            std::process::exit(130);
        });
        agent.wait().await;
        info!("agent stopped");
        ExitCode::SUCCESS
    })
}

/// The first SIGINT or SIGTERM, by name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
