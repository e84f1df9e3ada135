//! rumour-core: the rumour protocol as one deterministic, sans-IO state
//! machine.
//!
//! A [`Node`] holds one member's view of the cluster: SWIM failure detection
//! with Lifeguard suspicion and local health, membership changes spread as
//! rumours piggybacked on probes and gossip, and periodic push-pull state
//! sync that repairs what rumours missed. It performs no I/O, reads no
//! clock, starts no thread and uses no global RNG: every input carries `now`,
//! every output is pulled with [`Node::poll_output`], and its randomness
//! comes from a ChaCha RNG seeded by the driver. Two drivers run it: the
//! simulator (`rumour-sim`) and the network transport.
//!
//! ```
//! use rumour_core::{Config, Incarnation, Node, NodeId, Output, Time};
//!
//! let seed_addr = "127.0.0.1:7946".parse().unwrap();
//! let id = NodeId::new("b", "127.0.0.1:7947".parse().unwrap()).unwrap();
//! let mut node = Node::new(id, Incarnation(0), Config::local(), 42, Time::ZERO).unwrap();
//! node.join(Time::ZERO, &[seed_addr]).unwrap();
//! // The join is a push-pull sent to the seed.
//! match node.poll_output() {
//!     Some(Output::Send { to, .. }) => assert_eq!(to, seed_addr),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod broadcast;
pub mod checkpoint;
mod config;
mod error;
mod events;
#[cfg(test)]
mod harness;
mod health;
pub mod history;
mod identity;
mod introductions;
mod member;
mod members;
mod message;
mod node;
mod store;
mod summary;
mod suspicion;
mod time;
pub mod wire;

pub use checkpoint::{Checkpoint, LiveDigest};
pub use config::Dissemination;
pub use config::{
    duration_str, format_duration, parse_duration, Config, PeerSelection, TimerPhase, TreeConfig,
};
pub use error::{ConfigError, Error};
pub use events::{Event, FreshRead, Output, ReadSource, Stats, MESSAGES_IN_BY_KIND};
pub use history::{Cause, Change, Confirmation, Explanation, ProbeFailure, RelayAnswer};
pub use identity::{Checks, Identity, PublicKey, Signature, Verified};
pub use member::{overrides, Incarnation, Member, MemberState, NodeId, MAX_NAME_LEN};
pub use message::{
    Ack, DataGossip, Datum, DatumId, Delta, DigestEntry, Eager, Gossip, Graft, IHave, MemberLine,
    MemberUpdate, Message, Metadata, Nack, OwnNamespace, Page, Ping, PingReq, Prune, PushPull,
    PushPullKind, Query, QueryReply, Record, Versioned, MESSAGE_KINDS,
};
pub use node::Node;
pub use store::Entry;
pub use summary::Fnv64;
pub use suspicion::suspicion_timeout;
pub use time::Time;
