//! Paged anti-entropy: digests and answers that fit one message.
//!
//! At thousands of members, a membership digest, a namespace digest or the
//! answer to either outgrows `max_message_size`. A push-pull then goes page
//! by page. A [`Page`] is a run of names, members and namespace owners
//! alike, in name order from a cursor, wrapping past the last name to the
//! first:
//!
//! ```text
//! R -> O  Sync   {page [a, b): R's lines for the names in it}
//! O -> R  Reply  {page [a, c), c <= b: O's answer, cut where its room ran out}
//! R -> O  Deltas {what O lacks in [a, c)}
//! R -> O  Sync   {page [c, ..)}   only if O's answer was cut short
//! ```
//!
//! The first page of an exchange starts at a random member's name (or at
//! the first name when everything fits), so that repeated exchanges cover
//! every name. An exchange goes on only while answers are cut short, that
//! is while the peer has more to send than a message holds (a newcomer, or
//! a node back from a long partition), and stops when it comes round to
//! where it started: each step moves at most one message each way, and a
//! newcomer receives everything in about as many round trips as its
//! answers fill messages.

use std::sync::Arc;

use crate::message::{DigestEntry, MemberLine, MemberUpdate, Page};
use crate::wire;

/// Something a page lists: it has a name (the cursor it sits at) and an
/// encoded size.
pub(crate) trait Paged {
    /// The name it is listed under.
    fn cursor(&self) -> Arc<str>;
    /// The bytes it adds to a message.
    fn size(&self) -> usize;
}

impl Paged for MemberUpdate {
    fn cursor(&self) -> Arc<str> {
        Arc::from(self.id.name())
    }
    fn size(&self) -> usize {
        wire::update_field_len(self)
    }
}

impl Paged for MemberLine {
    fn cursor(&self) -> Arc<str> {
        self.name.clone()
    }
    fn size(&self) -> usize {
        wire::len_field(wire::member_line_len(self))
    }
}

impl Paged for DigestEntry {
    fn cursor(&self) -> Arc<str> {
        self.owner.clone()
    }
    fn size(&self) -> usize {
        wire::len_field(wire::digest_entry_len(self))
    }
}

/// A name's membership line and namespace digest line, side by side.
pub(crate) type Lines = (Option<MemberLine>, Option<DigestEntry>);

impl Paged for Lines {
    fn cursor(&self) -> Arc<str> {
        match self {
            (Some(l), _) => l.cursor(),
            (None, Some(e)) => e.cursor(),
            (None, None) => Arc::from(""),
        }
    }
    fn size(&self) -> usize {
        self.0.as_ref().map_or(0, Paged::size) + self.1.as_ref().map_or(0, Paged::size)
    }
}

/// The items taken in order while they fit in `room` bytes, and the name
/// of the first left out, if any was.
pub(crate) fn fill<T: Paged>(
    items: impl IntoIterator<Item = T>,
    room: usize,
) -> (Vec<T>, Option<Arc<str>>) {
    let mut taken = Vec::new();
    let mut left = room;
    for item in items {
        let size = item.size();
        if size > left {
            return (taken, Some(item.cursor()));
        }
        left -= size;
        taken.push(item);
    }
    (taken, None)
}

/// Membership lines and namespace digest lines (each in the same page
/// order) merged name by name: a name with both comes once, with both.
pub(crate) fn side_by_side<'a>(
    page: &'a Page,
    lines: impl Iterator<Item = MemberLine> + 'a,
    entries: impl Iterator<Item = DigestEntry> + 'a,
) -> impl Iterator<Item = Lines> + 'a {
    let mut lines = lines.peekable();
    let mut entries = entries.peekable();
    std::iter::from_fn(move || {
        let first = match (lines.peek(), entries.peek()) {
            (None, None) => return None,
            (Some(l), None) => l.name.clone(),
            (None, Some(e)) => e.owner.clone(),
            (Some(l), Some(e)) => {
                if page.order(&l.name) <= page.order(&e.owner) {
                    l.name.clone()
                } else {
                    e.owner.clone()
                }
            }
        };
        let line = lines.next_if(|l| l.name == first);
        let entry = entries.next_if(|e| e.owner == first);
        Some((line, entry))
    })
}

/// Whether `to`, where an answer to `sent` says it stopped, lies inside
/// `sent` past its start: a cut the sender of `sent` can go on from.
pub(crate) fn cut_within(sent: &Page, to: &str) -> bool {
    to != &*sent.from && sent.contains(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::*;
    use crate::{Config, Message, PushPullKind};

    /// Small messages: a member's signed news is some 150 bytes, so a
    /// message of this size holds three or four.
    fn small(max_message_size: usize) -> Config {
        Config {
            max_message_size,
            max_key_len: 32,
            max_value_len: 64,
            ..Config::local()
        }
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:02}")).collect()
    }

    /// Every push-pull `from` sent so far fitted in `max` bytes.
    fn all_fit(h: &Harness, from: &str, max: usize) {
        for s in h.messages(from, "*", "push-pull") {
            let len = wire::message_len(&h.addr(&s.from), &s.msg);
            assert!(len <= max, "{} bytes from {}: {:?}", len, s.from, s.msg);
        }
    }

    /// Everyone in `names` writes `keys` entries, and `h` runs until they
    /// all hold every one.
    fn write_and_spread(h: &mut Harness, names: &[String], keys: usize) {
        for n in names {
            for k in 0..keys {
                h.act(n, |node, now| {
                    node.put(now, &format!("k{k}"), b"v").unwrap()
                });
            }
        }
        h.wait_for(secs(30), "every record everywhere", |h| {
            names.iter().all(|a| {
                names
                    .iter()
                    .all(|b| h.node(a).namespace_version(b) == Some((0, keys as u64)))
            })
        });
    }

    fn page(from: &str, to: Option<&str>) -> Page {
        Page {
            from: Arc::from(from),
            to: to.map(Arc::from),
        }
    }

    #[test]
    fn a_page_wraps_past_the_last_name() {
        let p = page("m", Some("c"));
        for inside in ["m", "n", "zz", "a", "b"] {
            assert!(p.contains(inside), "{inside}");
        }
        for outside in ["c", "d", "l"] {
            assert!(!p.contains(outside), "{outside}");
        }
        let plain = page("c", Some("m"));
        assert!(plain.contains("c") && plain.contains("l"));
        assert!(!plain.contains("m") && !plain.contains("a"));
        assert!(page("x", None).contains("y") && !page("x", None).contains("a"));
        assert!(page("x", Some("x")).contains("a"), "all the way round");
        assert!(cut_within(&p, "a") && !cut_within(&p, "m") && !cut_within(&p, "d"));
    }

    #[test]
    fn fill_stops_at_the_first_that_does_not_fit() {
        let line = |n: &str| MemberLine {
            name: Arc::from(n),
            incarnation: crate::Incarnation(0),
            state: crate::MemberState::Alive,
        };
        let size = line("a").size();
        let (taken, cut) = fill(["a", "b", "c"].map(line), 2 * size);
        assert_eq!(taken.len(), 2);
        assert_eq!(cut.as_deref(), Some("c"));
        let (taken, cut) = fill(["a", "b"].map(line), 2 * size);
        assert_eq!((taken.len(), cut), (2, None));
    }

    /// 30 nodes that know each other, each holding 2 entries, with
    /// 1,400-byte messages, and a stranger "new"; the 30 names.
    fn thirty_and_a_newcomer() -> (Harness, Vec<String>) {
        let old = names("n", 30);
        let mut all: Vec<&str> = old.iter().map(String::as_str).collect();
        all.push("new");
        let mut h = Harness::strangers(&all, small(1400));
        h.introduce_all(&old);
        write_and_spread(&mut h, &old, 2);
        (h, old)
    }

    #[test]
    fn a_newcomer_gets_membership_and_data_in_pages() {
        // Scenario: 30 nodes, each holding 2 entries, with 1,400-byte messages; a newcomer joins
        // through one of them. Its join's answer cannot hold 30 members' signed news (some 150
        // bytes each) nor 60 records, so the seed cuts it short and says where; the newcomer goes
        // on page by page. Nothing else brings it old members (they are not rumoured), so holding
        // every member and record within 200 ms can only come from the pages; every push-pull
        // fits in 1,400 bytes.
        let (mut h, old) = thirty_and_a_newcomer();
        let seed = h.addr("n00");
        h.act("new", |n, now| n.join(now, &[seed])).unwrap();
        h.wait_for(ms(200), "the newcomer holding everything", |h| {
            h.node("new").members().count() == 31
                && old
                    .iter()
                    .all(|b| h.node("new").namespace_version(b) == Some((0, 2)))
        });
        assert!(
            h.node("new").stats().pages_sent >= 3,
            "{:?}",
            h.node("new").stats()
        );
        let cut_short = h
            .messages("n00", "new", "push-pull/reply")
            .iter()
            .filter(|s| {
                push_pull(&s.msg)
                    .page
                    .as_ref()
                    .is_some_and(|p| p.to.is_some())
            })
            .count();
        assert!(cut_short >= 3);
        all_fit(&h, "*", 1400);
    }

    /// `a_newcomer_gets_membership_and_data_in_pages`'s scenario, with the
    /// first copy of one message of the newcomer's walk lost: its first
    /// page after the join's answer (`reply`: n00's answer to that page
    /// instead; the join's own answer is the join's retry's to repair). Whether the newcomer held everything within `within` of
    /// its join, and how many pages it sent again.
    fn a_walk_with_one_message_lost(reply: bool, within: std::time::Duration) -> (bool, u64) {
        let (mut h, old) = thirty_and_a_newcomer();
        // The join's own answer is the first reply; the answer to the
        // walk's first page the second.
        let (f, t, k, nth) = if reply {
            ("n00", "new", "push-pull/reply", 2)
        } else {
            ("new", "n00", "push-pull/sync", 1)
        };
        let seen = std::rc::Rc::new(std::cell::Cell::new(0));
        let count = seen.clone();
        h.drop_where(move |from, to, m| {
            let hit = from == f && to == t && kind(m) == k;
            if hit {
                count.set(count.get() + 1);
            }
            hit && count.get() == nth
        });
        let seed = h.addr("n00");
        h.act("new", |n, now| n.join(now, &[seed])).unwrap();
        h.run_for(within);
        assert!(seen.get() >= nth, "a message of the walk was lost");
        let done = h.node("new").members().count() == 31
            && old
                .iter()
                .all(|b| h.node("new").namespace_version(b) == Some((0, 2)));
        (done, h.node("new").stats().pages_resent)
    }

    #[test]
    fn a_page_or_answer_lost_on_the_way_goes_again_and_the_walk_goes_on() {
        // Scenario: see `a_walk_with_one_message_lost`. A page whose answer has not come within a
        // quarter gossip interval (25 ms on `local`) goes again, so the newcomer holds every
        // member and record within 60 ms whichever of the two was lost. Without the resend its
        // walk stopped at the loss, and what the later pages held waited for the walk of its
        // seed a gossip interval (100 ms) after the answer.
        for reply in [false, true] {
            let (done, resent) = a_walk_with_one_message_lost(reply, ms(60));
            assert!(done, "reply lost: {reply}, pages sent again: {resent}");
            assert_eq!(resent, 1, "reply lost: {reply}");
        }
    }

    #[test]
    fn an_owner_cut_short_is_gone_on_from_not_skipped() {
        // Scenario: "a" holds 20 entries, more than one 600-byte message holds, and ten nodes
        // after it in name order hold one each; a newcomer joins through n00. The answer to the
        // page starting at "a" is cut inside a's delta, so it must end at "a" itself and cover
        // nothing after it: the newcomer asks for the same page again and gets the rest of a,
        // then every owner after it. Holding everything within 100 ms (the next push-pull is
        // 500 ms away, and old records are not rumoured) shows that no owner was passed over,
        // and no delta arrived ahead of the versions held.
        let mut old = vec!["a".to_string()];
        old.extend(names("n", 10));
        let mut all: Vec<&str> = old.iter().map(String::as_str).collect();
        all.push("z");
        let mut h = Harness::strangers(&all, small(600));
        h.introduce_all(&old);
        write_and_spread(&mut h, &old[..1], 20);
        write_and_spread(&mut h, &old[1..], 1);
        h.wait_for(secs(30), "a's entries everywhere", |h| {
            old.iter()
                .all(|x| h.node(x).namespace_version("a") == Some((0, 20)))
        });
        let seed = h.addr("n00");
        h.act("z", |n, now| n.join(now, &[seed])).unwrap();
        h.wait_for(ms(100), "the newcomer holding everything", |h| {
            h.node("z").namespace_version("a") == Some((0, 20))
                && old[1..]
                    .iter()
                    .all(|b| h.node("z").namespace_version(b) == Some((0, 1)))
        });
        let cut_at_a = h.messages("n00", "z", "push-pull/reply").iter().any(|s| {
            push_pull(&s.msg)
                .page
                .as_ref()
                .is_some_and(|p| &*p.from == "a" && p.to.as_deref() == Some("a"))
        });
        assert!(cut_at_a, "no answer was cut inside a's delta");
        assert_eq!(h.node("z").stats().deltas_gap, 0);
        all_fit(&h, "*", 600);
    }

    #[test]
    fn two_groups_merge_by_paged_digests() {
        // Scenario: two groups of 20 that have never met, each holding its own records, with
        // 600-byte messages, so that neither a membership digest (40 lines) nor a namespace
        // digest fits one message. One node of each is introduced to the other; push-pulls
        // exchange paged digests (Sync pages carrying member lines and digest lines, cut
        // answers gone on from), and every node ends up knowing all 40 members and holding all
        // 40 namespaces; every push-pull fits in 600 bytes.
        let (a, b) = (names("a", 20), names("b", 20));
        let all: Vec<&str> = a.iter().chain(&b).map(String::as_str).collect();
        let mut h = Harness::strangers(&all, small(600));
        for group in [&a, &b] {
            h.introduce_all(group);
            write_and_spread(&mut h, group, 1);
        }
        h.introduce("a00", "b00");
        h.introduce("b00", "a00");
        h.wait_for(secs(120), "both groups merged", |h| {
            all.iter().all(|x| {
                h.node(x).alive_members() == 40
                    && all
                        .iter()
                        .all(|y| h.node(x).namespace_version(y) == Some((0, 1)))
            })
        });
        let syncs = h.messages("*", "*", "push-pull/sync");
        let paged = |digest: fn(&crate::PushPull) -> bool| {
            syncs.iter().any(|s| {
                let p = push_pull(&s.msg);
                p.page.as_ref().is_some_and(|g| g.to.is_some()) && digest(p)
            })
        };
        assert!(
            paged(|p| p.member_digest.is_some()),
            "no paged membership digest"
        );
        assert!(paged(|p| p.digest.is_some()), "no paged namespace digest");
        let pages: u64 = all.iter().map(|x| h.node(x).stats().pages_sent).sum();
        assert!(pages > 0);
        all_fit(&h, "*", 600);
    }

    #[test]
    fn a_page_that_answers_none_sent_is_ignored_and_counted() {
        // Scenario: a reply carrying a page reaches a from an address a never sent a page to
        // (unasked, or a stale exchange), twice. a does not go on from it: no Sync follows to
        // that address, and both are counted in pages_ignored.
        let mut h = Harness::new(&["a"]);
        let stranger: std::net::SocketAddr = "10.0.0.9:7946".parse().unwrap();
        let reply = crate::PushPull {
            kind: PushPullKind::Reply,
            page: Some(Page {
                from: Arc::from("m"),
                to: Some(Arc::from("p")),
            }),
            ..Default::default()
        };
        for _ in 0..2 {
            h.inject(stranger, "a", Message::push_pull(reply.clone()));
        }
        h.run_for(ms(100));
        assert_eq!(h.node("a").stats().pages_ignored, 2);
        assert_eq!(h.sent("a", "*", "push-pull/sync"), 0);
    }

    #[test]
    fn a_digest_over_the_limit_is_cut_and_counted() {
        // Scenario: a Sync whose membership digest lists more lines than a 1,400-byte message
        // could hold (an honest sender pages it) reaches a. a cuts it to the limit before use,
        // counts it in digests_truncated, and its Reply still fits in one message.
        let mut h = Harness::with_config(&["a", "b"], small(1400));
        let lines = (0..1400 / 6 + 50)
            .map(|i| MemberLine {
                name: Arc::from(format!("x{i}")),
                incarnation: crate::Incarnation(0),
                state: crate::MemberState::Alive,
            })
            .collect();
        let sync = crate::PushPull {
            kind: PushPullKind::Sync,
            summary: 1,
            member_digest: Some(lines),
            ..Default::default()
        };
        let b = h.addr("b");
        h.inject(b, "a", Message::push_pull(sync));
        h.run_for(ms(50));
        assert_eq!(h.node("a").stats().digests_truncated, 1);
        assert!(h.sent("a", "b", "push-pull/reply") >= 1);
        all_fit(&h, "a", 1400);
    }
}
