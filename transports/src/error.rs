//! Errors of the agent, and how API errors map to gRPC status codes.

use rumour_core::Error as CoreError;
use thiserror::Error;
use tonic::{Code, Status};

/// Why an agent could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The protocol configuration was rejected.
    #[error(transparent)]
    Config(#[from] rumour_core::ConfigError),
    /// A configuration file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The node's name or address was rejected.
    #[error(transparent)]
    Node(#[from] CoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The peer address to advertise is unknown.
    #[error("bound to the unspecified address {0}: set an address to advertise (--advertise)")]
    NoAdvertise(std::net::SocketAddr),
    /// The client API would listen beyond loopback with no token.
    #[error("the client API on {0} is reachable beyond this host: set --api-token (or --insecure to serve it open)")]
    InsecureApi(std::net::SocketAddr),
    /// The cluster key could not be used (it is never shown).
    #[error(transparent)]
    Key(#[from] crate::keyring::KeyError),
    /// A TLS setting could not be used (no key material is shown).
    #[error("TLS on the {what}: {reason}")]
    Tls {
        /// Which listener: `client API` or `peer port`.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The data dir could not be opened.
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// A seed (`--join`) is malformed: no port, a bad port or a bad host.
    /// A well-formed name that does not resolve yet is not an error: the
    /// agent starts alone and keeps trying it.
    #[error("--join {seed:?}: {reason}")]
    Seed {
        /// The seed as given.
        seed: String,
        /// What is wrong with it.
        reason: crate::seed::SeedError,
    },
}

/// Why an API call failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ApiError {
    /// The node refused the command.
    #[error(transparent)]
    Node(#[from] CoreError),
    /// No such key (or it was deleted).
    #[error("no key {key:?} in namespace {namespace:?}")]
    NoKey {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// No such namespace: the node is not a live member holding data.
    #[error("no namespace {0:?} here: no such live member, or it holds no data yet")]
    NoNamespace(String),
    /// The node neither holds nor remembers a member of that name.
    #[error("no member {0:?} here: never known, or forgotten long ago")]
    NoMember(String),
    /// No metadata was published yet.
    #[error("no cluster metadata has been published")]
    NoMetadata,
    /// An address could not be parsed or resolved.
    #[error("bad address {addr:?}: {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// The cause.
        reason: String,
    },
    /// The agent is stopping or has stopped.
    #[error("the agent is shutting down")]
    Stopped,
    /// A key command's key is malformed (the error never shows it).
    #[error(transparent)]
    BadClusterKey(crate::keyring::KeyError),
    /// A key command at an agent that runs without a cluster key.
    #[error("this agent has no cluster key: key commands need an agent started with --key (a keyring cannot be turned on at run time)")]
    NoKeyring,
    /// The agent called refused a key command, before any member was
    /// asked: nothing changed anywhere.
    #[error("refused, nothing changed: {0}")]
    KeyRefused(String),
    /// A query's (or an answer's) payload is over the payload limit.
    #[error("the payload is {len} bytes, over the query payload limit of {max} bytes (query_max_payload)")]
    QueryPayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A query name (or a subscription's list of names) is not usable.
    #[error("bad query name: {0}")]
    BadQueryName(String),
    /// A query's member name filter is not a usable regular expression.
    #[error("the member name filter is not a usable regular expression: {0}")]
    BadNameFilter(String),
    /// A query would ask more members than one query may.
    #[error("the query would ask {asked} members, over the limit of answers per query ({max}, query_max_answers): narrow it with a member name filter")]
    TooManyAnswers {
        /// Members the query would ask.
        asked: usize,
        /// The limit.
        max: usize,
    },
    /// As many queries as may be are under way at this agent.
    #[error("{max} queries are under way at this agent, the limit of concurrent queries (query_max_concurrent): wait for one to end")]
    TooManyQueries {
        /// The limit.
        max: usize,
    },
    /// As many query subscriptions as may be are open at this agent.
    #[error("{max} query subscriptions are open at this agent, the limit of subscriptions: close one first")]
    TooManySubscriptions {
        /// The limit.
        max: usize,
    },
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let code = match &e {
            ApiError::Node(n) => match n {
                CoreError::NotOwner(_) => Code::PermissionDenied,
                CoreError::NamespaceFull { .. } => Code::ResourceExhausted,
                CoreError::Left => Code::Unavailable,
                CoreError::StillLive(_) => Code::FailedPrecondition,
                CoreError::BadSavedNamespace(_) => Code::Internal,
                CoreError::Config(_)
                | CoreError::InvalidName(_)
                | CoreError::NoSeeds
                | CoreError::EmptyKey
                | CoreError::KeyTooLong { .. }
                | CoreError::ValueTooLong { .. } => Code::InvalidArgument,
            },
            ApiError::NoKey { .. }
            | ApiError::NoNamespace(_)
            | ApiError::NoMember(_)
            | ApiError::NoMetadata => Code::NotFound,
            ApiError::BadAddress { .. } | ApiError::BadClusterKey(_) => Code::InvalidArgument,
            ApiError::Stopped => Code::Unavailable,
            ApiError::NoKeyring | ApiError::KeyRefused(_) => Code::FailedPrecondition,
            ApiError::QueryPayloadTooLarge { .. }
            | ApiError::BadQueryName(_)
            | ApiError::BadNameFilter(_) => Code::InvalidArgument,
            ApiError::TooManyAnswers { .. }
            | ApiError::TooManyQueries { .. }
            | ApiError::TooManySubscriptions { .. } => Code::ResourceExhausted,
        };
        Status::new(code, e.to_string())
    }
}
