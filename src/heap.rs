//! Handing freed heap memory back to the system.
//!
//! glibc's allocator keeps what is freed inside its arenas for reuse, and
//! gives back only what sits at an arena's top. An agent that served a
//! burst (a seed answering a cold start's joins, each answer some tens of
//! KiB on a connection of its own) is left with arenas full of free but
//! scattered chunks: at 200 agents the seed still held 42 MiB after 10
//! idle minutes, and in another run `malloc_trim(0)`, called in the seed
//! 75 s after the bench started, took it from 41.7 to 17.0 MiB at once
//! (an agent that served nothing holds about 14). So the agent trims its
//! heap on a schedule.
//!
//! This is the workspace's one use of `unsafe`: a call into the C library
//! that takes no pointers.

#![allow(unsafe_code)]

use std::time::Duration;

/// How often the agent trims its heap: trimming walks the free chunks
/// (well under a millisecond for an agent's heap), and what a burst left
/// is returned within this long.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Return the free pages of every arena to the system (glibc's
/// `malloc_trim(0)`); a no-op elsewhere.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and locks each arena it walks,
    // so it may run beside any allocation on any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    #[test]
    fn trimming_returns_scattered_free_chunks() {
        // 64 MiB in 64 KiB blocks (below glibc's mmap threshold, so in
        // the arena), each with a small block kept beside it: once the big
        // ones are freed, the small ones pin the arena, and only a trim
        // returns the free pages between them.
        let mut big: Vec<Vec<u8>> = Vec::new();
        let mut kept: Vec<Box<u64>> = Vec::new();
        for i in 0..1024u64 {
            big.push(vec![i as u8 | 1; 64 * 1024]);
            kept.push(Box::new(i));
        }
        drop(big);
        let before = rss_kib();
        trim();
        let after = rss_kib();
        assert!(
            before.saturating_sub(after) > 32 * 1024,
            "RSS {before} KiB before the trim, {after} KiB after"
        );
        assert_eq!(kept.iter().map(|b| **b).sum::<u64>(), 1023 * 1024 / 2);
    }
}
