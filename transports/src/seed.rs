//! Seeds given as `ip:port` or `host:port`, and how names are resolved.
//!
//! A seed that is an address is used as it is. A seed that is a name is
//! resolved at start and again on every retry, and every address it
//! resolves to is used: a headless Kubernetes service resolves to every
//! pod behind it, the asking pod included (the node skips its own
//! address). A name that does not resolve yet is not an error: the first
//! pod of a StatefulSet starts before its DNS record is published.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use thiserror::Error;

/// A seed as given, checked for shape: an address, or a name and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seed {
    /// An `ip:port` (`[v6]:port` for IPv6).
    Addr(SocketAddr),
    /// A `host:port`, resolved each time the seeds are tried.
    Name {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

/// Why a seed is malformed. A name that does not resolve is not one of
/// these: it may resolve later.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SeedError {
    /// No `:port` at the end.
    #[error("no port: give host:port or ip:port (IPv6 as [addr]:port)")]
    NoPort,
    /// The port is not a number from 1 to 65535.
    #[error("bad port {0:?}: a number from 1 to 65535")]
    BadPort(String),
    /// Nothing before the port.
    #[error("no host before the port")]
    NoHost,
    /// The host is not a DNS name (nor an IP address).
    #[error("bad host {0:?}: letters, digits, '-', '_' and '.' only (IPv6 as [addr]:port)")]
    BadHost(String),
}

impl std::str::FromStr for Seed {
    type Err = SeedError;

    /// Parse `ip:port`, `[v6]:port` or `host:port`.
    fn from_str(s: &str) -> Result<Seed, SeedError> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return if addr.port() == 0 {
                Err(SeedError::BadPort("0".into()))
            } else {
                Ok(Seed::Addr(addr))
            };
        }
        let (host, port) = s.rsplit_once(':').ok_or(SeedError::NoPort)?;
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 && !port.starts_with('+') => p,
            _ => return Err(SeedError::BadPort(port.to_string())),
        };
        if host.is_empty() {
            return Err(SeedError::NoHost);
        }
        let name_like = host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && host.split('.').all(|label| label.len() <= 63)
            && !host.starts_with(['.', '-'])
            && !host.contains("..");
        if !name_like {
            return Err(SeedError::BadHost(host.to_string()));
        }
        Ok(Seed::Name {
            host: host.to_string(),
            port,
        })
    }
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seed::Addr(a) => write!(f, "{a}"),
            Seed::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// What a resolver returns: the addresses a name resolves to now.
pub type Resolved = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;

type ResolveFn = dyn Fn(&str, u16) -> Resolved + Send + Sync;

/// How seed names are turned into addresses: the system's resolver
/// (`getaddrinfo`, so DNS and `/etc/hosts`) unless told otherwise. Another
/// one serves other discovery, or a test that publishes names late.
#[derive(Clone)]
pub struct SeedResolver(Option<Arc<ResolveFn>>);

impl SeedResolver {
    /// The system's resolver.
    pub fn system() -> SeedResolver {
        SeedResolver(None)
    }

    /// A resolver of `f(host, port)`: every address it gives is a seed.
    pub fn new(f: impl Fn(&str, u16) -> Resolved + Send + Sync + 'static) -> SeedResolver {
        SeedResolver(Some(Arc::new(f)))
    }

    /// Every address `host:port` resolves to now, in the order given,
    /// without repeats. An empty answer is an error of kind `NotFound`.
    pub async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let found: Vec<SocketAddr> = match &self.0 {
            None => tokio::net::lookup_host((host, port)).await?.collect(),
            Some(f) => f(host, port).await?,
        };
        let mut out = Vec::with_capacity(found.len());
        for a in found {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        if out.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "resolves to no address",
            ));
        }
        Ok(out)
    }
}

impl Default for SeedResolver {
    fn default() -> SeedResolver {
        SeedResolver::system()
    }
}

impl std::fmt::Debug for SeedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            None => "SeedResolver(system)",
            Some(_) => "SeedResolver(custom)",
        })
    }
}

/// Every address `seeds` stand for now, in order and without repeats,
/// less `skip` (this node's own addresses: a headless service lists the
/// asking pod too). Also the names that did not resolve, with why.
pub(crate) async fn resolve_seeds(
    seeds: &[Seed],
    resolver: &SeedResolver,
    skip: &[SocketAddr],
) -> (Vec<SocketAddr>, Vec<(String, std::io::Error)>) {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut failed = Vec::new();
    for seed in seeds {
        let found = match seed {
            Seed::Addr(a) => vec![*a],
            Seed::Name { host, port } => match resolver.resolve(host, *port).await {
                Ok(found) => found,
                Err(e) => {
                    failed.push((seed.to_string(), e));
                    continue;
                }
            },
        };
        for a in found {
            let own = skip.iter().any(|s| same_addr(*s, a));
            if !own && !addrs.contains(&a) {
                addrs.push(a);
            }
        }
    }
    (addrs, failed)
}

/// Whether two socket addresses are one (an IPv4-mapped IPv6 address is
/// its IPv4 address).
fn same_addr(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_parse_and_malformed_seeds_are_named() {
        assert_eq!(
            "10.0.0.2:7946".parse::<Seed>(),
            Ok(Seed::Addr("10.0.0.2:7946".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:7946".parse::<Seed>(),
            Ok(Seed::Addr("[::1]:7946".parse().unwrap()))
        );
        assert_eq!(
            "rumour-0.rumour.default.svc.cluster.local:7946".parse::<Seed>(),
            Ok(Seed::Name {
                host: "rumour-0.rumour.default.svc.cluster.local".into(),
                port: 7946
            })
        );
        assert_eq!("localhost".parse::<Seed>(), Err(SeedError::NoPort));
        assert_eq!(
            "localhost:http".parse::<Seed>(),
            Err(SeedError::BadPort("http".into()))
        );
        assert_eq!(
            "localhost:99999".parse::<Seed>(),
            Err(SeedError::BadPort("99999".into()))
        );
        assert_eq!(
            "localhost:0".parse::<Seed>(),
            Err(SeedError::BadPort("0".into()))
        );
        assert_eq!(
            "10.0.0.2:0".parse::<Seed>(),
            Err(SeedError::BadPort("0".into()))
        );
        assert_eq!(":7946".parse::<Seed>(), Err(SeedError::NoHost));
        assert_eq!(
            "::1:7946".parse::<Seed>(),
            Err(SeedError::BadHost("::1".into()))
        );
        assert_eq!(
            "my host:7946".parse::<Seed>(),
            Err(SeedError::BadHost("my host".into()))
        );
    }

    #[tokio::test]
    async fn every_address_is_used_but_this_nodes_own() {
        let me: SocketAddr = "10.0.0.1:7946".parse().unwrap();
        let other: SocketAddr = "10.0.0.2:7946".parse().unwrap();
        let third: SocketAddr = "10.0.0.3:7946".parse().unwrap();
        let resolver = SeedResolver::new(move |host, _| {
            let answer = match host {
                "svc" => Ok(vec![me, other, other, third]),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such name",
                )),
            };
            Box::pin(async move { answer })
        });
        let seeds: Vec<Seed> = ["svc:7946", "later:7946", "10.0.0.3:7946"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let (addrs, failed) = resolve_seeds(&seeds, &resolver, &[me]).await;
        assert_eq!(addrs, vec![other, third]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "later:7946");
    }
}
