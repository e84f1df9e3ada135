//! The agent's heap trim returns free chunks that pinned blocks scatter.
//!
//! This reads the whole process's RSS, so it runs alone: its own test
//! binary, no harness, on the main thread (glibc's main arena, where freed
//! chunks stay resident until trimmed). Beside other tests, their threads'
//! frees and trims moved the figure it reads.

// The agent's schedule is not used here.
#[allow(dead_code)]
#[path = "../src/heap.rs"]
mod heap;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn main() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        println!("heap_trim: skipped, trimming is glibc's");
        return;
    }
    // 64 MiB in 64 KiB blocks (below glibc's mmap threshold, so in the
    // arena), each with a small block kept beside it: once the big ones are
    // freed, the small ones pin the arena, and only a trim returns the free
    // pages between them.
    let mut big: Vec<Vec<u8>> = Vec::new();
    let mut kept: Vec<Box<u64>> = Vec::new();
    for i in 0..1024u64 {
        big.push(vec![i as u8 | 1; 64 * 1024]);
        kept.push(Box::new(i));
    }
    drop(big);
    let before = rss_kib();
    heap::trim();
    let after = rss_kib();
    assert!(
        before.saturating_sub(after) > 32 * 1024,
        "RSS {before} KiB before the trim, {after} KiB after"
    );
    assert_eq!(kept.iter().map(|b| **b).sum::<u64>(), 1023 * 1024 / 2);
    println!("heap_trim: RSS {before} KiB before the trim, {after} KiB after: ok");
}
