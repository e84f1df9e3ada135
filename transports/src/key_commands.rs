//! The key commands: list, install, use and remove a cluster key on every
//! live member at once (`rumour keys ...`).
//!
//! The agent a client calls checks the command first: a malformed key, no
//! keyring; for `use`, a live member that does not hold the key; for
//! `remove`, a live member that seals with it (these two ask every member
//! for its keys before anything changes). A refusal there changes nothing
//! anywhere. Otherwise the command
//! goes to every live member as a cluster request (see `cluster_request`);
//! each member acts on it, keeps its new ring in its data dir before it
//! answers, and answers with the fingerprints of the keys it then holds, or
//! why it refused.
//!
//! Keys never leave a node but sealed inside a request; answers, logs and
//! errors name keys by fingerprint only.

use std::collections::BTreeMap;
use std::time::Duration;

use rumour_proto::v1::{self as pb, cluster_reply, cluster_request, key_command::Op};
use tracing::{debug, info};

use crate::driver::{Driver, Handle};
use crate::error::ApiError;
use crate::keyring::{ClusterKey, Keyring};

/// How long a key command waits for members' answers when the caller does
/// not say.
pub const DEFAULT_KEY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a key command may wait.
pub const MAX_KEY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a key command does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOp {
    /// Change nothing; report each member's keys.
    List,
    /// Add a key that opens (and does not seal yet).
    Install,
    /// Make an installed key the primary: it seals from now on.
    Use,
    /// Remove a key that is not the primary.
    Remove,
}

impl KeyOp {
    fn wire(self) -> Op {
        match self {
            KeyOp::List => Op::List,
            KeyOp::Install => Op::Install,
            KeyOp::Use => Op::Use,
            KeyOp::Remove => Op::Remove,
        }
    }
}

/// One member's answer to a key command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberKeys {
    /// The member's name.
    pub name: String,
    /// Why it refused the command; `None` if it did it.
    pub error: Option<String>,
    /// The fingerprints of the keys it holds after the command, its
    /// primary first.
    pub fingerprints: Vec<String>,
}

/// How many of the members that answered hold a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCount {
    /// The key's fingerprint ([`ClusterKey::fingerprint`]).
    pub fingerprint: String,
    /// Members holding it.
    pub members: usize,
    /// Members whose primary it is.
    pub primary: usize,
}

/// The outcome of a key command across the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyReport {
    /// Each member's answer, by name (the agent called included).
    pub answers: Vec<MemberKeys>,
    /// Live members asked that did not answer before the timeout, by name.
    pub no_answer: Vec<String>,
}

impl KeyReport {
    /// Each key held by a member that answered, with how many hold it and
    /// whose primary it is; the most held first, then by fingerprint.
    pub fn counts(&self) -> Vec<KeyCount> {
        let mut counts: BTreeMap<&str, KeyCount> = BTreeMap::new();
        for a in &self.answers {
            for (i, f) in a.fingerprints.iter().enumerate() {
                let c = counts.entry(f).or_insert_with(|| KeyCount {
                    fingerprint: f.clone(),
                    members: 0,
                    primary: 0,
                });
                c.members += 1;
                c.primary += usize::from(i == 0);
            }
        }
        let mut counts: Vec<KeyCount> = counts.into_values().collect();
        counts.sort_by(|a, b| {
            (b.primary, b.members)
                .cmp(&(a.primary, a.members))
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        counts
    }

    /// Whether every member asked answered and none refused.
    pub fn all_done(&self) -> bool {
        self.no_answer.is_empty() && self.answers.iter().all(|a| a.error.is_none())
    }
}

impl Handle {
    /// Run a key command on every live member: `key` is the base64 key
    /// (ignored for [`KeyOp::List`]). Waits for every answer, at most
    /// `timeout` (capped at [`MAX_KEY_TIMEOUT`]).
    ///
    /// Errors, each with nothing changed on any member: a malformed key
    /// ([`ApiError::BadClusterKey`]); an agent without a cluster key
    /// ([`ApiError::NoKeyring`]); using a key that a live member does not
    /// hold (or that one of them did not say it holds), or removing this
    /// agent's primary ([`ApiError::KeyRefused`]).
    pub async fn keys(
        &self,
        op: KeyOp,
        key: &str,
        timeout: Duration,
    ) -> Result<KeyReport, ApiError> {
        let key = match op {
            KeyOp::List => None,
            _ => Some(ClusterKey::from_base64(key).map_err(ApiError::BadClusterKey)?),
        };
        let command = pb::KeyCommand {
            op: op.wire() as i32,
            key: key
                .as_ref()
                .map_or_else(Vec::new, |k| k.as_bytes().to_vec()),
        };
        if let (KeyOp::Use | KeyOp::Remove, Some(k)) = (op, &key) {
            self.safe_everywhere(op, k, timeout).await?;
        }
        let check = move |d: &Driver| {
            let ring = d.keyring.as_ref().ok_or(ApiError::NoKeyring)?.current();
            match key {
                Some(k) => refusal(&ring, op, &k).map_or(Ok(()), |why| {
                    Err(ApiError::KeyRefused(format!(
                        "{}: {why}",
                        d.node.id().name()
                    )))
                }),
                None => Ok(()),
            }
        };
        let gathered = self
            .ask_cluster(
                cluster_request::Command::Keys(command),
                timeout.min(MAX_KEY_TIMEOUT),
                check,
            )
            .await?;
        let answers = gathered
            .answers
            .into_iter()
            .map(|(name, answer)| match answer {
                cluster_reply::Answer::Keys(k) => MemberKeys {
                    name,
                    error: (!k.error.is_empty()).then_some(k.error),
                    fingerprints: k.fingerprints,
                },
                // A member's input: never trusted to be of the right kind.
                cluster_reply::Answer::Query(_) => MemberKeys {
                    name,
                    error: Some("an answer of another kind".into()),
                    fingerprints: Vec::new(),
                },
            })
            .collect();
        Ok(KeyReport {
            answers,
            no_answer: gathered.no_answer,
        })
    }
}

impl Handle {
    /// Refuse (`KeyRefused`) a `use` unless every live member says it
    /// holds `key`, and a `remove` unless every live member says it does
    /// not seal with `key`: either way a member would otherwise be left
    /// sealing with a key the others cannot open, and fall out of the
    /// cluster. So these two ask everyone first.
    async fn safe_everywhere(
        &self,
        op: KeyOp,
        key: &ClusterKey,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let list = pb::KeyCommand {
            op: Op::List as i32,
            key: Vec::new(),
        };
        let check = |d: &Driver| d.keyring.as_ref().map(|_| ()).ok_or(ApiError::NoKeyring);
        let gathered = self
            .ask_cluster(
                cluster_request::Command::Keys(list),
                timeout.min(MAX_KEY_TIMEOUT),
                check,
            )
            .await?;
        let fingerprint = key.fingerprint();
        let unsafe_at: Vec<String> = gathered
            .answers
            .into_iter()
            .filter(|(_, answer)| match (op, answer) {
                (KeyOp::Use, cluster_reply::Answer::Keys(k)) => {
                    !k.fingerprints.contains(&fingerprint)
                }
                (_, cluster_reply::Answer::Keys(k)) => k.fingerprints.first() == Some(&fingerprint),
                // An answer of another kind tells nothing: not safe.
                (_, cluster_reply::Answer::Query(_)) => true,
            })
            .map(|(name, _)| name)
            .collect();
        let mut why = Vec::new();
        if !unsafe_at.is_empty() {
            why.push(match op {
                KeyOp::Use => format!(
                    "the key is not installed on {} (install it everywhere first)",
                    unsafe_at.join(", ")
                ),
                _ => format!(
                    "the key is the primary of {} (make another key primary everywhere first)",
                    unsafe_at.join(", ")
                ),
            });
        }
        if !gathered.no_answer.is_empty() {
            why.push(format!(
                "no answer from {} (cannot tell whether they hold the key)",
                gathered.no_answer.join(", ")
            ));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(ApiError::KeyRefused(why.join("; ")))
        }
    }
}

/// Why `ring` refuses `op` of `key`, if it does.
fn refusal(ring: &Keyring, op: KeyOp, key: &ClusterKey) -> Option<&'static str> {
    match op {
        KeyOp::List | KeyOp::Install => None,
        KeyOp::Use if !ring.contains(key) => {
            Some("the key is not installed (install it everywhere first)")
        }
        KeyOp::Use => None,
        KeyOp::Remove if ring.primary() == key => Some(if ring.len() == 1 {
            "the key is the only one (a node cannot be left without a key)"
        } else {
            "the key is the primary (make another key primary first)"
        }),
        KeyOp::Remove => None,
    }
}

/// The ring `op` of `key` makes of `ring`, or why not.
fn changed(ring: &Keyring, op: KeyOp, key: ClusterKey) -> Result<Keyring, &'static str> {
    if let Some(why) = refusal(ring, op, &key) {
        return Err(why);
    }
    let mut next = ring.clone();
    match op {
        KeyOp::List => {}
        KeyOp::Install => next.install(key),
        KeyOp::Use => next.use_primary(key),
        KeyOp::Remove => {
            next.remove(&key);
        }
    }
    Ok(next)
}

/// Act on a key command that came from another agent (or this one), on the
/// node task: the answer to send back, `None` at a node without a keyring
/// (which takes no key command).
pub(crate) fn apply(d: &mut Driver, cmd: &pb::KeyCommand) -> Option<pb::KeyAnswer> {
    let Some(shared) = d.keyring.clone() else {
        debug!("dropped a key command: this node has no cluster key");
        return None;
    };
    let ring = shared.current();
    let answer = |ring: &Keyring, error: String| pb::KeyAnswer {
        error,
        fingerprints: ring.keys().iter().map(ClusterKey::fingerprint).collect(),
    };
    let op = match Op::try_from(cmd.op) {
        Ok(Op::List) => return Some(answer(&ring, String::new())),
        Ok(Op::Install) => KeyOp::Install,
        Ok(Op::Use) => KeyOp::Use,
        Ok(Op::Remove) => KeyOp::Remove,
        Err(_) => return Some(answer(&ring, format!("unknown key command {}", cmd.op))),
    };
    let key = match ClusterKey::from_bytes(&cmd.key) {
        Ok(k) => k,
        Err(e) => return Some(answer(&ring, e.to_string())),
    };
    let fingerprint = key.fingerprint();
    let next = match changed(&ring, op, key) {
        Ok(next) => next,
        Err(why) => return Some(answer(&ring, why.to_string())),
    };
    if next == *ring {
        return Some(answer(&ring, String::new()));
    }
    // Kept before it is used: an answer means the change survives a
    // restart.
    if let Some(durable) = &mut d.durable {
        let keys: Vec<&[u8]> = next.keys().iter().map(|k| &k.as_bytes()[..]).collect();
        if let Err(e) = durable.dir_mut().save_keyring(&keys, next.label()) {
            return Some(answer(
                &ring,
                format!("cannot keep the keyring in the data dir: {e}"),
            ));
        }
    }
    shared.replace(next.clone());
    info!(key = %fingerprint, command = ?op, keys = next.len(), "keyring changed");
    Some(answer(&next, String::new()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::KEY_LEN;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes(&[b; KEY_LEN]).unwrap()
    }

    #[test]
    fn a_rotation_is_install_use_remove_and_the_primary_stays() {
        let ring = Keyring::new(key(1), "");
        assert_eq!(
            changed(&ring, KeyOp::Remove, key(1)),
            Err("the key is the only one (a node cannot be left without a key)")
        );
        assert!(changed(&ring, KeyOp::Use, key(2)).is_err(), "not installed");
        let ring = changed(&ring, KeyOp::Install, key(2)).unwrap();
        assert_eq!(ring.keys(), &[key(1), key(2)]);
        assert_eq!(
            changed(&ring, KeyOp::Install, key(2)).unwrap(),
            ring,
            "idempotent"
        );
        assert_eq!(
            changed(&ring, KeyOp::Remove, key(1)),
            Err("the key is the primary (make another key primary first)")
        );
        let ring = changed(&ring, KeyOp::Use, key(2)).unwrap();
        assert_eq!(ring.primary(), &key(2));
        let ring = changed(&ring, KeyOp::Remove, key(1)).unwrap();
        assert_eq!(ring, Keyring::new(key(2), ""));
        assert_eq!(
            changed(&ring, KeyOp::Remove, key(9)).unwrap(),
            ring,
            "removing a key not held changes nothing"
        );
    }

    #[test]
    fn counts_say_who_holds_what() {
        let report = KeyReport {
            answers: vec![
                MemberKeys {
                    name: "a".into(),
                    error: None,
                    fingerprints: vec!["new".into(), "old".into()],
                },
                MemberKeys {
                    name: "b".into(),
                    error: Some("no".into()),
                    fingerprints: vec!["old".into(), "new".into()],
                },
                MemberKeys {
                    name: "c".into(),
                    error: None,
                    fingerprints: vec!["new".into()],
                },
            ],
            no_answer: vec!["d".into()],
        };
        let c = report.counts();
        assert_eq!(
            c,
            vec![
                KeyCount {
                    fingerprint: "new".into(),
                    members: 3,
                    primary: 2
                },
                KeyCount {
                    fingerprint: "old".into(),
                    members: 2,
                    primary: 1
                },
            ]
        );
        assert!(!report.all_done());
    }
}
