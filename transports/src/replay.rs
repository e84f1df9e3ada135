//! The replay window: a sealed envelope is taken at most once.
//!
//! Every sealed envelope carries, bound into its associated data, the wall
//! clock time its sender sealed it at (Unix milliseconds), and its nonce is
//! the sender's 16-byte prefix (drawn once per agent start: one sender
//! life) followed by a 64-bit counter. A receiver takes an envelope that
//! opened only if
//!
//! 1. its send time is within [`REPLAY_WINDOW`] of the receiver's clock,
//!    either way, and
//! 2. its counter was not seen before from that prefix: per prefix the
//!    window keeps the highest counter seen and a bitmap of the
//!    [`REORDER_TOLERANCE`] counters below it (the sliding window of IPsec
//!    and WireGuard); a counter further below is refused as well, since it
//!    can no longer be told apart from one already taken.
//!
//! What it must never do: remember more than [`MAX_SENDERS`] prefixes, or
//! let a forgotten prefix be replayed. A prefix whose newest envelope was
//! sent more than a window ago is dropped when room is needed (and swept
//! once per window): every envelope taken from it was sent no later than
//! that newest one, so a replay of any of them is now outside the time
//! window and refused by rule 1. If every prefix held is recent and a new
//! one arrives, the one whose newest envelope is oldest is dropped and its
//! newest send time becomes a floor: an unknown prefix is then taken only
//! for envelopes sent after the floor, which again covers every envelope
//! taken from what was dropped. Only envelopes that opened with a cluster
//! key reach the window, so only key holders can add prefixes.
//!
//! The receiver's clock is made monotonic here (the highest reading seen),
//! so that a clock stepped back cannot reopen the window for envelopes it
//! had already left behind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How far a sealed envelope's send time may be from the receiver's clock,
/// either way. Agents whose clocks are further apart than this cannot talk
/// (their envelopes are refused as `rejected_stale`, and logged).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(60);

/// Bits of one sender's bitmap. The window tolerates envelopes of one
/// sender arriving up to `REORDER_TOLERANCE` counters out of order: a
/// sender's counter counts what it seals for every peer, and two streams of
/// one sender to one receiver (a link replaced while the old one drains)
/// can interleave.
const WINDOW_BITS: u64 = 8192;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// How many counters below the highest one seen are still told apart
/// (the bitmap less one word, which is cleared as the window slides).
pub const REORDER_TOLERANCE: u64 = WINDOW_BITS - 64;

/// Most sender lives (nonce prefixes) remembered at once: at 1 KiB of
/// bitmap each, about 4 MiB at most.
pub const MAX_SENDERS: usize = 4096;

/// Bytes of the part of a nonce that names a sender life.
pub const PREFIX_LEN: usize = 16;

/// Where one envelope stands: who sealed it (nonce prefix), its counter,
/// and when it was sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) prefix: [u8; PREFIX_LEN],
    pub(crate) counter: u64,
    pub(crate) sent_unix_ms: u64,
}

/// Why the window refused an envelope that opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Sent outside the window of this node's clock: an old capture
    /// replayed, or clocks too far apart. Counted as `rejected_stale`.
    Stale { sent_unix_ms: u64, now_unix_ms: u64 },
    /// Its counter was taken before, or is too far below the newest to
    /// tell, or its sender was forgotten for want of room and it is not
    /// newer than what was forgotten. Counted as `rejected_replayed`.
    Replayed(&'static str),
}

/// Which envelopes were taken, per sender life, in bounded memory.
pub(crate) struct ReplayWindow {
    state: Mutex<Senders>,
}

struct Senders {
    by_prefix: HashMap<[u8; PREFIX_LEN], Sender>,
    window_ms: u64,
    capacity: usize,
    /// The highest clock reading seen (Unix ms).
    now_ms: u64,
    /// When stale senders were last swept.
    swept_ms: u64,
    /// Envelopes of unknown senders sent at or before this are refused.
    floor_ms: u64,
}

struct Sender {
    top: u64,
    bits: Box<[u64; WORDS]>,
    newest_ms: u64,
}

impl Sender {
    fn new(counter: u64, sent_ms: u64) -> Sender {
        let mut s = Sender {
            top: counter,
            bits: Box::new([0; WORDS]),
            newest_ms: sent_ms,
        };
        s.set(counter);
        s
    }

    fn set(&mut self, counter: u64) -> bool {
        let word = &mut self.bits[((counter / 64) % WORDS as u64) as usize];
        let bit = 1u64 << (counter % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    /// Take `counter` if it is new; false if it was taken or is too old.
    fn admit(&mut self, counter: u64) -> Result<(), &'static str> {
        if counter > self.top {
            // Clear the words the window slides over (at most all of them).
            let (from, to) = (self.top / 64, counter / 64);
            for w in (from + 1)..=to.min(from + WORDS as u64) {
                self.bits[(w % WORDS as u64) as usize] = 0;
            }
            self.top = counter;
        } else if self.top - counter >= REORDER_TOLERANCE {
            return Err("older than the replay window's bitmap can tell apart");
        }
        if self.set(counter) {
            Ok(())
        } else {
            Err("a counter already taken from this sender")
        }
    }
}

impl ReplayWindow {
    /// A window of [`REPLAY_WINDOW`] remembering at most [`MAX_SENDERS`]
    /// sender lives.
    pub(crate) fn new() -> ReplayWindow {
        ReplayWindow::with(REPLAY_WINDOW, MAX_SENDERS)
    }

    pub(crate) fn with(window: Duration, capacity: usize) -> ReplayWindow {
        ReplayWindow {
            state: Mutex::new(Senders {
                by_prefix: HashMap::new(),
                window_ms: window.as_millis() as u64,
                capacity: capacity.max(1),
                now_ms: 0,
                swept_ms: 0,
                floor_ms: 0,
            }),
        }
    }

    /// Take the envelope stamped `stamp` (one that opened), at the
    /// receiver's wall clock `now_unix_ms`, or say why not. Taking it is
    /// remembered; a refusal changes nothing.
    pub(crate) fn admit(&self, stamp: Stamp, now_unix_ms: u64) -> Result<(), Replay> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.now_ms = s.now_ms.max(now_unix_ms);
        let now = s.now_ms;
        let sent = stamp.sent_unix_ms;
        if sent.saturating_add(s.window_ms) < now || sent > now.saturating_add(s.window_ms) {
            return Err(Replay::Stale {
                sent_unix_ms: sent,
                now_unix_ms: now,
            });
        }
        if let Some(sender) = s.by_prefix.get_mut(&stamp.prefix) {
            sender.admit(stamp.counter).map_err(Replay::Replayed)?;
            sender.newest_ms = sender.newest_ms.max(sent);
            return Ok(());
        }
        if sent <= s.floor_ms {
            return Err(Replay::Replayed(
                "from a sender forgotten for want of room, and not newer than what was forgotten",
            ));
        }
        if s.by_prefix.len() >= s.capacity || now.saturating_sub(s.swept_ms) >= s.window_ms {
            s.sweep();
        }
        if s.by_prefix.len() >= s.capacity {
            s.evict_oldest();
        }
        s.by_prefix
            .insert(stamp.prefix, Sender::new(stamp.counter, sent));
        Ok(())
    }

    /// How many sender lives are remembered.
    #[cfg(test)]
    pub(crate) fn senders(&self) -> usize {
        self.state.lock().unwrap().by_prefix.len()
    }
}

impl Senders {
    /// Forget senders whose newest envelope is outside the window: their
    /// replays are refused as stale.
    fn sweep(&mut self) {
        let (now, window) = (self.now_ms, self.window_ms);
        self.by_prefix
            .retain(|_, s| s.newest_ms.saturating_add(window) >= now);
        self.swept_ms = now;
    }

    /// Forget the sender whose newest envelope is oldest, and refuse from
    /// unknown senders whatever is not newer than it.
    fn evict_oldest(&mut self) {
        let oldest = self
            .by_prefix
            .iter()
            .min_by_key(|(_, s)| s.newest_ms)
            .map(|(p, s)| (*p, s.newest_ms));
        if let Some((prefix, newest)) = oldest {
            self.by_prefix.remove(&prefix);
            self.floor_ms = self.floor_ms.max(newest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn stamp(p: u8, counter: u64, sent: u64) -> Stamp {
        Stamp {
            prefix: [p; PREFIX_LEN],
            counter,
            sent_unix_ms: sent,
        }
    }

    #[test]
    fn a_counter_is_taken_once_and_reordering_within_the_window_is_taken() {
        let w = ReplayWindow::new();
        // A sender's envelopes arrive out of order (two streams
        // interleaving): each is taken once, every second copy refused.
        let mut order: Vec<u64> = (0..20_000).collect();
        for chunk in order.chunks_mut(97) {
            chunk.reverse();
        }
        order.swap(500, 5_000); // 4,500 counters late: within tolerance
        for &c in &order {
            assert_eq!(w.admit(stamp(1, c, T0), T0), Ok(()), "counter {c}");
        }
        for &c in &order[order.len() - 200..] {
            assert!(matches!(
                w.admit(stamp(1, c, T0), T0),
                Err(Replay::Replayed(_))
            ));
        }
        // A counter more than the tolerance behind the newest is refused,
        // as it can no longer be told apart from one taken.
        let w = ReplayWindow::new();
        w.admit(stamp(1, REORDER_TOLERANCE + 10, T0), T0).unwrap();
        assert!(w.admit(stamp(1, 10, T0), T0).is_err());
        assert_eq!(w.admit(stamp(1, 11, T0), T0), Ok(()));
        // A jump far ahead clears the bitmap: nothing old shows as taken.
        w.admit(stamp(1, 1 << 40, T0), T0).unwrap();
        assert_eq!(w.admit(stamp(1, (1 << 40) - 1, T0), T0), Ok(()));
        // Another sender life has counters of its own.
        assert_eq!(w.admit(stamp(2, 11, T0), T0), Ok(()));
    }

    #[test]
    fn an_envelope_sent_outside_the_window_is_refused_either_way() {
        let w = ReplayWindow::new();
        let win = REPLAY_WINDOW.as_millis() as u64;
        assert_eq!(w.admit(stamp(1, 0, T0 - win), T0), Ok(()));
        assert_eq!(w.admit(stamp(1, 1, T0 + win), T0), Ok(()));
        for sent in [T0 - win - 1, T0 + win + 1, 0] {
            assert_eq!(
                w.admit(stamp(1, 2, sent), T0),
                Err(Replay::Stale {
                    sent_unix_ms: sent,
                    now_unix_ms: T0
                })
            );
        }
        // A clock stepped back does not reopen the window.
        assert!(matches!(
            w.admit(stamp(3, 0, T0 - win - 1), T0 - 10 * win),
            Err(Replay::Stale { .. })
        ));
    }

    #[test]
    fn memory_is_bounded_and_a_forgotten_sender_cannot_be_replayed() {
        let win = REPLAY_WINDOW.as_millis() as u64;
        let w = ReplayWindow::with(REPLAY_WINDOW, 8);
        // Eight senders fill the window; a ninth, all of them recent,
        // evicts the one whose newest envelope is oldest (sender 0).
        for p in 0..8u8 {
            w.admit(stamp(p, 5, T0 + u64::from(p)), T0).unwrap();
        }
        w.admit(stamp(100, 0, T0 + 100), T0 + 100).unwrap();
        assert_eq!(w.senders(), 8);
        // Sender 0's envelope again: forgotten, but not newer than the
        // floor, so refused.
        assert!(matches!(
            w.admit(stamp(0, 5, T0), T0 + 100),
            Err(Replay::Replayed(_))
        ));
        // Sender 0 goes on with newer envelopes: taken again.
        assert_eq!(w.admit(stamp(0, 6, T0 + 101), T0 + 101), Ok(()));
        // Many senders over many windows: never more than the capacity,
        // and once a window passes the old ones are swept, not evicted.
        for i in 0..10_000u64 {
            let now = T0 + 200 + i * (win / 100);
            let p = (i % 251) as u8;
            let _ = w.admit(stamp(p, i, now), now);
            assert!(w.senders() <= 8);
        }
        let later = T0 + 200 + 10_000 * (win / 100) + 2 * win;
        w.admit(stamp(255, 0, later), later).unwrap();
        assert_eq!(w.senders(), 1, "every other sender was outside the window");
        // Every one of them is then refused by the time window.
        assert!(matches!(
            w.admit(stamp(3, 0, later - 2 * win), later),
            Err(Replay::Stale { .. })
        ));
    }
}
