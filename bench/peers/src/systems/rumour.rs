//! rumour: `rumour_core::Node` driven over tokio UDP by a minimal driver.
//!
//! Each node is one task that owns its socket and selects over an inbound
//! datagram, the node's next timer (`poll_timeout`) and a wake-up after a
//! write; after each it hands every output to the socket. Messages travel
//! in rumour's real wire format: the `rumour.v1.Envelope` protobuf of
//! `rumour-proto`, one envelope per datagram, leaving the sender out as the
//! agent's UDP transport does from a socket bound to the node's own address
//! (the receiver takes the datagram's source).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;
use rumour_core::{Config, Event, Incarnation, Node, NodeId, Output, Time};
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Cluster;

/// The most datagrams a node takes in one batch (the agent's driver takes
/// up to as many before it drains).
const BATCH_MAX: usize = 64;
use crate::link::{Counters, Link};
use crate::recv::{try_take, MAX_DATAGRAM};
use crate::spec::{Spec, GOSSIP_INTERVAL};

/// The largest envelope rumour builds. Its LAN default is 65,536 B (sized
/// for its gRPC transport); a UDP datagram carries at most 65,507, so the
/// budget is lowered to leave room.
const MAX_MESSAGE: usize = 65_000;

/// `Config::lan()` with the message budget of a datagram.
pub fn config() -> Config {
    let c = Config {
        max_message_size: MAX_MESSAGE,
        ..Config::lan()
    };
    debug_assert_eq!(c.gossip_interval, GOSSIP_INTERVAL);
    c
}

struct Peer {
    node: Mutex<Node>,
    socket: UdpSocket,
    addr: SocketAddr,
    link: Mutex<Link>,
    wake: Notify,
    origin: Instant,
    dead: Arc<AtomicU64>,
}

impl Peer {
    fn now(&self) -> Time {
        Time::from_micros(self.origin.elapsed().as_micros() as u64)
    }

    /// Take every pending output: datagrams to send (encoded), and count
    /// dead declarations.
    fn drain(&self, node: &mut Node) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(o) = node.poll_output() {
            match o {
                Output::Send { to, msg } => {
                    // From the socket bound to the node's own address, as
                    // the agent sends on UDP: the source names the sender.
                    let env = rumour_proto::datagram_envelope(&msg);
                    out.push((to, env.encode_to_vec()));
                }
                Output::Event(Event::MemberDied(_)) => {
                    self.dead.fetch_add(1, Relaxed);
                }
                Output::Event(_) => {}
            }
        }
        out
    }

    async fn transmit(&self, datagrams: Vec<(SocketAddr, Vec<u8>)>) {
        for (to, bytes) in datagrams {
            if !self.link.lock().unwrap().admit() {
                continue;
            }
            match self.socket.send_to(&bytes, to).await {
                Ok(_) => self.link.lock().unwrap().sent(bytes.len()),
                Err(_) => self.link.lock().unwrap().failed(),
            }
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            let (out, deadline) = {
                let mut node = self.node.lock().unwrap();
                (self.drain(&mut node), node.poll_timeout())
            };
            self.transmit(out).await;
            let timer = async {
                match deadline {
                    Some(t) => {
                        let at = self.origin + Duration::from_micros(t.as_micros());
                        tokio::time::sleep_until(at.into()).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.readable() => {
                    if r.is_err() {
                        continue;
                    }
                    // What arrived together is taken together, as the
                    // agent's driver does: the signatures on its records
                    // checked as one batch, and the outputs drained (and
                    // merged per peer by the node's outbox) once after.
                    // Every datagram here comes from a bench node; none
                    // fails to decode (checked while writing the driver).
                    let mut batch = Vec::new();
                    while batch.len() < BATCH_MAX {
                        let decode = |bytes: &[u8], source| {
                            rumour_proto::decode_datagram(bytes, MAX_DATAGRAM, source)
                        };
                        match try_take(&self.socket, decode) {
                            Some(Ok(m)) => batch.push(m),
                            Some(Err(_)) => {}
                            None => break,
                        }
                    }
                    let now = self.now();
                    let mut node = self.node.lock().unwrap();
                    node.check_ahead(batch.iter().map(|(_, m)| m));
                    for (from, msg) in batch {
                        node.handle_message(now, from, msg);
                    }
                }
                _ = timer => {
                    let now = self.now();
                    self.node.lock().unwrap().handle_timeout(now);
                }
                _ = self.wake.notified() => {}
            }
        }
    }
}

pub struct RumourCluster {
    peers: Vec<Arc<Peer>>,
    names: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
    dead: Arc<AtomicU64>,
}

impl Cluster for RumourCluster {
    async fn start(spec: &Spec, counters: Arc<Counters>) -> anyhow::Result<Self> {
        let origin = Instant::now();
        let dead = Arc::new(AtomicU64::new(0));
        let mut peers = Vec::with_capacity(spec.n);
        let mut names = Vec::with_capacity(spec.n);
        for i in 0..spec.n {
            let socket = UdpSocket::bind("127.0.0.1:0").await?;
            // The receive buffer the agent asks for on its peer port
            // (rumour-transport's UDP_RECEIVE_BUFFER).
            socket2::SockRef::from(&socket).set_recv_buffer_size(2 << 20)?;
            let addr = socket.local_addr()?;
            let name = format!("node-{i}");
            let id = NodeId::new(&name, addr)?;
            let seed = spec.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let node = Node::new(id, Incarnation(0), config(), seed, Time::ZERO)?;
            names.push(name);
            peers.push(Arc::new(Peer {
                node: Mutex::new(node),
                socket,
                addr,
                link: Mutex::new(Link::new(spec.seed, i as u64, spec.loss, counters.clone())),
                wake: Notify::new(),
                origin,
                dead: dead.clone(),
            }));
        }
        let seed_addr = peers[0].addr;
        let mut tasks = Vec::with_capacity(spec.n);
        for p in &peers {
            if p.addr != seed_addr {
                let now = p.now();
                p.node.lock().unwrap().join(now, &[seed_addr])?;
            }
            tasks.push(tokio::spawn(p.clone().run()));
        }
        Ok(RumourCluster {
            peers,
            names,
            tasks,
            dead,
        })
    }

    async fn known(&self, i: usize) -> usize {
        self.peers[i].node.lock().unwrap().live_members()
    }

    async fn write(&self, i: usize, key: &str, value: &str) {
        let p = &self.peers[i];
        let now = p.now();
        p.node
            .lock()
            .unwrap()
            .put(now, key, value.as_bytes())
            .expect("a bench write fits the limits");
        p.wake.notify_one();
    }

    async fn holds(&self, j: usize, owner: usize, key: &str, value: &str) -> bool {
        let node = self.peers[j].node.lock().unwrap();
        node.get(&self.names[owner], key)
            .is_some_and(|e| *e.value == *value.as_bytes())
    }

    fn false_dead(&self) -> u64 {
        self.dead.load(Relaxed)
    }

    async fn counters(&self, i: usize) -> Vec<(&'static str, u64)> {
        self.peers[i].node.lock().unwrap().stats().counters()
    }

    async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
