//! The agent: a node task, its peer service and its client API, served by
//! tonic on tokio.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rumour_core::{Identity, Incarnation, Node, NodeId};
use rumour_proto::v1::peer_server::PeerServer;
use rumour_proto::v1::rumour_server::RumourServer;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tracing::{debug, info, warn};

use crate::access::{Access, Guarded};
use crate::api::ApiService;
use crate::config::{AgentConfig, Transport, DATAGRAM_SIZE, SEAL_OVERHEAD};
use crate::data_dir::{DataDir, DataDirError};
use crate::datagram::{self, Datagrams};
use crate::driver::{self, Handle};
use crate::durable::{Durable, Life};
use crate::error::StartError;
use crate::intake::{self, Limits};
use crate::keyring::{Keyring, Sealer, SharedKeyring};
use crate::link::Links;
use crate::peer::{PeerService, Reception, RefusalLog};
use crate::query::{Queries, QueryLimits};
use crate::replay::ReplayWindow;
use crate::reply_budget::{ReplyBudget, ACCOUNTS, ACCOUNT_IDLE};
use crate::seed::{resolve_seeds, Seed};
use crate::stats::TransportStats;
use crate::tls::{ApiTls, PeerTls};

/// A running agent.
pub struct Agent {
    handle: Handle,
    name: String,
    peer_addr: SocketAddr,
    api_addr: SocketAddr,
    data_dir: Option<PathBuf>,
    node_task: JoinHandle<()>,
    /// Knocks on the seeds again while members are missing.
    seed_task: Option<JoinHandle<()>>,
    servers: Vec<JoinHandle<()>>,
    stop_servers: watch::Sender<bool>,
}

/// Bind a listener; also returns the address it got (the port, if 0 was
/// asked for).
async fn listen(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Bind { what, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}

/// Binds tried for a peer port number free on both TCP and UDP, when the
/// port is left to the system.
const PORT_TRIES: usize = 16;

/// Bind the peer listener and, on the UDP transport, a UDP socket on the
/// same address and port number. With port 0 the system picks the TCP
/// port; if that number is taken on UDP, another is picked, up to
/// [`PORT_TRIES`] times. A named port taken on UDP is an error naming it.
async fn listen_peers(
    addr: SocketAddr,
    udp: bool,
) -> Result<(TcpListener, SocketAddr, Option<UdpSocket>), StartError> {
    let mut tries = 0;
    loop {
        let (listener, bound) = listen("peers", addr).await?;
        if !udp {
            return Ok((listener, bound, None));
        }
        match UdpSocket::bind(bound).await {
            Ok(socket) => {
                widen_receive_buffer(&socket);
                return Ok((listener, bound, Some(socket)));
            }
            Err(e) if addr.port() == 0 && tries + 1 < PORT_TRIES => {
                debug!(port = bound.port(), error = %e, "the peer port is taken on UDP; picking another");
                tries += 1;
            }
            Err(source) => {
                return Err(StartError::Bind {
                    what: "peers, UDP",
                    addr: bound,
                    source,
                })
            }
        }
    }
}

/// The receive buffer asked for on the peer port's UDP socket, as
/// memberlist asks: a join storm or a burst of gossip lands on one node
/// faster than it takes datagrams in, and the kernel's default (some
/// 200 KiB on Linux) drops the overflow. The kernel grants at most
/// `net.core.rmem_max`.
pub(crate) const UDP_RECEIVE_BUFFER: usize = 2 << 20;

/// Ask for [`UDP_RECEIVE_BUFFER`] on `socket`; the size granted, if the
/// kernel says. A refusal leaves the default in place: the node works,
/// with more datagrams lost to bursts.
pub(crate) fn widen_receive_buffer(socket: &UdpSocket) -> Option<usize> {
    let s = socket2::SockRef::from(socket);
    if let Err(e) = s.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        debug!(error = %e, "the UDP receive buffer keeps its default size");
    }
    let granted = s.recv_buffer_size().ok();
    debug!(granted, "UDP receive buffer");
    granted
}

impl Agent {
    /// Bind the peer and API listeners (and, on UDP, the peer port's UDP
    /// socket), start the node and, if seeds are
    /// given, join through every address they resolve to but its own
    /// (retried with backoff until one answers). A seed name that does not
    /// resolve yet leaves the node alone until it does (the seed task keeps
    /// resolving and knocking); a malformed seed is [`StartError::Seed`].
    pub async fn start(config: AgentConfig) -> Result<Agent, StartError> {
        config.protocol.validate()?;
        // On UDP, every datagram fits in `datagram_size`, sealed or not;
        // on gRPC nothing rides a datagram, so nothing is packed to one.
        let udp = config.peer_transport == Transport::Udp;
        let datagram_limit = config.protocol.datagram_size.unwrap_or(DATAGRAM_SIZE);
        let mut protocol = config.protocol.clone();
        protocol.datagram_size = udp.then(|| datagram_limit.saturating_sub(SEAL_OVERHEAD));
        protocol.validate()?;
        // A malformed seed stops the start; a name that does not resolve
        // yet does not (see below).
        let seed_list = config
            .join
            .iter()
            .map(|s| {
                s.parse::<Seed>().map_err(|reason| StartError::Seed {
                    seed: s.clone(),
                    reason,
                })
            })
            .collect::<Result<Vec<Seed>, StartError>>()?;
        // Refuse before binding anything: an open API beyond loopback lets
        // anyone who reaches it write, join, leave and shut down.
        let api_beyond_loopback = !config.api.ip().to_canonical().is_loopback();
        if api_beyond_loopback && config.api_token.is_none() && !config.insecure_api {
            return Err(StartError::InsecureApi(config.api));
        }
        // Before binding: an agent whose dir is damaged or held by another
        // process does not start at all.
        let store = match &config.data_dir {
            Some(path) => {
                let (path, name) = (path.clone(), config.name.clone());
                let opened = tokio::task::spawn_blocking(move || DataDir::open(&path, &name))
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                Some(opened?)
            }
            None => None,
        };
        let (peer_listener, bound, udp_socket) = listen_peers(config.bind, udp).await?;
        let (api_listener, api_addr) = listen("client API", config.api).await?;
        // Logged before any service runs, so that it is in the log by the
        // time the agent answers.
        // Mutual TLS authenticates peers as well as a key does.
        if config.keyring.is_none()
            && config.peer_tls.is_none()
            && !bound.ip().to_canonical().is_loopback()
        {
            warn!(peer = %bound, "the peer port is reachable beyond this host and has no cluster key: anyone who reaches it can join the cluster and write to it (set --key; make one with `rumour keygen`)");
        }
        let peer_addr = match config.advertise {
            Some(a) => a,
            None if bound.ip().is_unspecified() => return Err(StartError::NoAdvertise(bound)),
            None => bound,
        };
        // Every address the seeds resolve to but this node's own (a
        // headless service lists the asking pod too). A name that does not
        // resolve yet (the first pod of a StatefulSet starts before its
        // record is published), or seeds that stand only for this node,
        // leave it alone for now: the seed task resolves them again and
        // knocks until it meets someone.
        let own = vec![peer_addr, bound];
        let (seeds, unresolved) = resolve_seeds(&seed_list, &config.resolver, &own).await;
        if !seed_list.is_empty() && seeds.is_empty() {
            let why: Vec<String> = unresolved
                .iter()
                .map(|(seed, e)| format!("{seed}: {e}"))
                .collect();
            warn!(
                seeds = ?config.join,
                unresolved = ?why,
                retry_at_most_every = ?config.protocol.reconnect_interval,
                "no other node behind the seeds yet (a name that does not resolve, or only this node's own address): starting alone, and resolving the seeds again and knocking on them until a member answers"
            );
        } else {
            for (seed, e) in &unresolved {
                warn!(seed, error = %e, "a seed name does not resolve yet: joining through the others, and resolving it again on every retry");
            }
        }
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let incarnation = config.incarnation.unwrap_or(unix.as_secs() as u32);
        let rng_seed = config.rng_seed.unwrap_or_else(fresh_seed);
        let id = NodeId::new(&config.name, peer_addr)?;
        let start = Instant::now();
        // With a data dir, the node takes back its key, a higher
        // incarnation than any it used, and its namespace.
        let life = match &store {
            Some(dir) => Some(Life::load(dir, incarnation)?),
            None => None,
        };
        let incarnation = life.as_ref().map_or(incarnation, |l| l.incarnation);
        let identity = match (&life, &config.identity) {
            (Some(life), _) => life.identity.clone(),
            (None, Some(identity)) => identity.clone(),
            (None, None) => fresh_identity(),
        };
        let mut node = Node::with_identity(
            id,
            identity,
            Incarnation(incarnation),
            protocol,
            rng_seed,
            rumour_core::Time::ZERO,
        )?;
        // A restart without seeds rejoins through the members it knew.
        let seeds = match &life {
            Some(life) if seeds.is_empty() => {
                let known = life.snapshot_seeds(&config.name);
                if !known.is_empty() {
                    info!(seeds = ?known, "no seed to join through: rejoining through members the data dir knew");
                }
                known
            }
            _ => seeds,
        };
        let mut durable = match (store, life) {
            (Some(dir), Some(life)) => {
                if let Some(saved) = &life.namespace {
                    node.restore_namespace(rumour_core::Time::ZERO, saved)
                        .map_err(|e| DataDirError::Corrupt {
                            path: dir.db_path().to_path_buf(),
                            what: e.to_string(),
                        })?;
                }
                // Entries kept past a restart are knocked on as before: a
                // partition that outlasts a restart still heals.
                let start_unix_ms = unix.as_millis() as u64;
                let reconnect = life.reconnect_at(start_unix_ms);
                if !reconnect.is_empty() {
                    info!(
                        entries = reconnect.len(),
                        "took back the reconnect list from the data dir"
                    );
                }
                node.restore_reconnect(rumour_core::Time::ZERO, &reconnect);
                Some(Durable::start(dir, &node, incarnation, start_unix_ms)?)
            }
            _ => None,
        };
        if !seeds.is_empty() {
            node.join(rumour_core::Time::ZERO, &seeds)?;
        }

        let ring = match &mut durable {
            Some(d) => starting_keyring(d.dir_mut(), config.keyring.clone())?,
            None => config.keyring.clone(),
        };
        // Peer TLS covers the streams only: datagrams are authenticated by
        // the cluster key or not at all.
        if udp && config.peer_tls.is_some() && ring.is_none() {
            return Err(StartError::Tls {
                what: "peer port",
                reason: "mutual TLS does not cover UDP datagrams: with the UDP transport (the default) set a cluster key as well (--key), or choose --transport grpc".into(),
            });
        }
        let peer_auth = match &ring {
            None => "none (plaintext)".to_string(),
            Some(k) if k.label().is_empty() => format!("cluster key ({} in the ring)", k.len()),
            Some(k) => format!(
                "cluster key ({} in the ring), label {:?}",
                k.len(),
                k.label()
            ),
        };
        let stats = Arc::new(TransportStats::default());
        let transport = Arc::new(config.transport.clone());
        let (intake, taker) = intake::intake(Limits {
            membership: transport.intake_membership,
            data: transport.intake_data,
            total: transport.inbound_queue,
        });
        let keyring = ring.map(SharedKeyring::new);
        let sealer = match &keyring {
            Some(k) => Some(Sealer::new(k.clone()).map_err(StartError::Key)?),
            None => None,
        };
        // Without a key or peer TLS nothing authenticates a sender, so
        // what goes to one that is not a member (nor a seed) is held to
        // what it sent.
        let reply_budget = (keyring.is_none() && config.peer_tls.is_none()).then(|| {
            let budget = ReplyBudget::new(ACCOUNTS, ACCOUNT_IDLE);
            budget.vouch_for_seeds(&seeds);
            Arc::new(budget)
        });
        let udp_socket = udp_socket.map(Arc::new);
        let links = Links::new(peer_addr, transport.clone(), stats.clone(), sealer)
            .with_tls(
                config
                    .peer_tls
                    .as_ref()
                    .map(|t| t.client_config(transport.connect_timeout)),
            )
            .with_reply_budget(reply_budget.clone())
            .with_datagrams(
                udp_socket
                    .clone()
                    .map(|s| Datagrams::new(s, datagram_limit, stats.clone())),
            );
        let (mut driver, handle, inputs) = driver::driver(
            node,
            start,
            links,
            taker,
            transport.watch_buffer,
            stats.clone(),
            api_addr,
        );
        driver.durable = durable;
        driver.keyring = keyring.clone();
        driver.queries = Queries::new(QueryLimits::of(&transport));
        let (stop_servers, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        let reception = Arc::new(Reception {
            check_sender_address: transport.check_sender_address,
            stats: stats.clone(),
            keyring,
            replay: ReplayWindow::new(),
            refusals: RefusalLog::new(std::time::Duration::from_secs(10), 4096),
            reply_budget,
        });
        let datagram_receiver = udp_socket.map(|socket| {
            datagram::receive(
                socket,
                datagram_limit,
                transport.peer_rate,
                intake.clone(),
                reception.clone(),
            )
        });
        let peer_service = PeerServer::new(PeerService {
            intake,
            rate: transport.peer_rate,
            reception,
        })
        .max_decoding_message_size(transport.max_inbound_message);
        let peer_incoming = TcpIncoming::from(peer_listener).with_nodelay(Some(true));
        // Pings on inbound connections too, if configured: one from a peer
        // cut off by a partition is then closed, not held open for the TCP
        // timeout.
        let peer_server = with_tls(
            Server::builder()
                .http2_keepalive_interval(transport.keepalive_interval)
                .http2_keepalive_timeout(Some(transport.keepalive_timeout)),
            "peer port",
            config.peer_tls.as_ref().map(PeerTls::server_config),
        )?
        .add_service(peer_service)
        .serve_with_incoming_shutdown(peer_incoming, stopped(stop_rx.clone()));

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<RumourServer<ApiService>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rumour_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| StartError::ConfigFile {
                path: "<built-in schema>".into(),
                reason: e.to_string(),
            })?;
        let api_service = Guarded {
            inner: RumourServer::new(ApiService {
                handle: handle.clone(),
            }),
            access: Arc::new(Access {
                token: config.api_token.clone(),
                open_loopback: config.api_open_loopback,
            }),
            stats: stats.clone(),
        };
        let api_incoming = TcpIncoming::from(api_listener).with_nodelay(Some(true));
        let api_server = with_tls(
            Server::builder(),
            "client API",
            config.api_tls.as_ref().map(ApiTls::server_config),
        )?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(api_service)
        .serve_with_incoming_shutdown(api_incoming, stopped(stop_rx));

        let mut servers = vec![
            tokio::spawn(async move {
                if let Err(e) = peer_server.await {
                    warn!(error = %e, "peer service stopped");
                }
            }),
            tokio::spawn(async move {
                if let Err(e) = api_server.await {
                    warn!(error = %e, "client API stopped");
                }
            }),
        ];
        if let Some(receiver) = datagram_receiver {
            let stop = stopped(stop_servers.subscribe());
            servers.push(tokio::spawn(async move {
                tokio::select! {
                    () = receiver => {}
                    () = stop => {}
                }
            }));
        }
        // The node runs once the servers are started: its join's answer comes
        // to a peer port that takes it, and an error above leaves no node
        // task behind.
        let node_task = tokio::spawn(driver::run(driver, inputs));
        let seed_task = (!config.join.is_empty()).then(|| {
            tokio::spawn(driver::retry_seeds(
                handle.clone(),
                driver::Seeds {
                    seeds: seed_list,
                    resolver: config.resolver.clone(),
                    own,
                },
                config.protocol.probe_period,
                config.protocol.reconnect_interval,
            ))
        });
        let api_auth = match (&config.api_token, config.api_open_loopback) {
            (None, _) => "none",
            (Some(_), false) => "token",
            (Some(_), true) => "token (loopback open but for shutdown, leave, join, keys)",
        };
        let data_dir = config.data_dir.clone();
        let kept = data_dir
            .as_deref()
            .map_or_else(|| "none".to_string(), |p| p.display().to_string());
        let api_tls = match &config.api_tls {
            None => "none",
            Some(t) if t.requires_client_cert() => "mutual (client certificates required)",
            Some(_) => "server certificate",
        };
        let peer_tls = match &config.peer_tls {
            None => "none".to_string(),
            Some(t) => format!("mutual, peers named {:?}", t.server_name()),
        };
        info!(name = %config.name, peer = %peer_addr, api = %api_addr, transport = %config.peer_transport, api_auth, api_tls, peer_auth, peer_tls, incarnation, data_dir = %kept, "agent started");
        if api_beyond_loopback && config.api_token.is_none() {
            warn!(api = %api_addr, "the client API is open to anyone who can reach it (--insecure): they can write, join, leave and shut the agent down");
        }
        if !seeds.is_empty() {
            info!(seeds = ?config.join, addrs = ?seeds, "joining");
        }
        Ok(Agent {
            handle,
            name: config.name,
            peer_addr,
            api_addr,
            data_dir,
            node_task,
            seed_task,
            servers,
            stop_servers,
        })
    }

    /// A handle for commands, reads and event subscriptions.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address other nodes reach this one at.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The client API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The data dir the agent opened, if it keeps one.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Run until the agent is asked to stop (a `Shutdown` call or
    /// [`Handle::shutdown`]); the node leaves the cluster gracefully, then
    /// the services stop.
    pub async fn wait(mut self) {
        let _ = (&mut self.node_task).await;
        self.stop_services().await;
    }

    /// Leave the cluster gracefully and stop.
    pub async fn shutdown(self) {
        self.handle.shutdown();
        self.wait().await;
    }

    /// Stop at once, as a crash would: no leave, no goodbye. Peers find out
    /// through failure detection. The tasks are told to stop and end at
    /// their next wait; a task running on another thread may still take
    /// what is already queued for it (see [`Agent::kill_and_wait`]).
    pub fn kill(self) {
        self.abort_all();
    }

    /// [`Agent::kill`], returning once the node has stopped: nothing sent
    /// to it afterwards is answered.
    pub async fn kill_and_wait(mut self) {
        self.abort_all();
        let _ = (&mut self.node_task).await;
        for s in self.servers.drain(..) {
            let _ = s.await;
        }
    }

    fn abort_all(&self) {
        self.node_task.abort();
        if let Some(t) = &self.seed_task {
            t.abort();
        }
        for s in &self.servers {
            s.abort();
        }
    }

    /// Stop the services: graceful first, so that answers in flight go
    /// out; peers' streams stay open until they idle, so after a short
    /// grace the servers are stopped outright.
    async fn stop_services(&mut self) {
        if let Some(t) = self.seed_task.take() {
            t.abort();
        }
        let _ = self.stop_servers.send(true);
        let grace = std::time::Duration::from_secs(1);
        for mut s in self.servers.drain(..) {
            if tokio::time::timeout(grace, &mut s).await.is_err() {
                s.abort();
            }
        }
    }
}

/// The keyring an agent with a data dir starts with. The dir's keyring, if
/// it keeps one, is the node's: what key commands made of it outlives the
/// flags the agent was first started with, so `flags` (`--key`, `--label`)
/// are then ignored, with a warning if they differ. A dir that keeps none
/// takes `flags`, and keeps them from now on.
fn starting_keyring(
    dir: &mut DataDir,
    flags: Option<Keyring>,
) -> Result<Option<Keyring>, StartError> {
    let corrupt = |what: String| DataDirError::Corrupt {
        path: dir.db_path().to_path_buf(),
        what,
    };
    let saved = match dir.load_keyring()? {
        Some(saved) => saved,
        None => {
            if let Some(ring) = &flags {
                let keys: Vec<&[u8]> = ring.keys().iter().map(|k| &k.as_bytes()[..]).collect();
                dir.save_keyring(&keys, ring.label())?;
            }
            return Ok(flags);
        }
    };
    let ring = Keyring::from_bytes(&saved.keys, saved.label)
        .map_err(|e| corrupt(format!("the kept keyring: {e}")))?;
    match &flags {
        Some(f) if f != &ring => warn!(
            kept = ring.len(),
            given = f.len(),
            "the data dir keeps a keyring, which key commands may have changed since: it is used, and --key/--label (or the config file's key/label) are ignored. To change keys, use `rumour keys install|use|remove`"
        ),
        _ => {}
    }
    info!(keys = ring.len(), primary = %ring.primary().fingerprint(), "cluster keyring taken from the data dir");
    Ok(Some(ring))
}

/// `server` serving TLS with `tls`, if given. The settings were checked
/// when they were made, so a failure here is unexpected; it still stops
/// the start, naming the listener and never the key.
fn with_tls(
    server: Server,
    what: &'static str,
    tls: Option<ServerTlsConfig>,
) -> Result<Server, StartError> {
    match tls {
        None => Ok(server),
        Some(tls) => server.tls_config(tls).map_err(|e| StartError::Tls {
            what,
            reason: e.to_string(),
        }),
    }
}

/// An RNG seed from the operating system's randomness: a peer that knew
/// the seed could foresee the node's choices and the key of its hash table.
fn fresh_seed() -> u64 {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("the operating system's random source works");
    u64::from_le_bytes(seed)
}

/// A key pair from the operating system's randomness.
fn fresh_identity() -> Identity {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random source works");
    Identity::from_secret(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_peer_port_asks_for_a_wide_receive_buffer() {
        // The kernel grants min(asked, rmem_max) and reports twice that
        // (Linux keeps room for its own bookkeeping); the default is
        // some 200 KiB whatever rmem_max is.
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .expect("Linux")
            .trim()
            .parse()
            .expect("a number");
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let default = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        let granted = widen_receive_buffer(&socket).expect("the kernel says");
        assert!(granted >= UDP_RECEIVE_BUFFER.min(rmem_max), "{granted}");
        if rmem_max > default {
            assert!(granted > default, "{granted} against the default {default}");
        }
    }
}
