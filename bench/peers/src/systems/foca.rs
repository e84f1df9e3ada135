//! foca: one `Foca` instance per node over tokio UDP, `Config::new_lan(n)`,
//! postcard codec, an `AccumulatingRuntime` drained after every input, as
//! foca's UDP agent example runs it. Writes are custom broadcasts
//! (`foca_kv`).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use foca::{AccumulatingRuntime, Config, Foca, OwnedNotification, PostcardCodec};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::foca_kv::{KvHandler, Replica, Write};
use super::foca_timers::Timers;
use super::Cluster;
use crate::link::{Counters, Link};
use crate::recv::try_take;
use crate::spec::{Spec, GOSSIP_INTERVAL};

/// The version in Cargo.lock.
pub const VERSION: &str = "2.0.0";

/// A node's identity: its address and a counter that a node declared down
/// bumps to rejoin at once (foca's `Identity::renew`), as in foca's example.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FocaId {
    addr: SocketAddr,
    bump: u64,
}

impl foca::Identity for FocaId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(FocaId {
            addr: self.addr,
            bump: self.bump.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

type Instance = Foca<FocaId, PostcardCodec, StdRng, KvHandler>;

enum Command {
    Write(Vec<u8>),
}

/// What the bench reads of a node while its task runs.
struct Shared {
    known: AtomicUsize,
    replica: Replica,
}

struct NodeTask {
    foca: Instance,
    runtime: AccumulatingRuntime<FocaId>,
    timers: Timers<FocaId>,
    socket: UdpSocket,
    link: Link,
    commands: mpsc::UnboundedReceiver<Command>,
    shared: Arc<Shared>,
    dead: Arc<AtomicU64>,
    /// Whether foca said it is known to an active member (`Active`).
    joined: bool,
}

/// How often a node that has not joined announces itself to the seed
/// again: foca sends one announce per call and leaves retrying to its
/// user, so a lost announce or reply would otherwise leave the node out
/// for good (its periodic timers only start once it has joined).
const ANNOUNCE_RETRY: Duration = Duration::from_secs(1);

impl NodeTask {
    /// Act on everything the last input produced.
    async fn drain(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            if !self.link.admit() {
                continue;
            }
            match self.socket.send_to(&data, to.addr).await {
                Ok(_) => self.link.sent(data.len()),
                Err(_) => self.link.failed(),
            }
        }
        let now = Instant::now();
        while let Some((after, event)) = self.runtime.to_schedule() {
            self.timers.add(now + after, event);
        }
        while let Some(n) = self.runtime.to_notify() {
            match n {
                OwnedNotification::MemberDown(_) => {
                    self.dead.fetch_add(1, Relaxed);
                }
                OwnedNotification::Active => self.joined = true,
                OwnedNotification::Idle | OwnedNotification::Defunct => self.joined = false,
                _ => {}
            }
        }
        self.shared
            .known
            .store(self.foca.num_members() + 1, Relaxed);
    }

    async fn run(mut self, seed: Option<FocaId>) {
        // The first tick is at once: the first announce.
        let mut announce = tokio::time::interval(ANNOUNCE_RETRY);
        loop {
            let deadline = self.timers.next_deadline();
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.readable() => {
                    if r.is_ok() {
                        // Foca refuses some data (stale or from a member it
                        // declared down); it recovers by itself.
                        let (foca, runtime) = (&mut self.foca, &mut self.runtime);
                        try_take(&self.socket, |bytes, _| foca.handle_data(bytes, runtime));
                    }
                }
                _ = timer => {
                    let now = Instant::now();
                    while let Some(event) = self.timers.pop_due(now) {
                        let _ = self.foca.handle_timer(event, &mut self.runtime);
                    }
                }
                _ = announce.tick(), if seed.is_some() && !self.joined => {
                    if let Some(seed) = &seed {
                        let _ = self.foca.announce(seed.clone(), &mut self.runtime);
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Write(data)) => {
                        let _ = self.foca.add_broadcast(&data);
                    }
                    None => return,
                },
            }
            self.drain().await;
        }
    }
}

pub struct FocaCluster {
    shared: Vec<Arc<Shared>>,
    commands: Vec<mpsc::UnboundedSender<Command>>,
    tasks: Vec<JoinHandle<()>>,
    dead: Arc<AtomicU64>,
}

impl Cluster for FocaCluster {
    async fn start(spec: &Spec, counters: Arc<Counters>) -> anyhow::Result<Self> {
        let n = NonZeroU32::new(spec.n as u32).expect("n > 0");
        let config = Config::new_lan(n);
        debug_assert_eq!(
            config.periodic_gossip.as_ref().map(|g| g.frequency),
            Some(GOSSIP_INTERVAL)
        );
        let dead = Arc::new(AtomicU64::new(0));
        let mut sockets = Vec::with_capacity(spec.n);
        for _ in 0..spec.n {
            sockets.push(UdpSocket::bind("127.0.0.1:0").await?);
        }
        let seed_id = FocaId {
            addr: sockets[0].local_addr()?,
            bump: 0,
        };
        let mut cluster = FocaCluster {
            shared: Vec::with_capacity(spec.n),
            commands: Vec::with_capacity(spec.n),
            tasks: Vec::with_capacity(spec.n),
            dead: dead.clone(),
        };
        for (i, socket) in sockets.into_iter().enumerate() {
            let id = FocaId {
                addr: socket.local_addr()?,
                bump: 0,
            };
            let shared = Arc::new(Shared {
                known: AtomicUsize::new(1),
                replica: Replica::default(),
            });
            let handler = KvHandler {
                replica: shared.replica.clone(),
            };
            let rng =
                StdRng::seed_from_u64(spec.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
            let foca = Foca::with_custom_broadcast(id, config.clone(), rng, PostcardCodec, handler);
            let (tx, rx) = mpsc::unbounded_channel();
            let task = NodeTask {
                foca,
                runtime: AccumulatingRuntime::new(),
                timers: Timers::new(),
                socket,
                link: Link::new(spec.seed, i as u64, spec.loss, counters.clone()),
                commands: rx,
                shared: shared.clone(),
                dead: dead.clone(),
                joined: false,
            };
            let seed = (i > 0).then(|| seed_id.clone());
            cluster.tasks.push(tokio::spawn(task.run(seed)));
            cluster.shared.push(shared);
            cluster.commands.push(tx);
        }
        Ok(cluster)
    }

    async fn known(&self, i: usize) -> usize {
        self.shared[i].known.load(Relaxed)
    }

    async fn write(&self, i: usize, key: &str, value: &str) {
        let w = Write {
            owner: i as u32,
            key: key.to_string(),
            version: 1,
            value: value.to_string(),
        };
        let _ = self.commands[i].send(Command::Write(w.encode()));
    }

    async fn holds(&self, j: usize, owner: usize, key: &str, value: &str) -> bool {
        let replica = self.shared[j].replica.lock().unwrap();
        replica
            .get(&(owner as u32, key.to_string()))
            .is_some_and(|(_, v)| v == value)
    }

    fn false_dead(&self) -> u64 {
        self.dead.load(Relaxed)
    }

    async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
