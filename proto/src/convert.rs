//! Conversions between the wire types of `rumour.v1` and the core's types.
//!
//! Encoding is total: every core [`Message`] has one wire form, whose
//! encoded size is exactly what [`rumour_core::wire::message_len`] computes
//! (the simulator's byte accounting rests on that; `tests/roundtrip.rs`
//! checks it). Decoding validates what the wire form can get wrong on its
//! own and refuses it with a [`DecodeError`]:
//!
//! - required sub-messages and `oneof`s that are absent (an envelope's
//!   sender and body, a member's address, a record, a datum, a datum id);
//! - addresses whose ip is not 4 or 16 bytes, or whose port is over 65535;
//! - node names (members, probe targets, `by`, owners, origins) that are
//!   empty or longer than [`MAX_NAME_LEN`] bytes;
//! - enum values the schema does not declare;
//! - deltas whose range `(from, to]` is reversed, or whose records are not
//!   strictly increasing inside it;
//! - a tombstone or a not-found answer that carries a value anyway.
//!
//! This module must never panic on peer input, and never check limits that
//! depend on a node's configuration (key and value lengths, list sizes):
//! the core checks those, and stays robust against anything decoded here.
//!
//! Two core values have no wire form of their own: an IPv6 address's flow
//! info and scope id are not sent (they decode as 0), and `by: Some("")`
//! is sent as an empty `by`, which decodes as `None`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use prost::Message as _;
use rumour_core::checkpoint::{Checkpoint, LiveDigest};
use rumour_core::{
    Ack, DataGossip, Datum, DatumId, Delta, DigestEntry, Eager, Gossip, Graft, IHave, Incarnation,
    MemberLine, MemberState, MemberUpdate, Message, Metadata, Nack, NodeId, Page, Ping, PingReq,
    Prune, PublicKey, PushPull, PushPullKind, Query, QueryReply, Record, Signature, Versioned,
    MAX_NAME_LEN,
};

use crate::v1;
use crate::v1::envelope::Body;

/// Why a wire message was refused. Every variant is a malformed-input case;
/// nothing panics, and nothing of the refused message reaches the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the receiver accepts. It was refused before
    /// decoding.
    #[error("message is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// The input's length in bytes.
        len: usize,
        /// The largest length accepted.
        max: usize,
    },
    /// The bytes are not a protobuf `Envelope`: truncated, a wrong wire
    /// type, a string that is not UTF-8, nested too deeply. Holds prost's
    /// description.
    #[error("malformed protobuf: {0}")]
    Protobuf(String),
    /// A required sub-message or `oneof` is absent, named `Message.field`.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// An address whose ip is not 4 or 16 bytes, or whose port is over
    /// 65535.
    #[error("bad address in {field}: {ip_len}-byte ip, port {port}")]
    BadAddress {
        /// The field holding the address, named `Message.field`.
        field: &'static str,
        /// The ip's length in bytes.
        ip_len: usize,
        /// The port as sent.
        port: u32,
    },
    /// A node name (a member, a probe target, `by`, an owner, an origin)
    /// that is empty or longer than [`MAX_NAME_LEN`] bytes. Holds the field
    /// and the name's length, not the name itself.
    #[error("bad name: {0}")]
    BadName(String),
    /// An enum value the schema does not declare.
    #[error("unknown value {value} of enum field {field}")]
    UnknownEnum {
        /// The enum field, named `Message.field`.
        field: &'static str,
        /// The value as sent.
        value: i32,
    },
    /// A delta whose range `(from, to]` is reversed (`record` is `None`),
    /// or one of whose records lies outside the range or does not follow
    /// the one before it (`record` is its version).
    #[error("bad delta range ({from}, {to}]{}", record_fault(.record))]
    BadRange {
        /// The delta's `from`.
        from: u64,
        /// The delta's `to`.
        to: u64,
        /// The version of the first offending record, if a record offends.
        record: Option<u64>,
    },
    /// A tombstone (`EntryRecord` with `deleted`) or a not-found answer
    /// (`QueryReply` without `found`) that carries a value anyway. Holds the
    /// message name.
    #[error("{0} says the value is absent but carries one")]
    ValueConflict(&'static str),
    /// An agent-to-agent body (a cluster request or its reply), which the
    /// transport handles and the protocol's state machine never sees.
    #[error("{0} is for the agent, not a protocol message")]
    NotForTheNode(&'static str),
    /// A public key that is not 32 bytes or a signature that is not 64,
    /// named `Message.field`, with the length sent.
    #[error("{field} is {len} bytes, expected {expected}")]
    BadKeyLength {
        /// The field, named `Message.field`.
        field: &'static str,
        /// The length sent.
        len: usize,
        /// The length it must have.
        expected: usize,
    },
}

fn public_key(b: &[u8], field: &'static str) -> Result<PublicKey, DecodeError> {
    let key: [u8; 32] = b.try_into().map_err(|_| DecodeError::BadKeyLength {
        field,
        len: b.len(),
        expected: 32,
    })?;
    Ok(PublicKey(key))
}

/// One half of a member's word: all zero when both halves are absent (a
/// word left out; the core decides whether the news may go without it),
/// else exactly as long as it must be.
fn word_part<T: Default>(
    b: &[u8],
    other: &[u8],
    parse: fn(&[u8], &'static str) -> Result<T, DecodeError>,
    field: &'static str,
) -> Result<T, DecodeError> {
    if b.is_empty() && other.is_empty() {
        Ok(T::default())
    } else {
        parse(b, field)
    }
}

fn signature(b: &[u8], field: &'static str) -> Result<Signature, DecodeError> {
    let sig: [u8; 64] = b.try_into().map_err(|_| DecodeError::BadKeyLength {
        field,
        len: b.len(),
        expected: 64,
    })?;
    Ok(Signature(sig))
}

/// A delta's checkpoint: both fields or neither.
fn checkpoint(digest: &[u8], sig: &[u8]) -> Result<Option<Arc<Checkpoint>>, DecodeError> {
    if digest.is_empty() && sig.is_empty() {
        return Ok(None);
    }
    let bytes: [u8; 64] = digest.try_into().map_err(|_| DecodeError::BadKeyLength {
        field: "Delta.checkpoint_digest",
        len: digest.len(),
        expected: 64,
    })?;
    Ok(Some(Arc::new(Checkpoint {
        digest: LiveDigest::from_bytes(&bytes),
        signature: signature(sig, "Delta.checkpoint_signature")?,
    })))
}

fn record_fault(record: &Option<u64>) -> String {
    match record {
        None => String::new(),
        Some(v) => format!(": record version {v} is outside it or out of order"),
    }
}

/// Every malformed peer message is the caller's fault.
impl From<DecodeError> for tonic::Status {
    fn from(e: DecodeError) -> tonic::Status {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// A decoded envelope: a message and the address its sender listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Where the sender listens: the address replies go to.
    pub from: SocketAddr,
    /// The message.
    pub msg: Message,
}

impl From<Inbound> for (SocketAddr, Message) {
    fn from(i: Inbound) -> (SocketAddr, Message) {
        (i.from, i.msg)
    }
}

/// The envelope carrying `msg` from a node listening on `from`. Its encoded
/// length is [`rumour_core::wire::message_len`]`(&from, msg)`.
pub fn encode_envelope(from: SocketAddr, msg: &Message) -> v1::Envelope {
    v1::Envelope {
        from: Some(from.into()),
        body: Some(msg.into()),
        sealed: None,
    }
}

/// The envelope carrying `msg` in a datagram sent from the sender's own
/// peer address: it leaves the sender out, and the receiver takes the
/// datagram's source address for it ([`sender_from_source`],
/// [`decode_datagram`]). Its encoded length is
/// [`rumour_core::wire::datagram_len`]`(msg)`. Only for a socket bound to
/// the address the node advertises: from one bound to every interface, or
/// behind a NAT, the source is not the address the node is known by.
pub fn datagram_envelope(msg: &Message) -> v1::Envelope {
    v1::Envelope {
        from: None,
        body: Some(msg.into()),
        sealed: None,
    }
}

/// A plain envelope that came in a datagram from `source` and names no
/// sender is taken as sent from `source` (see [`datagram_envelope`]). A
/// sealed one is left as it is: its sender is inside the seal.
pub fn sender_from_source(env: &mut v1::Envelope, source: SocketAddr) {
    if env.from.is_none() && env.sealed.is_none() {
        env.from = Some(source.into());
    }
}

/// [`decode_bytes`] for a datagram from `source`: an envelope that names no
/// sender is taken as sent from `source` ([`sender_from_source`]).
pub fn decode_datagram(
    bytes: &[u8],
    max: usize,
    source: SocketAddr,
) -> Result<(SocketAddr, Message), DecodeError> {
    let mut env = decode_raw(bytes, max)?;
    sender_from_source(&mut env, source);
    decode_envelope(env)
}

/// Validate an envelope and convert it to the sender's address and a core
/// message.
pub fn decode_envelope(env: v1::Envelope) -> Result<(SocketAddr, Message), DecodeError> {
    Inbound::try_from(env).map(Into::into)
}

/// Decode raw bytes (prost) then convert; refuse over `max` bytes before
/// decoding.
pub fn decode_bytes(bytes: &[u8], max: usize) -> Result<(SocketAddr, Message), DecodeError> {
    decode_envelope(decode_raw(bytes, max)?)
}

/// The envelope in `bytes` (prost), refused over `max` bytes before
/// decoding.
fn decode_raw(bytes: &[u8], max: usize) -> Result<v1::Envelope, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    v1::Envelope::decode(bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))
}

impl TryFrom<v1::Envelope> for Inbound {
    type Error = DecodeError;

    fn try_from(env: v1::Envelope) -> Result<Inbound, DecodeError> {
        let from = required_address(env.from, "Envelope.from")?;
        let body = env.body.ok_or(DecodeError::MissingField("Envelope.body"))?;
        Ok(Inbound {
            from,
            msg: body.try_into()?,
        })
    }
}

// ----- shared pieces ---------------------------------------------------------

impl From<SocketAddr> for v1::Address {
    fn from(a: SocketAddr) -> v1::Address {
        let ip = match a.ip() {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        };
        v1::Address {
            ip,
            port: u32::from(a.port()),
        }
    }
}

impl TryFrom<v1::Address> for SocketAddr {
    type Error = DecodeError;

    fn try_from(a: v1::Address) -> Result<SocketAddr, DecodeError> {
        address(&a, "Address")
    }
}

fn address(a: &v1::Address, field: &'static str) -> Result<SocketAddr, DecodeError> {
    let bad = || DecodeError::BadAddress {
        field,
        ip_len: a.ip.len(),
        port: a.port,
    };
    let port = u16::try_from(a.port).map_err(|_| bad())?;
    let ip = if let Ok(v4) = <[u8; 4]>::try_from(a.ip.as_slice()) {
        IpAddr::from(v4)
    } else if let Ok(v6) = <[u8; 16]>::try_from(a.ip.as_slice()) {
        IpAddr::from(v6)
    } else {
        return Err(bad());
    };
    Ok(SocketAddr::new(ip, port))
}

fn required_address(
    a: Option<v1::Address>,
    field: &'static str,
) -> Result<SocketAddr, DecodeError> {
    address(&a.ok_or(DecodeError::MissingField(field))?, field)
}

/// The rule of [`NodeId::new`], for every field that holds a node's name.
fn check_name(name: &str, field: &'static str) -> Result<(), DecodeError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(DecodeError::BadName(format!(
            "{field} is {} bytes, must be 1 to {MAX_NAME_LEN}",
            name.len()
        )));
    }
    Ok(())
}

fn name(name: String, field: &'static str) -> Result<Arc<str>, DecodeError> {
    check_name(&name, field)?;
    Ok(Arc::from(name))
}

fn node_id(name: &str, addr: SocketAddr, field: &'static str) -> Result<NodeId, DecodeError> {
    check_name(name, field)?;
    NodeId::new(name, addr).map_err(|e| DecodeError::BadName(format!("{field}: {e}")))
}

fn bytes(b: &Option<Arc<[u8]>>) -> Vec<u8> {
    b.as_deref().map(<[u8]>::to_vec).unwrap_or_default()
}

fn encode_all<'a, T: 'a, W: From<&'a T>>(items: &'a [T]) -> Vec<W> {
    items.iter().map(W::from).collect()
}

fn decode_all<W, T: TryFrom<W, Error = DecodeError>>(items: Vec<W>) -> Result<Vec<T>, DecodeError> {
    items.into_iter().map(T::try_from).collect()
}

// ----- membership ------------------------------------------------------------

impl From<MemberState> for v1::State {
    fn from(s: MemberState) -> v1::State {
        match s {
            MemberState::Alive => v1::State::Alive,
            MemberState::Suspect => v1::State::Suspect,
            MemberState::Dead => v1::State::Dead,
            MemberState::Left => v1::State::Left,
        }
    }
}

impl From<v1::State> for MemberState {
    fn from(s: v1::State) -> MemberState {
        match s {
            v1::State::Alive => MemberState::Alive,
            v1::State::Suspect => MemberState::Suspect,
            v1::State::Dead => MemberState::Dead,
            v1::State::Left => MemberState::Left,
        }
    }
}

impl From<&MemberUpdate> for v1::MemberUpdate {
    fn from(u: &MemberUpdate) -> v1::MemberUpdate {
        v1::MemberUpdate {
            name: u.id.name().to_owned(),
            addr: Some(u.id.addr().into()),
            incarnation: u.incarnation.0,
            state: v1::State::from(u.state).into(),
            by: u.by.as_deref().unwrap_or_default().to_owned(),
            // A rumour's accusation leaves the word out: both fields empty.
            key: if u.word_elided() {
                Vec::new()
            } else {
                u.key.0.to_vec()
            },
            signature: if u.word_elided() {
                Vec::new()
            } else {
                u.signature.0.to_vec()
            },
        }
    }
}

impl TryFrom<v1::MemberUpdate> for MemberUpdate {
    type Error = DecodeError;

    fn try_from(u: v1::MemberUpdate) -> Result<MemberUpdate, DecodeError> {
        let addr = required_address(u.addr, "MemberUpdate.addr")?;
        let state = v1::State::try_from(u.state).map_err(|_| DecodeError::UnknownEnum {
            field: "MemberUpdate.state",
            value: u.state,
        })?;
        let by = if u.by.is_empty() {
            None
        } else {
            Some(name(u.by, "MemberUpdate.by")?)
        };
        Ok(MemberUpdate {
            id: node_id(&u.name, addr, "MemberUpdate.name")?,
            incarnation: Incarnation(u.incarnation),
            state: state.into(),
            by,
            key: word_part(&u.key, &u.signature, public_key, "MemberUpdate.key")?,
            signature: word_part(&u.signature, &u.key, signature, "MemberUpdate.signature")?,
        })
    }
}

impl From<&Ping> for v1::Ping {
    fn from(p: &Ping) -> v1::Ping {
        v1::Ping {
            seq: p.seq,
            target: p.target.to_string(),
            target_key: p.target_key,
            updates: encode_all(&p.updates),
        }
    }
}

impl TryFrom<v1::Ping> for Ping {
    type Error = DecodeError;

    fn try_from(p: v1::Ping) -> Result<Ping, DecodeError> {
        Ok(Ping {
            seq: p.seq,
            target: name(p.target, "Ping.target")?,
            target_key: p.target_key,
            updates: decode_all(p.updates)?,
        })
    }
}

impl From<&PingReq> for v1::PingReq {
    fn from(p: &PingReq) -> v1::PingReq {
        v1::PingReq {
            seq: p.seq,
            target: p.target.name().to_owned(),
            target_addr: Some(p.target.addr().into()),
            updates: encode_all(&p.updates),
        }
    }
}

impl TryFrom<v1::PingReq> for PingReq {
    type Error = DecodeError;

    fn try_from(p: v1::PingReq) -> Result<PingReq, DecodeError> {
        let addr = required_address(p.target_addr, "PingReq.target_addr")?;
        Ok(PingReq {
            seq: p.seq,
            target: node_id(&p.target, addr, "PingReq.target")?,
            updates: decode_all(p.updates)?,
        })
    }
}

impl From<&Ack> for v1::Ack {
    fn from(a: &Ack) -> v1::Ack {
        v1::Ack {
            seq: a.seq,
            updates: encode_all(&a.updates),
        }
    }
}

impl TryFrom<v1::Ack> for Ack {
    type Error = DecodeError;

    fn try_from(a: v1::Ack) -> Result<Ack, DecodeError> {
        Ok(Ack {
            seq: a.seq,
            updates: decode_all(a.updates)?,
        })
    }
}

impl From<&Nack> for v1::Nack {
    fn from(n: &Nack) -> v1::Nack {
        v1::Nack { seq: n.seq }
    }
}

impl From<v1::Nack> for Nack {
    fn from(n: v1::Nack) -> Nack {
        Nack { seq: n.seq }
    }
}

impl From<&Gossip> for v1::Gossip {
    fn from(g: &Gossip) -> v1::Gossip {
        v1::Gossip {
            updates: encode_all(&g.updates),
        }
    }
}

impl TryFrom<v1::Gossip> for Gossip {
    type Error = DecodeError;

    fn try_from(g: v1::Gossip) -> Result<Gossip, DecodeError> {
        Ok(Gossip {
            updates: decode_all(g.updates)?,
        })
    }
}

// ----- push-pull -------------------------------------------------------------

impl From<PushPullKind> for v1::Kind {
    fn from(k: PushPullKind) -> v1::Kind {
        match k {
            PushPullKind::Join => v1::Kind::Join,
            PushPullKind::Summary => v1::Kind::Summary,
            PushPullKind::Sync => v1::Kind::Sync,
            PushPullKind::Reply => v1::Kind::Reply,
            PushPullKind::Deltas => v1::Kind::Deltas,
            PushPullKind::Pull => v1::Kind::Pull,
        }
    }
}

impl From<v1::Kind> for PushPullKind {
    fn from(k: v1::Kind) -> PushPullKind {
        match k {
            v1::Kind::Join => PushPullKind::Join,
            v1::Kind::Summary => PushPullKind::Summary,
            v1::Kind::Sync => PushPullKind::Sync,
            v1::Kind::Reply => PushPullKind::Reply,
            v1::Kind::Deltas => PushPullKind::Deltas,
            v1::Kind::Pull => PushPullKind::Pull,
        }
    }
}

impl From<&PushPull> for v1::PushPull {
    fn from(p: &PushPull) -> v1::PushPull {
        v1::PushPull {
            kind: v1::Kind::from(p.kind).into(),
            summary: p.summary,
            members: encode_all(&p.members),
            state_summary: p.state_summary,
            digest: p.digest.as_deref().map(v1::Digest::from),
            deltas: encode_all(&p.deltas),
            metadata: p.metadata.as_ref().map(v1::Metadata::from),
            member_digest: p.member_digest.as_deref().map(|lines| v1::MemberDigest {
                lines: encode_all(lines),
            }),
            wanted: p.wanted.iter().map(|w| w.to_string()).collect(),
            page: p.page.as_ref().map(|g| v1::Page {
                from: g.from.to_string(),
                to: g.to.as_deref().unwrap_or_default().to_string(),
            }),
        }
    }
}

impl From<&MemberLine> for v1::MemberLine {
    fn from(l: &MemberLine) -> v1::MemberLine {
        v1::MemberLine {
            name: l.name.to_string(),
            incarnation: l.incarnation.0,
            state: v1::State::from(l.state).into(),
        }
    }
}

impl TryFrom<v1::MemberLine> for MemberLine {
    type Error = DecodeError;

    fn try_from(l: v1::MemberLine) -> Result<MemberLine, DecodeError> {
        let state = v1::State::try_from(l.state).map_err(|_| DecodeError::UnknownEnum {
            field: "MemberLine.state",
            value: l.state,
        })?;
        Ok(MemberLine {
            name: name(l.name, "MemberLine.name")?,
            incarnation: Incarnation(l.incarnation),
            state: state.into(),
        })
    }
}

impl TryFrom<v1::PushPull> for PushPull {
    type Error = DecodeError;

    fn try_from(p: v1::PushPull) -> Result<PushPull, DecodeError> {
        let kind = v1::Kind::try_from(p.kind).map_err(|_| DecodeError::UnknownEnum {
            field: "PushPull.kind",
            value: p.kind,
        })?;
        Ok(PushPull {
            kind: kind.into(),
            summary: p.summary,
            members: decode_all(p.members)?,
            state_summary: p.state_summary,
            digest: p.digest.map(Vec::try_from).transpose()?,
            deltas: decode_all(p.deltas)?,
            metadata: p.metadata.map(Metadata::try_from).transpose()?,
            member_digest: p.member_digest.map(|d| decode_all(d.lines)).transpose()?,
            wanted: p
                .wanted
                .into_iter()
                .map(|w| name(w, "PushPull.wanted"))
                .collect::<Result<_, _>>()?,
            page: p.page.map(Page::try_from).transpose()?,
        })
    }
}

impl TryFrom<v1::Page> for Page {
    type Error = DecodeError;

    /// A cursor is a name, or empty: the first name (`from`) or all the way
    /// round (`to`).
    fn try_from(g: v1::Page) -> Result<Page, DecodeError> {
        let cursor = |s: String, field| match s.is_empty() {
            true => Ok(None),
            false => name(s, field).map(Some),
        };
        Ok(Page {
            from: cursor(g.from, "Page.from")?.unwrap_or_else(|| Arc::from("")),
            to: cursor(g.to, "Page.to")?,
        })
    }
}

impl From<&DigestEntry> for v1::DigestEntry {
    fn from(e: &DigestEntry) -> v1::DigestEntry {
        v1::DigestEntry {
            owner: e.owner.to_string(),
            generation: e.generation,
            version: e.version,
            unproven: e.unproven,
            reset_at: e.reset_at,
        }
    }
}

impl TryFrom<v1::DigestEntry> for DigestEntry {
    type Error = DecodeError;

    fn try_from(e: v1::DigestEntry) -> Result<DigestEntry, DecodeError> {
        Ok(DigestEntry {
            owner: name(e.owner, "DigestEntry.owner")?,
            generation: e.generation,
            version: e.version,
            unproven: e.unproven,
            reset_at: e.reset_at,
        })
    }
}

impl From<&[DigestEntry]> for v1::Digest {
    fn from(entries: &[DigestEntry]) -> v1::Digest {
        v1::Digest {
            entries: encode_all(entries),
        }
    }
}

impl TryFrom<v1::Digest> for Vec<DigestEntry> {
    type Error = DecodeError;

    fn try_from(d: v1::Digest) -> Result<Vec<DigestEntry>, DecodeError> {
        decode_all(d.entries)
    }
}

// ----- data ------------------------------------------------------------------

impl From<&Versioned> for v1::Versioned {
    fn from(v: &Versioned) -> v1::Versioned {
        let record = match &v.record {
            Record::Entry { key, value } => v1::versioned::Record::Entry(v1::EntryRecord {
                key: key.to_string(),
                value: bytes(value),
                deleted: value.is_none(),
            }),
            Record::Event {
                name,
                payload,
                lamport,
            } => v1::versioned::Record::Event(v1::EventRecord {
                name: name.to_string(),
                payload: payload.to_vec(),
                lamport: *lamport,
            }),
        };
        v1::Versioned {
            version: v.version,
            record: Some(record),
            signature: v.signature.0.to_vec(),
        }
    }
}

impl TryFrom<v1::Versioned> for Versioned {
    type Error = DecodeError;

    fn try_from(v: v1::Versioned) -> Result<Versioned, DecodeError> {
        let record = match v.record {
            None => return Err(DecodeError::MissingField("Versioned.record")),
            Some(v1::versioned::Record::Entry(e)) => Record::Entry {
                key: Arc::from(e.key),
                value: match (e.deleted, e.value.is_empty()) {
                    (false, _) => Some(Arc::from(e.value)),
                    (true, true) => None,
                    (true, false) => return Err(DecodeError::ValueConflict("EntryRecord")),
                },
            },
            Some(v1::versioned::Record::Event(e)) => Record::Event {
                name: Arc::from(e.name),
                payload: Arc::from(e.payload),
                lamport: e.lamport,
            },
        };
        Ok(Versioned {
            version: v.version,
            record,
            signature: signature(&v.signature, "Versioned.signature")?,
        })
    }
}

impl From<&Delta> for v1::Delta {
    fn from(d: &Delta) -> v1::Delta {
        v1::Delta {
            owner: d.owner.to_string(),
            generation: d.generation,
            from: d.from,
            to: d.to,
            reset: d.reset,
            horizon: d.horizon,
            sender_version: d.sender_version,
            records: encode_all(&d.records),
            horizon_signature: d
                .horizon_signature
                .map(|s| s.0.to_vec())
                .unwrap_or_default(),
            checkpoint_digest: d
                .checkpoint
                .as_ref()
                .map(|c| c.digest.to_bytes().to_vec())
                .unwrap_or_default(),
            checkpoint_signature: d
                .checkpoint
                .as_ref()
                .map(|c| c.signature.0.to_vec())
                .unwrap_or_default(),
        }
    }
}

impl TryFrom<v1::Delta> for Delta {
    type Error = DecodeError;

    fn try_from(d: v1::Delta) -> Result<Delta, DecodeError> {
        let owner = name(d.owner, "Delta.owner")?;
        let (from, to) = (d.from, d.to);
        if to < from {
            return Err(DecodeError::BadRange {
                from,
                to,
                record: None,
            });
        }
        let records: Vec<Versioned> = decode_all(d.records)?;
        let mut last = from;
        for r in &records {
            if r.version <= last || r.version > to {
                return Err(DecodeError::BadRange {
                    from,
                    to,
                    record: Some(r.version),
                });
            }
            last = r.version;
        }
        Ok(Delta {
            owner,
            generation: d.generation,
            from,
            to,
            reset: d.reset,
            horizon: d.horizon,
            sender_version: d.sender_version,
            records,
            horizon_signature: if d.horizon_signature.is_empty() {
                None
            } else {
                Some(signature(&d.horizon_signature, "Delta.horizon_signature")?)
            },
            checkpoint: checkpoint(&d.checkpoint_digest, &d.checkpoint_signature)?,
        })
    }
}

impl From<&Metadata> for v1::Metadata {
    fn from(m: &Metadata) -> v1::Metadata {
        v1::Metadata {
            lamport: m.lamport,
            origin: m.origin.to_string(),
            value: m.value.to_vec(),
            signature: m.signature.0.to_vec(),
        }
    }
}

impl TryFrom<v1::Metadata> for Metadata {
    type Error = DecodeError;

    fn try_from(m: v1::Metadata) -> Result<Metadata, DecodeError> {
        Ok(Metadata {
            lamport: m.lamport,
            origin: name(m.origin, "Metadata.origin")?,
            value: Arc::from(m.value),
            signature: signature(&m.signature, "Metadata.signature")?,
        })
    }
}

impl From<&Datum> for v1::Datum {
    fn from(d: &Datum) -> v1::Datum {
        let datum = match d {
            Datum::Delta(d) => v1::datum::Datum::Delta(d.into()),
            Datum::Metadata(m) => v1::datum::Datum::Metadata(m.into()),
        };
        v1::Datum { datum: Some(datum) }
    }
}

impl TryFrom<v1::Datum> for Datum {
    type Error = DecodeError;

    fn try_from(d: v1::Datum) -> Result<Datum, DecodeError> {
        match d.datum {
            None => Err(DecodeError::MissingField("Datum.datum")),
            Some(v1::datum::Datum::Delta(d)) => Ok(Datum::Delta(d.try_into()?)),
            Some(v1::datum::Datum::Metadata(m)) => Ok(Datum::Metadata(m.try_into()?)),
        }
    }
}

impl From<&DatumId> for v1::DatumId {
    fn from(id: &DatumId) -> v1::DatumId {
        let id = match id {
            DatumId::Record {
                owner,
                generation,
                version,
            } => v1::datum_id::Id::Record(v1::RecordId {
                owner: owner.to_string(),
                generation: *generation,
                version: *version,
            }),
            DatumId::Metadata { lamport, origin } => v1::datum_id::Id::Metadata(v1::MetadataId {
                lamport: *lamport,
                origin: origin.to_string(),
            }),
        };
        v1::DatumId { id: Some(id) }
    }
}

impl TryFrom<v1::DatumId> for DatumId {
    type Error = DecodeError;

    fn try_from(id: v1::DatumId) -> Result<DatumId, DecodeError> {
        match id.id {
            None => Err(DecodeError::MissingField("DatumId.id")),
            Some(v1::datum_id::Id::Record(r)) => Ok(DatumId::Record {
                owner: name(r.owner, "RecordId.owner")?,
                generation: r.generation,
                version: r.version,
            }),
            Some(v1::datum_id::Id::Metadata(m)) => Ok(DatumId::Metadata {
                lamport: m.lamport,
                origin: name(m.origin, "MetadataId.origin")?,
            }),
        }
    }
}

impl From<&DataGossip> for v1::DataGossip {
    fn from(r: &DataGossip) -> v1::DataGossip {
        v1::DataGossip {
            data: encode_all(&r.data),
            pull: r.pull,
        }
    }
}

impl TryFrom<v1::DataGossip> for DataGossip {
    type Error = DecodeError;

    fn try_from(r: v1::DataGossip) -> Result<DataGossip, DecodeError> {
        Ok(DataGossip {
            data: decode_all(r.data)?,
            pull: r.pull,
        })
    }
}

impl From<&Eager> for v1::Eager {
    fn from(e: &Eager) -> v1::Eager {
        v1::Eager {
            data: encode_all(&e.data),
            updates: encode_all(&e.updates),
        }
    }
}

impl TryFrom<v1::Eager> for Eager {
    type Error = DecodeError;

    fn try_from(e: v1::Eager) -> Result<Eager, DecodeError> {
        Ok(Eager {
            data: decode_all(e.data)?,
            updates: decode_all(e.updates)?,
        })
    }
}

impl From<&IHave> for v1::IHave {
    fn from(i: &IHave) -> v1::IHave {
        v1::IHave {
            ids: encode_all(&i.ids),
        }
    }
}

impl TryFrom<v1::IHave> for IHave {
    type Error = DecodeError;

    fn try_from(i: v1::IHave) -> Result<IHave, DecodeError> {
        Ok(IHave {
            ids: decode_all(i.ids)?,
        })
    }
}

impl From<&Graft> for v1::Graft {
    fn from(g: &Graft) -> v1::Graft {
        v1::Graft {
            ids: encode_all(&g.ids),
        }
    }
}

impl TryFrom<v1::Graft> for Graft {
    type Error = DecodeError;

    fn try_from(g: v1::Graft) -> Result<Graft, DecodeError> {
        Ok(Graft {
            ids: decode_all(g.ids)?,
        })
    }
}

impl From<&Prune> for v1::Prune {
    fn from(_: &Prune) -> v1::Prune {
        v1::Prune {}
    }
}

impl From<v1::Prune> for Prune {
    fn from(_: v1::Prune) -> Prune {
        Prune
    }
}

impl From<&Query> for v1::Query {
    fn from(q: &Query) -> v1::Query {
        v1::Query {
            id: q.id,
            key: q.key.to_string(),
        }
    }
}

/// Keys are not checked here: their limits are the core's configuration.
impl From<v1::Query> for Query {
    fn from(q: v1::Query) -> Query {
        Query {
            id: q.id,
            key: Arc::from(q.key),
        }
    }
}

impl From<&QueryReply> for v1::QueryReply {
    fn from(r: &QueryReply) -> v1::QueryReply {
        v1::QueryReply {
            id: r.id,
            generation: r.generation,
            version: r.version,
            value: bytes(&r.value),
            found: r.value.is_some(),
        }
    }
}

impl TryFrom<v1::QueryReply> for QueryReply {
    type Error = DecodeError;

    fn try_from(r: v1::QueryReply) -> Result<QueryReply, DecodeError> {
        let value = match (r.found, r.value.is_empty()) {
            (true, _) => Some(Arc::from(r.value)),
            (false, true) => None,
            (false, false) => return Err(DecodeError::ValueConflict("QueryReply")),
        };
        Ok(QueryReply {
            id: r.id,
            generation: r.generation,
            version: r.version,
            value,
        })
    }
}

// ----- the envelope's body ---------------------------------------------------

impl From<&Message> for Body {
    fn from(msg: &Message) -> Body {
        match msg {
            Message::Ping(m) => Body::Ping(m.into()),
            Message::PingReq(m) => Body::PingReq(m.into()),
            Message::Ack(m) => Body::Ack(m.into()),
            Message::Nack(m) => Body::Nack(m.into()),
            Message::Gossip(m) => Body::Gossip(m.into()),
            Message::PushPull(m) => Body::PushPull(m.as_ref().into()),
            Message::DataGossip(m) => Body::DataGossip(m.into()),
            Message::Eager(m) => Body::Eager(m.into()),
            Message::IHave(m) => Body::Ihave(m.into()),
            Message::Graft(m) => Body::Graft(m.into()),
            Message::Prune(m) => Body::Prune(m.into()),
            Message::Query(m) => Body::Query(m.into()),
            Message::QueryReply(m) => Body::QueryReply(m.into()),
        }
    }
}

impl TryFrom<Body> for Message {
    type Error = DecodeError;

    fn try_from(body: Body) -> Result<Message, DecodeError> {
        Ok(match body {
            Body::Ping(m) => Message::Ping(m.try_into()?),
            Body::PingReq(m) => Message::PingReq(m.try_into()?),
            Body::Ack(m) => Message::Ack(m.try_into()?),
            Body::Nack(m) => Message::Nack(m.into()),
            Body::Gossip(m) => Message::Gossip(m.try_into()?),
            Body::PushPull(m) => Message::push_pull(m.try_into()?),
            Body::DataGossip(m) => Message::DataGossip(m.try_into()?),
            Body::Eager(m) => Message::Eager(m.try_into()?),
            Body::Ihave(m) => Message::IHave(m.try_into()?),
            Body::Graft(m) => Message::Graft(m.try_into()?),
            Body::Prune(m) => Message::Prune(m.into()),
            Body::Query(m) => Message::Query(m.into()),
            Body::QueryReply(m) => Message::QueryReply(m.try_into()?),
            Body::ClusterRequest(_) => {
                return Err(DecodeError::NotForTheNode("Envelope.cluster_request"))
            }
            Body::ClusterReply(_) => {
                return Err(DecodeError::NotForTheNode("Envelope.cluster_reply"))
            }
        })
    }
}
