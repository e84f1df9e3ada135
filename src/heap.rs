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
