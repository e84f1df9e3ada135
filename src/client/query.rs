//! `rumour query NAME [PAYLOAD]`: one query through the agent, which asks
//! every live member; each answer is printed as it arrives, then a summary.
//!
//! Text: one line per answer (`MEMBER  TIME  ANSWER`, the answer's bytes
//! as UTF-8 with control characters escaped, or `error: ...`), then
//! `N of M members answered in T`. JSON: one object per line, each answer
//! then the summary. Either way a member that did not answer makes the
//! command exit 1, naming it.

use std::io::Write;
use std::time::Duration;

use rumour_proto::v1 as pb;
use serde_json::json;

use super::commands::Client;
use super::output::printable;
use super::{Failure, Format};

/// What `rumour query` was asked.
pub(super) struct Asked {
    pub(super) name: String,
    pub(super) payload: String,
    pub(super) timeout: Duration,
    pub(super) filter_name: Option<String>,
    pub(super) format: Format,
}

/// Make the call and print its answers as they come; `failed` turns an
/// error status into the command's failure.
pub(super) async fn execute(
    client: &mut Client,
    asked: Asked,
    out: &mut impl Write,
    failed: impl Fn(tonic::Status) -> Failure,
) -> Result<(), Failure> {
    use pb::query_response::Item;
    let mut r = tonic::Request::new(pb::QueryRequest {
        name: asked.name,
        payload: asked.payload.into_bytes(),
        timeout_ms: u32::try_from(asked.timeout.as_millis()).unwrap_or(u32::MAX),
        filter_name: asked.filter_name.unwrap_or_default(),
    });
    // The call ends at the members' timeout; leave it room.
    r.set_timeout(asked.timeout + Duration::from_secs(5));
    let mut stream = client.query(r).await.map_err(&failed)?.into_inner();
    while let Some(item) = stream.message().await.map_err(&failed)? {
        match item.item {
            Some(Item::Answer(a)) => {
                writeln!(out, "{}", answer_line(&a, asked.format))?;
                out.flush()?;
            }
            Some(Item::Summary(s)) => {
                writeln!(out, "{}", summary_line(&s, asked.format))?;
                out.flush()?;
                return match problem(&s) {
                    Some(p) => Err(Failure::Message(p)),
                    None => Ok(()),
                };
            }
            None => {}
        }
    }
    Err(Failure::Message(
        "the agent ended the query without a summary".into(),
    ))
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// One answer, as printed.
fn answer_line(a: &pb::MemberAnswer, format: Format) -> String {
    match format {
        Format::Table if a.error.is_empty() => format!(
            "{}  {:.1} ms  {}",
            a.member,
            ms(a.elapsed_us),
            printable(&a.payload)
        ),
        Format::Table => format!(
            "{}  {:.1} ms  error: {}",
            a.member,
            ms(a.elapsed_us),
            printable(a.error.as_bytes())
        ),
        Format::Json => {
            let mut v = json!({
                "member": a.member,
                "elapsed_ms": ms(a.elapsed_us),
                "payload": String::from_utf8_lossy(&a.payload),
            });
            if !a.error.is_empty() {
                v["error"] = json!(a.error);
            }
            v.to_string()
        }
    }
}

/// The summary, as printed.
fn summary_line(s: &pb::QuerySummary, format: Format) -> String {
    match format {
        Format::Table => {
            let mut line = format!(
                "{} of {} members answered in {:.1} ms",
                s.answered.len(),
                s.asked,
                ms(s.elapsed_us)
            );
            if !s.no_answer.is_empty() {
                line.push_str(&format!("; no answer from {}", s.no_answer.join(", ")));
            }
            line
        }
        Format::Json => json!({
            "summary": {
                "asked": s.asked,
                "answered": s.answered.iter().map(|m| json!({
                    "member": m.member,
                    "elapsed_ms": ms(m.elapsed_us),
                })).collect::<Vec<_>>(),
                "no_answer": s.no_answer,
                "elapsed_ms": ms(s.elapsed_us),
            }
        })
        .to_string(),
    }
}

/// What makes the command exit 1: members that did not answer.
fn problem(s: &pb::QuerySummary) -> Option<String> {
    (!s.no_answer.is_empty()).then(|| format!("no answer from {}", s.no_answer.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(member: &str, payload: &[u8], error: &str, us: u64) -> pb::MemberAnswer {
        pb::MemberAnswer {
            member: member.into(),
            payload: payload.to_vec(),
            error: error.into(),
            elapsed_us: us,
        }
    }

    #[test]
    fn answers_and_the_summary_print_one_line_each() {
        assert_eq!(
            answer_line(
                &answer("n1", b"name=n1\nincarnation=3", "", 1250),
                Format::Table
            ),
            "n1  1.2 ms  name=n1\\nincarnation=3"
        );
        assert_eq!(
            answer_line(&answer("n2", b"", "nobody subscribes", 800), Format::Table),
            "n2  0.8 ms  error: nobody subscribes"
        );
        let s = pb::QuerySummary {
            asked: 3,
            answered: vec![
                pb::MemberTime {
                    member: "n1".into(),
                    elapsed_us: 1250,
                },
                pb::MemberTime {
                    member: "n2".into(),
                    elapsed_us: 800,
                },
            ],
            no_answer: vec!["n3".into()],
            elapsed_us: 5_000_000,
        };
        assert_eq!(
            summary_line(&s, Format::Table),
            "2 of 3 members answered in 5000.0 ms; no answer from n3"
        );
        assert_eq!(problem(&s).as_deref(), Some("no answer from n3"));
        let v: serde_json::Value = serde_json::from_str(&summary_line(&s, Format::Json)).unwrap();
        assert_eq!(v["summary"]["no_answer"], json!(["n3"]));
        assert_eq!(v["summary"]["answered"][0]["elapsed_ms"], json!(1.25));
        let v: serde_json::Value =
            serde_json::from_str(&answer_line(&answer("n2", b"", "e", 800), Format::Json)).unwrap();
        assert_eq!(
            v,
            json!({"member": "n2", "elapsed_ms": 0.8, "payload": "", "error": "e"})
        );
    }
}
