//! chitchat's own UDP transport with the bench's send path in front.
//!
//! `BenchTransport::open` opens chitchat's `UdpTransport` socket and wraps
//! it: a send first passes the loss hook, then goes to chitchat's socket,
//! which serializes the envelope into one datagram and reports its size.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpTransport};
use chitchat::ChitchatEnvelope;

use crate::link::{Counters, Link};

pub struct BenchTransport {
    seed: u64,
    loss: f64,
    counters: Arc<Counters>,
    opened: AtomicU64,
}

impl BenchTransport {
    pub fn new(seed: u64, loss: f64, counters: Arc<Counters>) -> BenchTransport {
        BenchTransport {
            seed,
            loss,
            counters,
            opened: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Transport for BenchTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inner = UdpTransport.open(listen_addr).await?;
        let index = self.opened.fetch_add(1, Relaxed);
        let link = Link::new(self.seed, index, self.loss, self.counters.clone());
        Ok(Box::new(LossySocket { inner, link }))
    }
}

struct LossySocket {
    inner: Box<dyn Socket>,
    link: Link,
}

#[async_trait]
impl Socket for LossySocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        if !self.link.admit() {
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        match self.inner.send(to, envelope).await {
            Ok(outcome) => {
                self.link.sent(outcome.num_bytes_sent);
                Ok(outcome)
            }
            Err(e) => {
                self.link.failed();
                Err(e)
            }
        }
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        self.inner.recv().await
    }
}
