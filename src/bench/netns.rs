//! Real loss and a real partition for `rumour bench --versus-sim`:
//! nftables rules on loopback, in a network namespace of the bench's own.
//!
//! With `--loss` or `--partition-secs` the bench runs itself again under
//! `unshare --net` (util-linux), so that its rules, its agents and their
//! loopback live and die in a namespace nothing else uses; it needs root,
//! and `ip` and `nft` as the netns tests do.
//!
//! - **Loss** drops each packet to or from an agent's peer port with the
//!   given probability, once per packet: a datagram, a stream's segment or
//!   its acknowledgement (then TCP retransmits it). Client API traffic goes
//!   untouched.
//! - **A partition** needs to know which agent sent a packet, and on one
//!   loopback a stream's client side is an ephemeral port of any agent. So
//!   each agent runs under a user id of its own (its side's range), and a
//!   packet sent by one side's process to the other side's peer port is
//!   dropped: every datagram and every stream's data crossing the cut.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

/// Set in the environment of the bench run inside the namespace.
const INSIDE: &str = "RUMOUR_BENCH_NETNS";

/// User ids of the agents when a partition is asked for: agent i runs
/// as `UID_BASE + i`.
pub(super) const UID_BASE: u32 = 47_000;

/// Run this bench again in a network namespace of its own and return its
/// exit code, or `None` if this already is that run (loopback brought up).
pub(super) fn enter() -> Result<Option<ExitCode>, String> {
    if std::env::var_os(INSIDE).is_some() {
        run(Command::new("ip").args(["link", "set", "lo", "up"]), "ip")?;
        return Ok(None);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()
        .map_err(|e| {
            format!("--loss and --partition-secs run the agents in a network namespace of their own through `unshare --net` (util-linux), which did not start: {e}")
        })?;
    Ok(Some(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| {
        format!("`{what}` did not start (needs iproute2 and nftables, and root): {e}")
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{what}` failed (needs root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One side of a partition: the agents' user ids and their peer ports.
pub(super) struct Side {
    pub uids: std::ops::Range<u32>,
    pub ports: Vec<u16>,
}

/// The rules of the bench's namespace: `loss_percent` of the packets on
/// `peers` dropped, and with `cut`, everything one side sends to the
/// other's peer ports.
pub(super) fn set(
    loss_percent: u32,
    peers: &[u16],
    cut: Option<(&Side, &Side)>,
) -> Result<(), String> {
    let list = |ports: &[u16]| {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut script =
        String::from("table inet bench\ndelete table inet bench\ntable inet bench {\n");
    script.push_str(&format!(
        " set peers {{ type inet_service; elements = {{ {} }} }}\n",
        list(peers)
    ));
    script.push_str(" chain out {\n  type filter hook output priority 0; policy accept;\n");
    if let Some((a, b)) = cut {
        for (from, to) in [(a, b), (b, a)] {
            script.push_str(&format!(
                "  meta l4proto {{ tcp, udp }} meta skuid {}-{} th dport {{ {} }} drop\n",
                from.uids.start,
                from.uids.end - 1,
                list(&to.ports)
            ));
        }
    }
    if loss_percent > 0 {
        // To a peer port (datagrams, and what a stream's client sends),
        // then from one to elsewhere (what a stream's server sends back):
        // each packet is drawn once.
        script.push_str(&format!(
            "  meta l4proto {{ tcp, udp }} th dport @peers numgen random mod 100 < {loss_percent} drop\n\
             \x20 meta l4proto {{ tcp, udp }} th sport @peers th dport != @peers numgen random mod 100 < {loss_percent} drop\n"
        ));
    }
    script.push_str(" }\n}\n");
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`nft` did not start (needs nftables, and root): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("cannot feed nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("nft did not end: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft refused the bench's rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
