//! rumour-transport: rumour on real networks.
//!
//! An [`Agent`] runs one node: a tokio task owns the protocol state machine
//! (`rumour_core::Node`) and selects over inbound peer messages, client
//! commands, the node's next timer and shutdown. Peers talk over gRPC
//! (tonic): each sender keeps one long-lived client stream of envelopes per
//! peer (`rumour.v1.Peer/Stream`), fed by a bounded queue. Clients use the
//! `rumour.v1.Rumour` service, with gRPC health and reflection beside it.
//! On the UDP transport ([`Transport::Udp`]), what fits goes in one
//! datagram each instead, and push-pull, queries and anything larger stay
//! on the streams.
//! With a [`Keyring`] (`AgentConfig::keyring`), every peer envelope is
//! sealed with the cluster key, and what does not open is refused before
//! it is decoded (counted as `rejected_unauthenticated`). With [`ApiTls`]
//! the client API serves TLS (and, with a client CA, requires client
//! certificates); with [`PeerTls`] the peer port runs mutual TLS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rumour_transport::{Agent, AgentConfig};
//! let mut config = AgentConfig::new("node-1");
//! config.join = vec!["10.0.0.2:7946".into()];
//! let agent = Agent::start(config).await?;
//! agent.handle().put("", "greeting", b"hello").await?;
//! agent.wait().await; // until Shutdown
//! # Ok(()) }
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod access;
mod agent;
mod api;
mod cluster_request;
mod config;
pub mod data_dir;
mod datagram;
mod driver;
mod durable;
mod error;
mod intake;
mod key_commands;
mod keyring;
mod link;
mod peer;
mod query;
mod replay;
mod reply_budget;
mod seed;
mod stats;
mod tls;

pub use access::ApiToken;
pub use agent::Agent;
pub use api::{resolve, Read, StatusReport};
pub use config::{
    load_agent_file, load_protocol_config, parse_agent_file, parse_protocol_config, AgentConfig,
    AgentFile, TlsPaths, Transport, TransportConfig, DATAGRAM_SIZE, DEFAULT_API, DEFAULT_BIND,
    SEAL_OVERHEAD,
};
pub use data_dir::{DataDir, DataDirError};
pub use driver::{unix_micros, Handle, Sequenced};
pub use error::{ApiError, StartError};
pub use key_commands::{
    KeyCount, KeyOp, KeyReport, MemberKeys, DEFAULT_KEY_TIMEOUT, MAX_KEY_TIMEOUT,
};
pub use keyring::{ClusterKey, KeyError, Keyring, KEY_LEN, NONCE_LEN, TAG_LEN};
pub use query::{
    Query, QueryAnswer, QueryEvent, QueryReport, QueryStream, QuerySubscription, QuerySummary,
    ReceivedQuery, BUILT_IN_QUERIES, DEFAULT_QUERY_TIMEOUT, MAX_NAME_FILTER_LEN,
    MAX_QUERY_NAME_LEN, MAX_QUERY_TIMEOUT, MAX_SERVED_QUERIES, MAX_SUBSCRIBED_NAMES,
    MAX_SUBSCRIPTIONS,
};
pub use replay::{MAX_SENDERS, REORDER_TOLERANCE, REPLAY_WINDOW};
pub use seed::{Resolved, Seed, SeedError, SeedResolver};
pub use stats::TransportStats;
pub use tls::{ApiTls, PeerTls, TlsCa, TlsError, TlsFile, TlsIdentity, DEFAULT_PEER_SERVER_NAME};
