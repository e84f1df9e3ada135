//! The client API: typed calls on a [`Handle`], and the `rumour.v1.Rumour`
//! gRPC service built on them.

use std::net::SocketAddr;
use std::pin::Pin;

use rumour_core::{Entry, Event, FreshRead, Member, Metadata, ReadSource};
use rumour_proto::v1 as pb;
use rumour_proto::v1::rumour_server::Rumour;
use tokio::sync::oneshot;
use tokio_stream::wrappers::{BroadcastStream, ReceiverStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::driver::{Driver, Handle, Sequenced};
use crate::error::ApiError;
use crate::key_commands::{KeyOp, KeyReport, DEFAULT_KEY_TIMEOUT};
use crate::query::{Query, QueryEvent};
use crate::seed::{Seed, SeedResolver};

/// A value read from a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The namespace (its owner's name).
    pub namespace: String,
    /// The entry.
    pub entry: Entry,
    /// Who answered: the owner (fresh reads) or the local replica.
    pub source: ReadSource,
}

/// A snapshot of the agent for `Status`.
#[derive(Clone, Debug)]
pub struct StatusReport {
    /// This node as it sees itself.
    pub me: Member,
    /// When `me` last changed, in ms since the Unix epoch.
    pub me_since_unix_ms: u64,
    /// Members alive or suspect, this node included.
    pub live_members: usize,
    /// When `live_members` last changed, in microseconds since the Unix
    /// epoch.
    pub live_since_unix_micros: u64,
    /// When the node began to run (its join, if any, leaving then), in
    /// microseconds since the Unix epoch.
    pub started_unix_micros: u64,
    /// Members known (any state).
    pub members: usize,
    /// Namespaces held.
    pub namespaces: usize,
    /// Protocol and transport counters.
    pub counters: Vec<(String, u64)>,
    /// The effective protocol configuration, one TOML value per field.
    pub config: Vec<(String, String)>,
    /// Whether the node has left.
    pub left: bool,
    /// The own namespace's generation and version.
    pub generation: u32,
    /// The own namespace's version counter.
    pub version: u64,
}

impl Handle {
    fn own(d: &Driver, namespace: &str) -> String {
        if namespace.is_empty() {
            d.node.id().name().to_string()
        } else {
            namespace.to_string()
        }
    }

    /// Write `key` in this node's namespace (`namespace` empty or this
    /// node's name). Returns the write's version.
    pub async fn put(&self, namespace: &str, key: &str, value: &[u8]) -> Result<u64, ApiError> {
        let (namespace, key, value) = (namespace.to_string(), key.to_string(), value.to_vec());
        self.call(move |d| {
            let now = d.now();
            let ns = Handle::own(d, &namespace);
            d.node.put_in(now, &ns, &key, &value)
        })
        .await?
        .map_err(ApiError::from)
    }

    /// Delete `key` from this node's namespace. Returns the tombstone's
    /// version, `None` if the key was not there.
    pub async fn delete(&self, namespace: &str, key: &str) -> Result<Option<u64>, ApiError> {
        let (namespace, key) = (namespace.to_string(), key.to_string());
        self.call(move |d| {
            let now = d.now();
            let ns = Handle::own(d, &namespace);
            if ns != d.node.id().name() {
                return Err(rumour_core::Error::NotOwner(ns));
            }
            d.node.delete(now, &key)
        })
        .await?
        .map_err(ApiError::from)
    }

    /// Read `key` of `namespace` (empty: this node's) from the local replica.
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Read, ApiError> {
        if key.is_empty() {
            return Err(rumour_core::Error::EmptyKey.into());
        }
        let (namespace, key) = (namespace.to_string(), key.to_string());
        self.call(move |d| {
            let ns = Handle::own(d, &namespace);
            match d.node.get(&ns, &key) {
                Some(entry) => Ok(Read {
                    namespace: ns,
                    entry,
                    source: ReadSource::Replica,
                }),
                None if known_namespace(d, &ns) => Err(ApiError::NoKey { namespace: ns, key }),
                None => Err(ApiError::NoNamespace(ns)),
            }
        })
        .await?
    }

    /// Read `key` of `namespace` from its owner; after the query timeout
    /// (or if the owner is not a live member) from the local replica.
    pub async fn get_fresh(&self, namespace: &str, key: &str) -> Result<Read, ApiError> {
        if key.is_empty() {
            return Err(rumour_core::Error::EmptyKey.into());
        }
        let (namespace, key) = (namespace.to_string(), key.to_string());
        let rx = self
            .call(move |d| {
                let (tx, rx) = oneshot::channel::<FreshRead>();
                let ns = Handle::own(d, &namespace);
                let now = d.now();
                let id = d.node.query_fresh(now, &ns, &key);
                d.fresh.insert(id, tx);
                rx
            })
            .await?;
        let r = rx.await.map_err(|_| ApiError::Stopped)?;
        match r.value {
            Some(value) => Ok(Read {
                namespace: r.owner.to_string(),
                entry: Entry {
                    key: r.key,
                    version: r.version,
                    value,
                },
                source: r.source,
            }),
            None => Err(ApiError::NoKey {
                namespace: r.owner.to_string(),
                key: r.key.to_string(),
            }),
        }
    }

    /// The live entries of `namespace` (empty: this node's) under `prefix`,
    /// in key order.
    pub async fn list(
        &self,
        namespace: &str,
        prefix: &str,
    ) -> Result<(String, Vec<Entry>), ApiError> {
        let (namespace, prefix) = (namespace.to_string(), prefix.to_string());
        self.call(move |d| {
            let ns = Handle::own(d, &namespace);
            if !known_namespace(d, &ns) {
                return Err(ApiError::NoNamespace(ns));
            }
            let entries = d.node.list(&ns, &prefix);
            Ok((ns, entries))
        })
        .await?
    }

    /// Every member this node knows of, by name, each with when it last
    /// changed (ms since the Unix epoch).
    pub async fn members(&self) -> Result<Vec<(Member, u64)>, ApiError> {
        self.call(|d| {
            let mut ms: Vec<(Member, u64)> = d
                .node
                .members()
                .map(|m| {
                    let t = d.unix_ms(m.since);
                    (m, t)
                })
                .collect();
            ms.sort_by(|a, b| a.0.id.name().cmp(b.0.id.name()));
            ms
        })
        .await
    }

    /// The reconnect list: (name, address, next try and kept-until in ms
    /// since the Unix epoch), in the order it is walked.
    pub async fn reconnect_list(&self) -> Result<Vec<(String, SocketAddr, u64, u64)>, ApiError> {
        self.call(|d| {
            d.node
                .reconnect_list()
                .into_iter()
                .map(|(n, a, next, until)| (n.to_string(), a, d.unix_ms(next), d.unix_ms(until)))
                .collect()
        })
        .await
    }

    /// A snapshot of this node: identity, counts, counters, configuration.
    pub async fn status(&self) -> Result<StatusReport, ApiError> {
        let transport = self.stats.snapshot();
        self.call(move |d| {
            let me = d
                .node
                .member(d.node.id().name())
                .expect("a node always knows itself");
            let mut counters: Vec<(String, u64)> = d
                .node
                .stats()
                .counters()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            counters.extend(
                transport
                    .into_iter()
                    .map(|(k, v)| (format!("transport_{k}"), v)),
            );
            let own = d.node.own_namespace_since(u64::MAX);
            let config = toml::Table::try_from(d.node.config())
                .map(|t| t.into_iter().map(|(k, v)| (k, v.to_string())).collect())
                .unwrap_or_default();
            StatusReport {
                me_since_unix_ms: d.unix_ms(me.since),
                me,
                live_members: d.node.live_members(),
                live_since_unix_micros: d.live_since_unix_micros,
                started_unix_micros: d.start_unix_micros,
                members: d.node.members().count(),
                namespaces: d.node.owners().len(),
                counters,
                config,
                left: d.node.has_left(),
                generation: own.generation,
                version: own.version,
            }
        })
        .await
    }

    /// Join a cluster through `seeds` (`ip:port` or `host:port`).
    pub async fn join(&self, seeds: &[String]) -> Result<(), ApiError> {
        let addrs = resolve(seeds).await?;
        self.call(move |d| {
            let now = d.now();
            d.vouch_for_seeds(&addrs);
            d.node.join(now, &addrs)
        })
        .await?
        .map_err(ApiError::from)
    }

    /// Leave the cluster gracefully; the agent keeps serving reads.
    pub async fn leave(&self) -> Result<(), ApiError> {
        self.call(|d| {
            let now = d.now();
            d.node.leave(now)
        })
        .await?
        .map_err(ApiError::from)
    }

    /// Forget a dead or departed member now (see `Node::forget`). Returns
    /// whether it was held.
    pub async fn forget(&self, name: &str) -> Result<bool, ApiError> {
        let name = name.to_string();
        self.call(move |d| {
            let now = d.now();
            d.node.forget(now, &name)
        })
        .await?
        .map_err(ApiError::from)
    }

    /// Why this node holds `name` as it does (see `Node::explain`), times
    /// in ms since the Unix epoch.
    pub async fn explain(&self, name: &str) -> Result<pb::ExplainResponse, ApiError> {
        let (name, missing) = (name.to_string(), name.to_string());
        self.call(move |d| {
            let e = d.node.explain(&name)?;
            let (me, health) = (d.node.id().name(), d.node.health());
            let ms = |t| d.unix_ms(t);
            Some(rumour_proto::explain::explanation(
                me, &e, ms, false, health,
            ))
        })
        .await?
        .ok_or(ApiError::NoMember(missing))
    }

    /// Set the cluster metadata register. Returns its Lamport time.
    pub async fn publish_metadata(&self, value: &[u8]) -> Result<u64, ApiError> {
        let value = value.to_vec();
        self.call(move |d| {
            let now = d.now();
            d.node.publish_metadata(now, &value)
        })
        .await?
        .map_err(ApiError::from)
    }

    /// The cluster metadata register.
    pub async fn metadata(&self) -> Result<Metadata, ApiError> {
        self.call(|d| d.node.metadata().cloned())
            .await?
            .ok_or(ApiError::NoMetadata)
    }

    /// Send a user event to every live node. Returns its version in this
    /// node's stream.
    pub async fn send_event(&self, name: &str, payload: &[u8]) -> Result<u64, ApiError> {
        let (name, payload) = (name.to_string(), payload.to_vec());
        self.call(move |d| {
            let now = d.now();
            d.node.send_event(now, &name, &payload)
        })
        .await?
        .map_err(ApiError::from)
    }
}

/// Whether `ns` names a namespace this node can read: its own, one it holds,
/// or a live member's (which may hold no data yet).
fn known_namespace(d: &Driver, ns: &str) -> bool {
    ns == d.node.id().name()
        || d.node.namespace_version(ns).is_some()
        || d.node.member(ns).is_some_and(|m| m.state.is_live())
}

/// Resolve addresses given as `ip:port` or `host:port`: every address a
/// name resolves to (a headless service's every pod), in order and without
/// repeats. A malformed address, or a name that resolves to nothing, is an
/// error naming it.
pub async fn resolve(addrs: &[String]) -> Result<Vec<SocketAddr>, ApiError> {
    let resolver = SeedResolver::system();
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in addrs {
        let bad = |reason: String| ApiError::BadAddress {
            addr: a.clone(),
            reason,
        };
        let found = match a.parse::<Seed>().map_err(|e| bad(e.to_string()))? {
            Seed::Addr(addr) => vec![addr],
            Seed::Name { host, port } => resolver
                .resolve(&host, port)
                .await
                .map_err(|e| bad(e.to_string()))?,
        };
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    if out.is_empty() {
        return Err(ApiError::BadAddress {
            addr: String::new(),
            reason: "no address given".into(),
        });
    }
    Ok(out)
}

// ----- the gRPC service ------------------------------------------------

/// The `rumour.v1.Rumour` service.
pub(crate) struct ApiService {
    pub(crate) handle: Handle,
}

use rumour_proto::explain::member;

/// A member name as a call gives it: 1 to `MAX_NAME_LEN` bytes.
fn check_name(name: &str) -> Result<(), Status> {
    if name.is_empty() || name.len() > rumour_core::MAX_NAME_LEN {
        return Err(ApiError::from(rumour_core::Error::InvalidName(format!(
            "a member name of {} bytes (1 to {})",
            name.len(),
            rumour_core::MAX_NAME_LEN
        )))
        .into());
    }
    Ok(())
}

fn source(s: ReadSource) -> pb::Source {
    match s {
        ReadSource::Owner => pb::Source::Owner,
        ReadSource::Replica => pb::Source::Replica,
    }
}

/// The watch event of a node event, if it passes the filter.
fn watch_event(
    s: &Sequenced,
    filter: &pb::WatchRequest,
    kinds: &[pb::EventKind],
    handle: &Handle,
) -> Option<pb::WatchEvent> {
    use pb::watch_event::Event as W;
    let wants = |k: pb::EventKind| kinds.is_empty() || kinds.contains(&k);
    let event = match &s.event {
        Event::MemberJoined(m)
        | Event::MemberSuspected(m)
        | Event::MemberAlive(m)
        | Event::MemberDied(m)
        | Event::MemberLeft(m) => {
            if !wants(pb::EventKind::Member) {
                return None;
            }
            use pb::member_event::Change;
            let change = match &s.event {
                Event::MemberJoined(_) => Change::Joined,
                Event::MemberSuspected(_) => Change::Suspected,
                Event::MemberAlive(_) => Change::Alive,
                Event::MemberDied(_) => Change::Died,
                _ => Change::Left,
            };
            W::Member(pb::MemberEvent {
                change: change as i32,
                member: Some(member(m, handle.unix_ms(m.since))),
            })
        }
        Event::EntryChanged {
            owner,
            key,
            version,
            value,
        } => {
            if !wants(pb::EventKind::Entry)
                || !(filter.namespace.is_empty() || filter.namespace == **owner)
                || !key.starts_with(filter.key_prefix.as_str())
            {
                return None;
            }
            W::Entry(pb::EntryEvent {
                namespace: owner.to_string(),
                key: key.to_string(),
                version: *version,
                value: value.as_deref().map(<[u8]>::to_vec).unwrap_or_default(),
                deleted: value.is_none(),
            })
        }
        Event::MetadataChanged(m) => {
            if !wants(pb::EventKind::Metadata) {
                return None;
            }
            W::Metadata(pb::MetadataEvent {
                value: m.value.to_vec(),
                origin: m.origin.to_string(),
                lamport: m.lamport,
            })
        }
        Event::UserEvent {
            origin,
            name,
            payload,
            lamport,
        } => {
            if !wants(pb::EventKind::User) {
                return None;
            }
            W::User(pb::UserEvent {
                origin: origin.to_string(),
                name: name.to_string(),
                payload: payload.to_vec(),
                lamport: *lamport,
            })
        }
        Event::FreshRead(_) => return None,
    };
    Some(pb::WatchEvent {
        seq: s.seq,
        event: Some(event),
        at_unix_micros: s.at_unix_micros,
    })
}

/// A key call's timeout from its `timeout_ms` (0: the default).
fn key_timeout(ms: u32) -> std::time::Duration {
    if ms == 0 {
        DEFAULT_KEY_TIMEOUT
    } else {
        std::time::Duration::from_millis(u64::from(ms))
    }
}

fn keys_response(r: KeyReport) -> pb::KeysResponse {
    pb::KeysResponse {
        keys: r
            .counts()
            .into_iter()
            .map(|c| pb::KeyCount {
                fingerprint: c.fingerprint,
                members: c.members as u32,
                primary: c.primary as u32,
            })
            .collect(),
        members: r
            .answers
            .into_iter()
            .map(|a| pb::MemberKeys {
                name: a.name,
                error: a.error.unwrap_or_default(),
                fingerprints: a.fingerprints,
            })
            .collect(),
        no_answer: r.no_answer,
    }
}

impl ApiService {
    async fn key_call(
        &self,
        op: KeyOp,
        r: pb::KeyRequest,
    ) -> Result<Response<pb::KeysResponse>, Status> {
        let report = self
            .handle
            .keys(op, &r.key, key_timeout(r.timeout_ms))
            .await?;
        Ok(Response::new(keys_response(report)))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;
type QueryStream = Pin<Box<dyn Stream<Item = Result<pb::QueryResponse, Status>> + Send>>;
type ReceivedQueryStream = Pin<Box<dyn Stream<Item = Result<pb::ReceivedQuery, Status>> + Send>>;

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The wire form of what a query yields.
fn query_response(e: QueryEvent) -> pb::QueryResponse {
    use pb::query_response::Item;
    let item = match e {
        QueryEvent::Answer(a) => Item::Answer(pb::MemberAnswer {
            member: a.member,
            payload: a.payload,
            error: a.error.unwrap_or_default(),
            elapsed_us: micros(a.elapsed),
        }),
        QueryEvent::Done(s) => Item::Summary(pb::QuerySummary {
            asked: u32::try_from(s.asked.len()).unwrap_or(u32::MAX),
            answered: s
                .answered
                .into_iter()
                .map(|(member, t)| pb::MemberTime {
                    member,
                    elapsed_us: micros(t),
                })
                .collect(),
            no_answer: s.no_answer,
            elapsed_us: micros(s.elapsed),
        }),
    };
    pb::QueryResponse { item: Some(item) }
}

#[tonic::async_trait]
impl Rumour for ApiService {
    async fn put(&self, r: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let r = r.into_inner();
        let version = self.handle.put(&r.namespace, &r.key, &r.value).await?;
        Ok(Response::new(pb::PutResponse { version }))
    }

    async fn get(&self, r: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let r = r.into_inner();
        let read = if r.fresh {
            self.handle.get_fresh(&r.namespace, &r.key).await?
        } else {
            self.handle.get(&r.namespace, &r.key).await?
        };
        Ok(Response::new(pb::GetResponse {
            namespace: read.namespace,
            key: read.entry.key.to_string(),
            value: read.entry.value.to_vec(),
            version: read.entry.version,
            source: source(read.source) as i32,
        }))
    }

    async fn delete(
        &self,
        r: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = r.into_inner();
        let version = self.handle.delete(&r.namespace, &r.key).await?;
        Ok(Response::new(pb::DeleteResponse {
            existed: version.is_some(),
            version: version.unwrap_or(0),
        }))
    }

    async fn list(
        &self,
        r: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let r = r.into_inner();
        let (namespace, entries) = self.handle.list(&r.namespace, &r.prefix).await?;
        Ok(Response::new(pb::ListResponse {
            namespace,
            entries: entries
                .into_iter()
                .map(|e| pb::Entry {
                    key: e.key.to_string(),
                    value: e.value.to_vec(),
                    version: e.version,
                })
                .collect(),
        }))
    }

    async fn members(
        &self,
        request: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let members = self.handle.members().await?;
        let reconnect = if request.get_ref().all {
            let list = self.handle.reconnect_list().await?;
            list.into_iter()
                .map(|(name, addr, next, until)| pb::Reconnect {
                    name,
                    address: addr.to_string(),
                    next_try_unix_ms: next,
                    until_unix_ms: until,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::MembersResponse {
            members: members.iter().map(|(m, t)| member(m, *t)).collect(),
            reconnect,
        }))
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = self.handle.status().await?;
        Ok(Response::new(pb::StatusResponse {
            self_: Some(member(&s.me, s.me_since_unix_ms)),
            live_members: s.live_members as u32,
            live_members_since_unix_micros: s.live_since_unix_micros,
            started_unix_micros: s.started_unix_micros,
            members: s.members as u32,
            counters: s.counters.into_iter().collect(),
            config: s.config.into_iter().collect(),
            namespaces: s.namespaces as u32,
            peer_address: s.me.id.addr().to_string(),
            api_address: self.handle.api_addr().to_string(),
            left: s.left,
            generation: s.generation,
            version: s.version,
        }))
    }

    async fn join(
        &self,
        r: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        self.handle.join(&r.into_inner().addresses).await?;
        Ok(Response::new(pb::JoinResponse {}))
    }

    async fn leave(
        &self,
        _: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveResponse>, Status> {
        self.handle.leave().await?;
        Ok(Response::new(pb::LeaveResponse {}))
    }

    async fn forget(
        &self,
        r: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ForgetResponse>, Status> {
        let name = r.into_inner().name;
        check_name(&name)?;
        let held = self.handle.forget(&name).await?;
        Ok(Response::new(pb::ForgetResponse { held }))
    }

    async fn explain(
        &self,
        r: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let name = r.into_inner().name;
        check_name(&name)?;
        Ok(Response::new(self.handle.explain(&name).await?))
    }

    async fn shutdown(
        &self,
        _: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        self.handle.shutdown();
        Ok(Response::new(pb::ShutdownResponse {}))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        r: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let filter = r.into_inner();
        let mut kinds = Vec::new();
        for k in &filter.kinds {
            match pb::EventKind::try_from(*k) {
                Ok(pb::EventKind::Unspecified) | Err(_) => {
                    return Err(Status::invalid_argument(format!("unknown event kind {k}")))
                }
                Ok(k) => kinds.push(k),
            }
        }
        let rx = self.handle.subscribe();
        let handle = self.handle.clone();
        let stream = BroadcastStream::new(rx).filter_map(move |item| match item {
            Ok(s) => watch_event(&s, &filter, &kinds, &handle).map(Ok),
            // A watcher that fell behind skips what it missed: the gap
            // shows in `seq`.
            Err(_lagged) => None,
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn publish_metadata(
        &self,
        r: Request<pb::PublishMetadataRequest>,
    ) -> Result<Response<pb::PublishMetadataResponse>, Status> {
        let lamport = self.handle.publish_metadata(&r.into_inner().value).await?;
        Ok(Response::new(pb::PublishMetadataResponse { lamport }))
    }

    async fn get_metadata(
        &self,
        _: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        let m = self.handle.metadata().await?;
        Ok(Response::new(pb::GetMetadataResponse {
            value: m.value.to_vec(),
            origin: m.origin.to_string(),
            lamport: m.lamport,
        }))
    }

    async fn send_event(
        &self,
        r: Request<pb::SendEventRequest>,
    ) -> Result<Response<pb::SendEventResponse>, Status> {
        let r = r.into_inner();
        let version = self.handle.send_event(&r.name, &r.payload).await?;
        Ok(Response::new(pb::SendEventResponse { version }))
    }

    async fn list_keys(
        &self,
        r: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::KeysResponse>, Status> {
        let timeout_ms = r.into_inner().timeout_ms;
        let request = pb::KeyRequest {
            key: String::new(),
            timeout_ms,
        };
        self.key_call(KeyOp::List, request).await
    }

    async fn install_key(
        &self,
        r: Request<pb::KeyRequest>,
    ) -> Result<Response<pb::KeysResponse>, Status> {
        self.key_call(KeyOp::Install, r.into_inner()).await
    }

    async fn use_key(
        &self,
        r: Request<pb::KeyRequest>,
    ) -> Result<Response<pb::KeysResponse>, Status> {
        self.key_call(KeyOp::Use, r.into_inner()).await
    }

    async fn remove_key(
        &self,
        r: Request<pb::KeyRequest>,
    ) -> Result<Response<pb::KeysResponse>, Status> {
        self.key_call(KeyOp::Remove, r.into_inner()).await
    }

    type QueryStream = QueryStream;

    async fn query(
        &self,
        r: Request<pb::QueryRequest>,
    ) -> Result<Response<Self::QueryStream>, Status> {
        let r = r.into_inner();
        let mut running = self
            .handle
            .query(Query {
                name: r.name,
                payload: r.payload,
                timeout: std::time::Duration::from_millis(u64::from(r.timeout_ms)),
                filter_name: r.filter_name,
            })
            .await?;
        // Answers go out as they come; a client that goes away ends the
        // forwarding at the next answer or the timeout.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(e) = running.next().await {
                if tx.send(Ok(query_response(e))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type SubscribeQueriesStream = ReceivedQueryStream;

    async fn subscribe_queries(
        &self,
        r: Request<pb::SubscribeQueriesRequest>,
    ) -> Result<Response<Self::SubscribeQueriesStream>, Status> {
        let subscription = self.handle.subscribe_queries(&r.into_inner().names).await?;
        let stream = ReceiverStream::new(subscription.into_receiver()).map(|q| {
            Ok(pb::ReceivedQuery {
                id: q.id,
                name: q.name,
                payload: q.payload,
                asker: q.asker,
                timeout_ms: u32::try_from(q.timeout.as_millis()).unwrap_or(u32::MAX),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn answer_query(
        &self,
        r: Request<pb::AnswerQueryRequest>,
    ) -> Result<Response<pb::AnswerQueryResponse>, Status> {
        let r = r.into_inner();
        let accepted = self.handle.answer_query(r.id, &r.payload).await?;
        Ok(Response::new(pb::AnswerQueryResponse { accepted }))
    }
}
