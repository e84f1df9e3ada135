//! Members: identity, incarnation, state, and the SWIM precedence rules that
//! decide whether news about a member overrides what a node believes.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::Error;
use crate::identity::{PublicKey, Signature};
use crate::time::Time;

/// Longest node name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A member's identity: its unique name and the address it is reached at.
///
/// Cheap to clone (one shared allocation), so the many copies that ride in
/// rumours and membership tables cost a pointer each.
#[derive(Clone)]
pub struct NodeId(Arc<Identity>);

struct Identity {
    name: Box<str>,
    addr: SocketAddr,
}

impl NodeId {
    /// A node identity. The name must be 1 to [`MAX_NAME_LEN`] bytes.
    pub fn new(name: &str, addr: SocketAddr) -> Result<NodeId, Error> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(Error::InvalidName(format!(
                "name must be 1 to {MAX_NAME_LEN} bytes, got {}",
                name.len()
            )));
        }
        Ok(NodeId(Arc::new(Identity {
            name: name.into(),
            addr,
        })))
    }

    /// The member's unique name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The address the member is reached at.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }
}

impl PartialEq for NodeId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.name() == other.name() && self.addr() == other.addr())
    }
}
impl Eq for NodeId {}

impl Hash for NodeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        self.addr().hash(state);
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name(), self.addr())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A [`NodeId`] ordered and looked up by name alone: the key of membership
/// tables, where a name maps to exactly one current identity.
#[derive(Clone, Debug)]
pub(crate) struct ByName(pub(crate) NodeId);

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.0.name() == other.0.name()
    }
}
impl Eq for ByName {}
impl Hash for ByName {
    /// By name alone, as `str` hashes, so that a lookup by `&str` finds it.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name().hash(state);
    }
}
impl PartialOrd for ByName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.name().cmp(other.0.name())
    }
}
impl Borrow<str> for ByName {
    fn borrow(&self) -> &str {
        self.0.name()
    }
}

/// A member's incarnation number: raised only by the member itself, to
/// refute a suspicion or when it restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation(pub u32);

impl Incarnation {
    /// The next incarnation.
    pub fn next(self) -> Incarnation {
        Incarnation(self.0.saturating_add(1))
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a node believes about a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a direct and indirect probe; dead unless it refutes in time.
    Suspect,
    /// Its suspicion expired unrefuted.
    Dead,
    /// It announced a graceful leave.
    Left,
}

impl MemberState {
    /// Alive or suspect: still counted as a member and probed.
    pub fn is_live(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }

    /// The state's lowercase name, as shown by tools.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether news `(incarnation, state)` about a member overrides the belief
/// `(held_incarnation, held_state)`, per SWIM:
///
/// - alive overrides anything with a lower incarnation;
/// - suspect overrides alive with the same or a lower incarnation, and
///   suspect with a lower one; it never overrides dead or left;
/// - dead and left override alive and suspect with the same or a lower
///   incarnation; left also overrides dead (a graceful leave is the better
///   explanation), never the other way round.
pub fn overrides(
    incarnation: Incarnation,
    state: MemberState,
    held_incarnation: Incarnation,
    held_state: MemberState,
) -> bool {
    use MemberState::*;
    match state {
        Alive => incarnation > held_incarnation,
        Suspect => match held_state {
            Alive => incarnation >= held_incarnation,
            Suspect => incarnation > held_incarnation,
            Dead | Left => false,
        },
        Dead => held_state.is_live() && incarnation >= held_incarnation,
        Left => held_state != Left && incarnation >= held_incarnation,
    }
}

/// A snapshot of one member as a node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// Name and address.
    pub id: NodeId,
    /// The highest incarnation heard of.
    pub incarnation: Incarnation,
    /// What this node believes.
    pub state: MemberState,
    /// When this node last changed its belief about the member.
    pub since: Time,
    /// The member's public key.
    pub key: PublicKey,
    /// The member's own signature over its `Alive` (or `Left`) at this
    /// incarnation and address.
    pub signature: Signature,
}

#[cfg(test)]
mod tests {
    use super::MemberState::*;
    use super::*;

    fn i(n: u32) -> Incarnation {
        Incarnation(n)
    }

    #[test]
    fn alive_needs_a_higher_incarnation() {
        assert!(!overrides(i(1), Alive, i(1), Suspect));
        assert!(overrides(i(2), Alive, i(1), Suspect));
        assert!(overrides(i(2), Alive, i(1), Dead));
        assert!(!overrides(i(1), Alive, i(1), Alive));
    }

    #[test]
    fn suspect_beats_alive_of_same_incarnation_only() {
        assert!(overrides(i(1), Suspect, i(1), Alive));
        assert!(!overrides(i(0), Suspect, i(1), Alive));
        assert!(!overrides(i(1), Suspect, i(1), Suspect));
        assert!(!overrides(i(5), Suspect, i(1), Dead));
    }

    #[test]
    fn dead_and_left_are_final_for_an_incarnation() {
        assert!(overrides(i(1), Dead, i(1), Suspect));
        assert!(!overrides(i(0), Dead, i(1), Alive));
        assert!(!overrides(i(1), Dead, i(1), Dead));
        assert!(overrides(i(1), Left, i(1), Dead));
        assert!(!overrides(i(1), Dead, i(1), Left));
    }

    #[test]
    fn names_are_validated() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(NodeId::new("", addr).is_err());
        assert!(NodeId::new(&"x".repeat(MAX_NAME_LEN + 1), addr).is_err());
        let a = NodeId::new("a", addr).unwrap();
        assert_eq!(a, NodeId::new("a", addr).unwrap());
        assert_eq!(format!("{a:?}"), "a@127.0.0.1:1");
    }
}
