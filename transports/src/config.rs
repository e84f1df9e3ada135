//! The agent's settings: addresses, seeds, the protocol's [`Config`] and the
//! transport's own limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rumour_core::{Config, Identity};

use crate::access::ApiToken;
use crate::keyring::Keyring;
use crate::seed::SeedResolver;
use crate::tls::{ApiTls, PeerTls};

use crate::error::StartError;

/// The default peer address: where nodes talk to each other.
pub const DEFAULT_BIND: &str = "127.0.0.1:7946";
/// The default client API address.
pub const DEFAULT_API: &str = "127.0.0.1:7947";

/// How peer messages travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Every message over a gRPC (HTTP/2) stream per peer.
    Grpc,
    /// Probes, acks, ping-reqs, nacks, membership rumours, tree traffic
    /// (Eager, IHave, Graft, Prune) and data gossip in UDP datagrams of at
    /// most `datagram_size` bytes (1,400 by default), on the peer port's
    /// number; push-pull, queries, cluster requests and a record too large
    /// for a datagram over the gRPC stream. The default: its idle cost and
    /// its sockets per agent stay flat in the cluster's size (README, "The
    /// UDP transport").
    #[default]
    Udp,
}

/// The default largest message on the UDP transport, envelope included:
/// what fits an Ethernet frame with room for IP and UDP headers, as
/// memberlist and foca use.
pub const DATAGRAM_SIZE: usize = 1400;

/// What sealing with a cluster key adds to an envelope at most, in bytes:
/// the nonce, the tag, the send time and their protobuf framing (58; a
/// little slack beside). On UDP the node packs its datagrams to
/// `datagram_size` less this, so that every datagram fits, sealed or not.
pub const SEAL_OVERHEAD: usize = 64;

impl Transport {
    /// The protocol defaults this transport needs over `base` (a preset):
    /// none for gRPC; for UDP `datagram_size` is [`DATAGRAM_SIZE`]. Key
    /// and value limits stay the preset's: a record too large for one
    /// datagram goes by stream. A config file's own values go over these.
    pub fn defaults(self, base: Config) -> Config {
        match self {
            Transport::Grpc => base,
            Transport::Udp => Config {
                datagram_size: Some(DATAGRAM_SIZE),
                ..base
            },
        }
    }

    /// The name the `--transport` flag and the config file's `transport`
    /// take.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Transport, String> {
        match s {
            "grpc" => Ok(Transport::Grpc),
            "udp" => Ok(Transport::Udp),
            _ => Err(format!("unknown transport {s:?} (expected grpc or udp)")),
        }
    }
}

/// Limits and timings of the transport (not of the protocol).
#[derive(Clone, Debug, PartialEq)]
pub struct TransportConfig {
    /// Largest peer message accepted, checked on its length prefix before it
    /// is decoded. Default: 4 × `max_message_size`, at least 4 MiB (a
    /// push-pull carries the whole member list).
    pub max_inbound_message: usize,
    /// Envelopes queued per peer before new ones are dropped. Default 4096.
    pub peer_queue: usize,
    /// Decoded messages queued for the node over every peer connection.
    /// When it is reached, the connection holding the most gives up its
    /// oldest (see `intake_membership`). Default 4096.
    pub inbound_queue: usize,
    /// Messages of one peer connection's membership lane (probes, acks,
    /// nacks, indirect probes, membership rumours) queued for the node
    /// before new ones on it are dropped. The node takes one message per
    /// connection in turn, membership before data. Default 256.
    pub intake_membership: usize,
    /// Messages of one peer connection's data lane (everything else)
    /// queued for the node before new ones on it are dropped. Default
    /// 4096, as many as `inbound_queue`: one sender's burst may use all the
    /// room there is, and gives it back (see `inbound_queue`) as soon as
    /// another connection needs it. At 1,024, five agents offered 10,000
    /// puts/s through one dropped 977 of the writer's messages.
    pub intake_data: usize,
    /// Envelopes read from one peer connection per second, at most, with
    /// a burst of one second's worth; beyond it the connection is not read
    /// until it may be (its sender is held back by flow control). Default
    /// 20,000: several times what one peer sent at 7,000 puts/s.
    pub peer_rate: u32,
    /// How long a send may wait on a stalled peer stream before the stream
    /// is dropped and reopened. Default 2 s.
    pub send_timeout: Duration,
    /// How long a connection attempt may take. Default 1 s.
    pub connect_timeout: Duration,
    /// First wait after a failed connection; it doubles up to
    /// `backoff_max`. Default 100 ms.
    pub backoff_min: Duration,
    /// Longest wait between connection attempts. Default: a fifth of the
    /// push-pull interval, at most 5 s (LAN 2 s), so that a push-pull to a
    /// member that just came back does not sit out a long backoff.
    pub backoff_max: Duration,
    /// HTTP/2 keepalive pings on peer connections: sent after this long
    /// without hearing anything. Default: none. A peer link's stream only
    /// sends, so pings every interval on every connection: a 1 s interval
    /// cost 8,935 B/node/s idle at 20 agents against 390 without. A link is
    /// instead dropped as soon as the node suspects its member (or holds
    /// it dead or left), so what goes to the member next, a probe, a
    /// push-pull or a knock after a partition, opens a fresh connection
    /// and never waits behind a stalled one.
    pub keepalive_interval: Option<Duration>,
    /// How long a keepalive ping may go unanswered before the connection
    /// counts as dead. Default: twice the probe period (LAN 2 s).
    pub keepalive_timeout: Duration,
    /// A peer stream unused this long is closed. Default 60 s.
    pub idle_close: Duration,
    /// Without a cluster key, refuse a peer envelope whose sender address
    /// (where the node's replies go) is on another host than the
    /// connection it came on, counted as `rejected_address_mismatch`: a
    /// reply there would reflect traffic at whoever the sender named.
    /// Loopback addresses all count as one host. With a key the sender
    /// address is authenticated and this is not checked. Default true;
    /// turn it off only for a keyless cluster whose nodes connect from
    /// other addresses than they advertise (NAT, several interfaces).
    pub check_sender_address: bool,
    /// Events buffered for each `Watch` stream; a watcher that falls
    /// further behind misses events (and sees a gap in `seq`). Default 4096.
    pub watch_buffer: usize,
    /// Largest payload of a query, and of an answer to one, in bytes.
    /// A query over it is refused (`INVALID_ARGUMENT`) before any member
    /// is asked; a member answers one over its own limit with an error.
    /// Default 8 KiB.
    pub query_max_payload: usize,
    /// The most members one query may ask (and so the most answers it
    /// gets): a query that would ask more is refused
    /// (`RESOURCE_EXHAUSTED`), to be narrowed with a name filter. Default
    /// 1,024.
    pub query_max_answers: usize,
    /// The most queries under way at once through this agent; one more is
    /// refused (`RESOURCE_EXHAUSTED`). It also bounds the queries of one
    /// asker that a member holds for its subscribers at once (an honest
    /// asker never has more under way). Default 16.
    pub query_max_concurrent: usize,
}

impl TransportConfig {
    /// The defaults for a protocol configuration.
    pub fn for_protocol(protocol: &Config) -> TransportConfig {
        TransportConfig {
            max_inbound_message: (4 * protocol.max_message_size).max(4 << 20),
            peer_queue: 4096,
            inbound_queue: 4096,
            intake_membership: 256,
            intake_data: 4096,
            peer_rate: 20_000,
            send_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: (protocol.push_pull_interval / 5)
                .clamp(Duration::from_millis(100), Duration::from_secs(5)),
            keepalive_interval: None,
            keepalive_timeout: protocol.probe_period * 2,
            idle_close: Duration::from_secs(60),
            check_sender_address: true,
            watch_buffer: 4096,
            query_max_payload: 8 * 1024,
            query_max_answers: 1024,
            query_max_concurrent: 16,
        }
    }
}

/// Everything an agent needs to start.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The node's name, unique in the cluster.
    pub name: String,
    /// Where the peer service listens. Port 0 picks a free port.
    pub bind: SocketAddr,
    /// The address other nodes reach this one at. Default: the bound
    /// address, which must then not be unspecified (0.0.0.0 or ::).
    pub advertise: Option<SocketAddr>,
    /// Where the client API listens. Port 0 picks a free port.
    pub api: SocketAddr,
    /// Seeds to join through (`ip:port` or `host:port`). Empty: start a
    /// cluster of one. A name is resolved at start and again on every
    /// retry, and every address it resolves to is a seed but this node's
    /// own; one that does not resolve yet leaves the node alone until it
    /// does. A malformed seed stops the start ([`StartError::Seed`]).
    pub join: Vec<String>,
    /// How the names among `join` are resolved. Default: the system's
    /// resolver (DNS, `/etc/hosts`).
    pub resolver: SeedResolver,
    /// The protocol's configuration.
    pub protocol: Config,
    /// The transport's limits.
    pub transport: TransportConfig,
    /// How peer messages travel (see [`Transport`]). Default UDP. The
    /// protocol's defaults for each come from [`Transport::defaults`].
    pub peer_transport: Transport,
    /// The incarnation to start with. Default: seconds since the Unix epoch,
    /// so that a restarted node always starts a newer life than the last.
    pub incarnation: Option<u32>,
    /// Seed of the node's RNG (its probe order, its peers, the key of its
    /// table's hash). Default: drawn from the operating system's randomness,
    /// so that peers cannot foresee it.
    pub rng_seed: Option<u64>,
    /// The node's key pair, which signs its membership and records, when
    /// there is no data dir (with one, the dir's key is used). Default: a
    /// fresh one from the operating system's randomness.
    pub identity: Option<Identity>,
    /// The token every client API call must carry (`authorization: Bearer
    /// TOKEN`); gRPC health and reflection stay open. Default: none.
    pub api_token: Option<ApiToken>,
    /// With a token set, let clients on a loopback address call without it,
    /// except `Shutdown`, `Leave`, `Join` and the key calls. Default: false.
    pub api_open_loopback: bool,
    /// Serve the client API on a non-loopback address without a token
    /// (refused otherwise; a warning is logged). Default: false.
    pub insecure_api: bool,
    /// The cluster key(s) and label: with a keyring, every peer envelope is
    /// sealed with its primary key and every one received must open with
    /// one of its keys (see [`Keyring`]). With a data dir, this seeds the
    /// dir's keyring when it keeps none; once it keeps one (key commands
    /// change it), the kept keyring is used and this is ignored, with a
    /// warning if they differ. Default: none (plaintext, as before; a
    /// warning is logged if the peer port is not loopback).
    pub keyring: Option<Keyring>,
    /// The node's data dir (see [`DataDir`](crate::DataDir)): its identity
    /// key and database, opened (created if missing) at start; an agent
    /// whose dir cannot be opened does not start. Default: none, nothing is
    /// kept on disk. The `rumour agent` command defaults it to
    /// [`DataDir::default_path`](crate::DataDir::default_path).
    pub data_dir: Option<PathBuf>,
    /// TLS on the client API (see [`ApiTls`]): with it the API (health and
    /// reflection too) serves TLS only, and with its client CA it requires
    /// client certificates. It does not replace `api_token` nor relax the
    /// rule on an API beyond loopback. Default: none (plaintext).
    pub api_tls: Option<ApiTls>,
    /// Mutual TLS on the peer port (see [`PeerTls`]): peers are served and
    /// dialled over TLS only, each side's certificate checked against the
    /// CA. Every agent of a cluster needs it, or none. Independent of the
    /// cluster key (both may be set). Default: none (plaintext).
    pub peer_tls: Option<PeerTls>,
}

impl AgentConfig {
    /// An agent named `name` on the default addresses with the LAN preset.
    pub fn new(name: impl Into<String>) -> AgentConfig {
        let protocol = Transport::default().defaults(Config::lan());
        AgentConfig {
            name: name.into(),
            bind: DEFAULT_BIND.parse().expect("valid default address"),
            advertise: None,
            api: DEFAULT_API.parse().expect("valid default address"),
            join: Vec::new(),
            resolver: SeedResolver::system(),
            transport: TransportConfig::for_protocol(&protocol),
            peer_transport: Transport::default(),
            protocol,
            incarnation: None,
            rng_seed: None,
            identity: None,
            api_token: None,
            api_open_loopback: false,
            insecure_api: false,
            keyring: None,
            data_dir: None,
            api_tls: None,
            peer_tls: None,
        }
    }

    /// An agent for tests and local clusters: loopback, ephemeral ports.
    pub fn loopback(name: impl Into<String>, protocol: Config) -> AgentConfig {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
        AgentConfig {
            bind: any,
            api: any,
            transport: TransportConfig::for_protocol(&protocol),
            protocol,
            ..AgentConfig::new(name)
        }
    }
}

/// Read a protocol configuration from a TOML file. Every field of
/// [`Config`] may be set; the rest take the values of `base` (a preset).
/// An unknown field or a bad value is an error that names it.
pub fn load_protocol_config(path: &Path, base: &Config) -> Result<Config, StartError> {
    let text = std::fs::read_to_string(path).map_err(|e| StartError::ConfigFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_protocol_config(&text, base).map_err(|reason| StartError::ConfigFile {
        path: path.display().to_string(),
        reason,
    })
}

/// What an agent's config file holds beside the protocol's fields: the
/// cluster key(s) and label. `Debug` never shows the keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AgentFile {
    /// `key`: one base64 key, or a list of them (the first is the primary).
    /// Not yet checked: see [`Keyring::from_base64`].
    pub keys: Vec<String>,
    /// `label`: bound to every sealed envelope as associated data.
    pub label: Option<String>,
    /// `transport`: `grpc` or `udp` (see [`Transport`]).
    pub transport: Option<Transport>,
    /// `tls_cert`, `tls_key`, `tls_ca`, `peer_tls_cert`, `peer_tls_key`,
    /// `peer_tls_ca`, `peer_tls_name`: the TLS files (paths as given,
    /// relative to the working directory) and the peer name. Not yet read.
    pub tls: TlsPaths,
}

/// Where the TLS material is, as given by flags or the config file; read
/// and checked by [`TlsIdentity::from_files`](crate::TlsIdentity::from_files)
/// and [`TlsCa::from_file`](crate::TlsCa::from_file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsPaths {
    /// The client API's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// The CA client certificates must be signed by (PEM); mutual TLS.
    pub ca: Option<PathBuf>,
    /// The peer port's certificate (PEM), served and presented to peers.
    pub peer_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub peer_key: Option<PathBuf>,
    /// The CA every peer certificate must be signed by (PEM).
    pub peer_ca: Option<PathBuf>,
    /// The name dialled peers' certificates must carry.
    pub peer_name: Option<String>,
}

impl std::fmt::Debug for AgentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentFile")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("label", &self.label)
            .field("transport", &self.transport)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Read an agent's config file: the protocol's fields as in
/// [`load_protocol_config`], plus `key`, `label`, `transport` and the TLS
/// files (see [`AgentFile`]). `transport` is the `--transport` flag's
/// value, if given: it wins over the file's. The protocol's fields go
/// over `base` with the chosen transport's [`Transport::defaults`].
pub fn load_agent_file(
    path: &Path,
    base: &Config,
    transport: Option<Transport>,
) -> Result<(Config, AgentFile), StartError> {
    let text = std::fs::read_to_string(path).map_err(|e| StartError::ConfigFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse_agent_file(&text, base, transport).map_err(|reason| StartError::ConfigFile {
        path: path.display().to_string(),
        reason,
    })
}

/// Parse an agent's config file from TOML text over `base`, as
/// [`load_agent_file`] does. A `key` that is neither a string nor a list
/// of strings is an error that does not show it.
pub fn parse_agent_file(
    text: &str,
    base: &Config,
    transport: Option<Transport>,
) -> Result<(Config, AgentFile), String> {
    let mut table = parse_table(text)?;
    let mut file = AgentFile::default();
    match table.remove("transport") {
        None => {}
        Some(toml::Value::String(t)) => file.transport = Some(t.parse()?),
        Some(_) => return Err("transport: must be a string, grpc or udp".into()),
    }
    let base = transport
        .or(file.transport)
        .unwrap_or_default()
        .defaults(base.clone());
    match table.remove("key") {
        None => {}
        Some(toml::Value::String(k)) => file.keys.push(k),
        Some(toml::Value::Array(list)) => {
            for k in list {
                match k {
                    toml::Value::String(k) => file.keys.push(k),
                    _ => return Err("key: must be a base64 string or a list of them".into()),
                }
            }
        }
        Some(_) => return Err("key: must be a base64 string or a list of them".into()),
    }
    match table.remove("label") {
        None => {}
        Some(toml::Value::String(l)) => file.label = Some(l),
        Some(_) => return Err("label: must be a string".into()),
    }
    let mut take = |field: &str| -> Result<Option<String>, String> {
        match table.remove(field) {
            None => Ok(None),
            Some(toml::Value::String(v)) => Ok(Some(v)),
            Some(_) => Err(format!("{field}: must be a string")),
        }
    };
    file.tls = TlsPaths {
        cert: take("tls_cert")?.map(PathBuf::from),
        key: take("tls_key")?.map(PathBuf::from),
        ca: take("tls_ca")?.map(PathBuf::from),
        peer_cert: take("peer_tls_cert")?.map(PathBuf::from),
        peer_key: take("peer_tls_key")?.map(PathBuf::from),
        peer_ca: take("peer_tls_ca")?.map(PathBuf::from),
        peer_name: take("peer_tls_name")?,
    };
    Ok((merge_protocol_config(table, &base)?, file))
}

/// Parse a protocol configuration from TOML text over `base`.
pub fn parse_protocol_config(text: &str, base: &Config) -> Result<Config, String> {
    merge_protocol_config(parse_table(text)?, base)
}

/// TOML text as a table; a syntax error says where.
fn parse_table(text: &str) -> Result<toml::Table, String> {
    toml::from_str(text).map_err(|e| {
        let at = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: ")
        });
        format!("{}{}", at.unwrap_or_default(), e.message())
    })
}

/// `overrides` over `base`, validated.
fn merge_protocol_config(overrides: toml::Table, base: &Config) -> Result<Config, String> {
    let mut merged = toml::Table::try_from(base).map_err(|e| e.to_string())?;
    for (k, v) in overrides {
        merged.insert(k, v);
    }
    let config: Config = merged
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_the_preset_field_by_field() {
        let c = parse_protocol_config("fanout = 5\ngossip_interval = \"100ms\"\n", &Config::wan())
            .unwrap();
        assert_eq!(c.fanout, 5);
        assert_eq!(c.gossip_interval, Duration::from_millis(100));
        assert_eq!(c.probe_period, Config::wan().probe_period);
    }

    #[test]
    fn an_agent_file_holds_keys_and_a_label_beside_the_protocol() {
        let (c, f) = parse_agent_file(
            "fanout = 5\nkey = \"AAAA\"\nlabel = \"prod\"\n",
            &Config::lan(),
            None,
        )
        .unwrap();
        assert_eq!(c.fanout, 5);
        assert_eq!(f.keys, vec!["AAAA".to_string()]);
        assert_eq!(f.label.as_deref(), Some("prod"));
        assert!(
            format!("{f:?}").starts_with(
                "AgentFile { keys: <1 redacted>, label: Some(\"prod\"), transport: None, tls: "
            ),
            "{f:?}"
        );
        let (_, f) = parse_agent_file("key = [\"new\", \"old\"]\n", &Config::lan(), None).unwrap();
        assert_eq!(f.keys, vec!["new".to_string(), "old".to_string()]);
        let e = parse_agent_file("key = [\"s3cret\", 5]\n", &Config::lan(), None).unwrap_err();
        assert!(e.starts_with("key:") && !e.contains("s3cret"), "{e}");
        // The protocol-only reader still refuses them.
        assert!(parse_protocol_config("key = \"AAAA\"\n", &Config::lan()).is_err());
    }

    #[test]
    fn an_agent_file_names_its_tls_files() {
        let (_, f) = parse_agent_file(
            "tls_cert = \"api.pem\"\ntls_key = \"api.key\"\npeer_tls_ca = \"ca.pem\"\npeer_tls_name = \"gossip\"\n",
            &Config::lan(),
            None,
        )
        .unwrap();
        assert_eq!(f.tls.cert.as_deref(), Some(Path::new("api.pem")));
        assert_eq!(f.tls.key.as_deref(), Some(Path::new("api.key")));
        assert_eq!(f.tls.ca, None);
        assert_eq!(f.tls.peer_ca.as_deref(), Some(Path::new("ca.pem")));
        assert_eq!(f.tls.peer_name.as_deref(), Some("gossip"));
        let e = parse_agent_file("tls_cert = 5\n", &Config::lan(), None).unwrap_err();
        assert!(e.starts_with("tls_cert:"), "{e}");
    }

    #[test]
    fn udp_defaults_to_datagram_sized_packing_that_a_file_and_the_flag_override() {
        let (c, f) = parse_agent_file("transport = \"udp\"\n", &Config::lan(), None).unwrap();
        assert_eq!(f.transport, Some(Transport::Udp));
        assert_eq!(c.datagram_size, Some(DATAGRAM_SIZE));
        // Records keep the preset's limits: a large one goes by stream.
        assert_eq!(
            (c.max_message_size, c.max_value_len),
            (Config::lan().max_message_size, Config::lan().max_value_len)
        );
        // The file's own sizes win over the transport's defaults.
        let (c, _) = parse_agent_file(
            "transport = \"udp\"\ndatagram_size = 9000\nmax_value_len = 4096\n",
            &Config::lan(),
            None,
        )
        .unwrap();
        assert_eq!((c.datagram_size, c.max_value_len), (Some(9000), 4096));
        // The flag wins over the file.
        let (c, _) = parse_agent_file(
            "transport = \"udp\"\n",
            &Config::lan(),
            Some(Transport::Grpc),
        )
        .unwrap();
        assert_eq!(c.datagram_size, None);
        let (c, _) = parse_agent_file("", &Config::lan(), Some(Transport::Udp)).unwrap();
        assert_eq!(c.datagram_size, Some(DATAGRAM_SIZE));
        let e = parse_agent_file("transport = \"quic\"\n", &Config::lan(), None).unwrap_err();
        assert!(e.contains("quic") && e.contains("grpc or udp"), "{e}");
        let e = parse_agent_file(
            "transport = \"udp\"\ndatagram_size = 100\n",
            &Config::lan(),
            None,
        )
        .unwrap_err();
        assert!(e.contains("datagram_size"), "{e}");
        // The protocol-only reader refuses it.
        assert!(parse_protocol_config("transport = \"udp\"\n", &Config::lan()).is_err());
    }

    #[test]
    fn a_syntax_error_says_where() {
        let e = parse_protocol_config("fanout = 3\nprobe_period = \n", &Config::lan()).unwrap_err();
        assert!(e.starts_with("line 2, column"), "{e}");
    }

    #[test]
    fn unknown_and_invalid_fields_are_named() {
        let e = parse_protocol_config("fan_out = 5\n", &Config::lan()).unwrap_err();
        assert!(e.contains("fan_out"), "{e}");
        let e = parse_protocol_config("fanout = 0\n", &Config::lan()).unwrap_err();
        assert!(e.contains("fanout"), "{e}");
        let e = parse_protocol_config("probe_period = \"soon\"\n", &Config::lan()).unwrap_err();
        assert!(e.contains("soon") || e.contains("probe_period"), "{e}");
    }
}
