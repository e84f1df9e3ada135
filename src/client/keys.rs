//! `rumour keys list|install|use|remove`: one key call against the agent,
//! which asks every live member, and what it prints.
//!
//! Keys are sent, never printed: the output names keys by fingerprint.

use rumour_proto::v1 as pb;
use tonic::Status;

use super::commands::{unary, Client};
use super::output::columns;
use super::{KeyWait, KeyringCommand};

/// What a key command prints: the table for stdout, and the problem (a
/// refusal, a member that did not answer) that makes it exit 1.
pub(super) struct Printed {
    pub(super) table: String,
    pub(super) problem: Option<String>,
}

/// Make the call and render its answer.
pub(super) async fn execute(client: &mut Client, cmd: KeyringCommand) -> Result<Printed, Status> {
    let request = |key: &crate::agent::Secret, wait: KeyWait| {
        let mut r = unary(pb::KeyRequest {
            key: key.expose().to_string(),
            timeout_ms: timeout_ms(wait),
        });
        // The call ends at the members' timeout; leave it room.
        r.set_timeout(wait.timeout + std::time::Duration::from_secs(5));
        r
    };
    let (r, done) = match cmd {
        KeyringCommand::List { wait } => {
            let mut r = unary(pb::ListKeysRequest {
                timeout_ms: timeout_ms(wait),
            });
            r.set_timeout(wait.timeout + std::time::Duration::from_secs(5));
            (client.list_keys(r).await?, None)
        }
        KeyringCommand::Install { key, wait } => (
            client.install_key(request(&key, wait)).await?,
            Some("installed"),
        ),
        KeyringCommand::Use { key, wait } => (
            client.use_key(request(&key, wait)).await?,
            Some("made primary"),
        ),
        KeyringCommand::Remove { key, wait } => (
            client.remove_key(request(&key, wait)).await?,
            Some("removed"),
        ),
    };
    Ok(render(&r.into_inner(), done))
}

fn timeout_ms(wait: KeyWait) -> u32 {
    u32::try_from(wait.timeout.as_millis()).unwrap_or(u32::MAX)
}

/// The table of keys and the summary line; `done` names what a change did.
fn render(r: &pb::KeysResponse, done: Option<&str>) -> Printed {
    let mut rows = vec![vec![
        "KEY".to_string(),
        "MEMBERS".to_string(),
        "PRIMARY".to_string(),
    ]];
    let answered = r.members.len();
    rows.extend(r.keys.iter().map(|k| {
        vec![
            k.fingerprint.clone(),
            format!("{}/{answered}", k.members),
            k.primary.to_string(),
        ]
    }));
    let mut table = columns(&rows);
    let refused: Vec<&pb::MemberKeys> = r.members.iter().filter(|m| !m.error.is_empty()).collect();
    let asked = answered + r.no_answer.len();
    match done {
        Some(what) => table.push_str(&format!(
            "{what} on {} of {asked} members\n",
            answered - refused.len()
        )),
        None => table.push_str(&format!("{answered} of {asked} members answered\n")),
    }
    let mut problems = Vec::new();
    for m in &refused {
        problems.push(format!("{} refused: {}", m.name, m.error));
    }
    if !r.no_answer.is_empty() {
        problems.push(format!("no answer from {}", r.no_answer.join(", ")));
    }
    Printed {
        table,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, error: &str, keys: &[&str]) -> pb::MemberKeys {
        pb::MemberKeys {
            name: name.into(),
            error: error.into(),
            fingerprints: keys.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn a_list_shows_each_key_with_its_holders() {
        let r = pb::KeysResponse {
            members: vec![member("a", "", &["f1", "f2"]), member("b", "", &["f1"])],
            no_answer: vec![],
            keys: vec![
                pb::KeyCount {
                    fingerprint: "f1".into(),
                    members: 2,
                    primary: 2,
                },
                pb::KeyCount {
                    fingerprint: "f2".into(),
                    members: 1,
                    primary: 0,
                },
            ],
        };
        let p = render(&r, None);
        assert_eq!(
            p.table,
            "KEY  MEMBERS  PRIMARY\nf1   2/2      2\nf2   1/2      0\n2 of 2 members answered\n"
        );
        assert!(p.problem.is_none());
    }

    #[test]
    fn refusals_and_silence_are_problems() {
        let r = pb::KeysResponse {
            members: vec![
                member("a", "", &["f1"]),
                member("b", "the key is the primary", &["f1"]),
            ],
            no_answer: vec!["c".into(), "d".into()],
            keys: vec![],
        };
        let p = render(&r, Some("removed"));
        assert!(
            p.table.ends_with("removed on 1 of 4 members\n"),
            "{}",
            p.table
        );
        assert_eq!(
            p.problem.as_deref(),
            Some("b refused: the key is the primary; no answer from c, d")
        );
    }
}
