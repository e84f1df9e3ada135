//! Why a network spec (latency, link model, topology) was rejected.

/// Why a spec string or a link model was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NetError {
    /// A duration such as `"5ms"` could not be read.
    #[error("{reason}")]
    Duration {
        /// The text that was given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A latency spec such as `"1ms..5ms"` could not be read or is inconsistent.
    #[error("bad latency {input:?}: {reason}")]
    Latency {
        /// The text that was given (or the latency, displayed).
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A link-model probability is outside `[0, 1]` or not finite.
    #[error("link model field `{field}` must be a probability in [0, 1], got {value}")]
    Probability {
        /// The name of the offending field.
        field: &'static str,
        /// The value it had.
        value: f64,
    },
    /// A topology spec such as `"random:4"` could not be read or does not fit the cluster.
    #[error("bad topology {input:?}: {reason}")]
    Topology {
        /// The text that was given (or the topology, displayed).
        input: String,
        /// What was wrong with it.
        reason: String,
    },
}
