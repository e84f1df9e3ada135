//! chitchat: `spawn_chitchat` per node over its UDP transport (wrapped by
//! the bench's send path), gossip interval 200 ms, everything else as
//! chitchat ships it.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chitchat::{
    spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig,
    ProtocolVersion,
};
use tokio::task::JoinHandle;

use super::chitchat_transport::BenchTransport;
use super::Cluster;
use crate::link::Counters;
use crate::spec::{Spec, GOSSIP_INTERVAL};

/// The version in Cargo.lock.
pub const VERSION: &str = "0.13.0";

/// Free loopback ports for n nodes: chitchat binds its own socket from the
/// listen address, so the addresses are reserved (bound, read, released)
/// first.
fn reserve_addrs(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let sockets = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<Vec<_>, _>>()?)
}

fn config(id: ChitchatId, seed: SocketAddr) -> ChitchatConfig {
    ChitchatConfig {
        listen_addr: id.gossip_advertise_addr,
        chitchat_id: id,
        cluster_id: "bench".to_string(),
        gossip_interval: GOSSIP_INTERVAL,
        seed_nodes: vec![seed.to_string()],
        failure_detector_config: FailureDetectorConfig::default(),
        // The grace period of chitchat's own default configuration.
        marked_for_deletion_grace_period: Duration::from_secs(15 * 60),
        catchup_callback: None,
        extra_liveness_predicate: None,
        // Every node runs the same version, so the compressed digest is safe.
        protocol_version: ProtocolVersion::V1,
    }
}

/// The bench's keys, as a node applied them: (owner's node id, key) → value.
/// Filled by chitchat's own key-change callbacks, so the bench reads it
/// without taking the node's lock (which its gossip task needs).
type Seen = Arc<Mutex<HashMap<(String, String), String>>>;

/// The prefix of every key the bench writes.
const KEY_PREFIX: &str = "bench-";

pub struct ChitchatCluster {
    handles: Vec<ChitchatHandle>,
    seen: Vec<Seen>,
    watchers: Vec<JoinHandle<()>>,
    dead: Arc<AtomicU64>,
}

/// Count members that leave a node's live set: chitchat's failure detector
/// declared them dead.
async fn watch_deaths(handle: &ChitchatHandle, dead: Arc<AtomicU64>) -> JoinHandle<()> {
    let mut rx = handle.chitchat().lock().await.live_nodes_watcher();
    tokio::spawn(async move {
        let mut live: BTreeSet<ChitchatId> = BTreeSet::new();
        while rx.changed().await.is_ok() {
            let now: BTreeSet<ChitchatId> = rx.borrow_and_update().keys().cloned().collect();
            dead.fetch_add(live.difference(&now).count() as u64, Relaxed);
            live = now;
        }
    })
}

/// Record every bench key the node applies, as chitchat notifies it.
async fn record_writes(handle: &ChitchatHandle) -> Seen {
    let seen = Seen::default();
    let sink = seen.clone();
    handle
        .chitchat()
        .lock()
        .await
        .subscribe_event(KEY_PREFIX, move |e| {
            let key = format!("{KEY_PREFIX}{}", e.key);
            let owner = e.node.node_id.to_string();
            sink.lock()
                .unwrap()
                .insert((owner, key), e.value.to_string());
        })
        .forever();
    seen
}

impl Cluster for ChitchatCluster {
    async fn start(spec: &Spec, counters: Arc<Counters>) -> anyhow::Result<Self> {
        let addrs = reserve_addrs(spec.n)?;
        let transport = BenchTransport::new(spec.seed, spec.loss, counters);
        let dead = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::with_capacity(spec.n);
        let mut watchers = Vec::with_capacity(spec.n);
        let mut seen = Vec::with_capacity(spec.n);
        for (i, addr) in addrs.iter().enumerate() {
            let id = ChitchatId::new(format!("node-{i}"), 0, *addr);
            let handle = spawn_chitchat(config(id, addrs[0]), Vec::new(), &transport).await?;
            watchers.push(watch_deaths(&handle, dead.clone()).await);
            seen.push(record_writes(&handle).await);
            handles.push(handle);
        }
        Ok(ChitchatCluster {
            handles,
            seen,
            watchers,
            dead,
        })
    }

    /// The nodes in node `i`'s cluster state: those it has heard of. Its
    /// live set (`live_nodes`) lags behind: chitchat's failure detector
    /// counts a node live only after two heartbeats.
    async fn known(&self, i: usize) -> usize {
        self.handles[i]
            .with_chitchat(|c| c.node_states().len())
            .await
    }

    async fn write(&self, i: usize, key: &str, value: &str) {
        self.handles[i]
            .with_chitchat(|c| c.self_node_state().set(key, value))
            .await
    }

    async fn holds(&self, j: usize, owner: usize, key: &str, value: &str) -> bool {
        debug_assert!(key.starts_with(KEY_PREFIX));
        if j == owner {
            // The write itself returned with the value set.
            return true;
        }
        let owner = self.handles[owner].chitchat_id().node_id.to_string();
        let seen = self.seen[j].lock().unwrap();
        seen.get(&(owner, key.to_string()))
            .is_some_and(|v| v == value)
    }

    fn false_dead(&self) -> u64 {
        self.dead.load(Relaxed)
    }

    async fn stop(self) {
        for w in &self.watchers {
            w.abort();
        }
        for h in self.handles {
            h.abort();
        }
    }
}
