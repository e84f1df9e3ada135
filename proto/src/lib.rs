//! rumour-proto: the protobuf schema of rumour, its generated code, and
//! validated conversions between wire and core types.
//!
//! - [`v1`]: the generated messages and tonic services of `rumour.v1`: the
//!   peer protocol (`peer.proto`: [`v1::Envelope`], service `Peer`) and the
//!   client API (`api.proto`: service `Rumour`).
//! - [`convert`]: `TryFrom` between wire and core types. Malformed input
//!   becomes a [`DecodeError`], never a panic.
//! - [`FILE_DESCRIPTOR_SET`]: the compiled schema, for gRPC reflection.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod convert;
pub mod explain;

pub use convert::{
    datagram_envelope, decode_bytes, decode_datagram, decode_envelope, encode_envelope,
    sender_from_source, DecodeError, Inbound,
};

/// Generated code of package `rumour.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/rumour.v1.rs"));
}

/// The encoded `FileDescriptorSet` of the schema, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rumour_descriptor.bin"));
