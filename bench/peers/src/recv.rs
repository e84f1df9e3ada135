//! The receive path of the rumour and foca drivers: a datagram is read into
//! the worker thread's buffer, not one of each node's own.
//!
//! A node's task waits for its socket to be readable and then takes what
//! is there without waiting. A buffer owned by each task (64 KiB, to hold
//! the largest datagram) stays resident as far as the largest datagram the
//! node ever received reached into it: with n nodes in one process that is
//! memory of the driver, not of the system measured, and it grows with the
//! system's largest message rather than with its state. One buffer per
//! worker thread serves every node.

use std::cell::RefCell;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Inbound datagrams over this are refused before decoding.
pub const MAX_DATAGRAM: usize = 65_536;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0u8; MAX_DATAGRAM]);
}

/// Take one datagram waiting on `socket`, if any, and hand it to `take`
/// with its sender. `None` when nothing waits (a readiness that was
/// spurious, or everything already taken).
pub fn try_take<R>(socket: &UdpSocket, take: impl FnOnce(&[u8], SocketAddr) -> R) -> Option<R> {
    BUFFER.with_borrow_mut(|buf| {
        let (len, from) = socket.try_recv_from(buf).ok()?;
        Some(take(&buf[..len], from))
    })
}
