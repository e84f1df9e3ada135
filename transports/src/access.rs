//! Who may call the client API: a bearer token checked on every call of
//! the `rumour.v1.Rumour` service (gRPC health and reflection stay open).
//!
//! The check wraps the service as a tower layer, before any request is
//! decoded, so a refused call changes nothing. It needs the call's method
//! (`Shutdown`, `Leave`, `Join` and the key calls always need the token,
//! even from loopback) and the client's address, which a tonic interceptor does not
//! see; hence a service rather than an interceptor.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;
use tracing::debug;

use crate::stats::{bump, TransportStats};

/// The secret a client must present (`authorization: Bearer TOKEN`) to
/// call the client API. Its `Debug` never shows it, so an [`AgentConfig`]
/// can be logged.
///
/// [`AgentConfig`]: crate::AgentConfig
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token: non-empty, visible ASCII only (it travels in a header).
    pub fn new(token: impl Into<String>) -> Result<ApiToken, String> {
        let token = token.into();
        if token.is_empty() {
            return Err("the API token is empty".into());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the API token must be visible ASCII characters only (no spaces)".into());
        }
        Ok(ApiToken(token))
    }

    /// The token's text, for a client to send.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, in time that depends only on the
    /// token's length, not on where the first difference is.
    fn matches(&self, given: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        let mut diff = u8::from(mine.len() != given.len());
        for (i, m) in mine.iter().enumerate() {
            diff |= m ^ given.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// Methods that always need the token when one is set, from loopback too:
/// they stop the node, change the cluster it is in (or the members it
/// holds), or change (or show) the cluster's keys.
const ALWAYS_TOKEN: [&str; 8] = [
    "Shutdown",
    "Leave",
    "Join",
    "Forget",
    "ListKeys",
    "InstallKey",
    "UseKey",
    "RemoveKey",
];

/// The access rule of the client API.
#[derive(Clone, Debug)]
pub(crate) struct Access {
    pub(crate) token: Option<ApiToken>,
    pub(crate) open_loopback: bool,
}

impl Access {
    /// Why a call of `method` from `remote` with `authorization` is
    /// refused, if it is.
    fn check(
        &self,
        method: &str,
        remote: Option<SocketAddr>,
        authorization: Option<&[u8]>,
    ) -> Result<(), &'static str> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let loopback = remote.is_some_and(|a| is_loopback(a.ip()));
        if self.open_loopback && loopback && !ALWAYS_TOKEN.contains(&method) {
            return Ok(());
        }
        let Some(header) = authorization else {
            return Err("this call needs an API token (authorization: Bearer)");
        };
        let given = strip_bearer(header).ok_or("the authorization header is not a Bearer token")?;
        if token.matches(given) {
            Ok(())
        } else {
            Err("wrong API token")
        }
    }
}

/// The token of `Bearer TOKEN` (the scheme's case ignored).
fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    Some(header[SCHEME.len()..].trim_ascii())
}

/// Loopback, including IPv4 loopback mapped into IPv6.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// A service (here `rumour.v1.Rumour`) behind the access check: a refused
/// call is answered `UNAUTHENTICATED` without reaching it, and counted.
#[derive(Clone)]
pub(crate) struct Guarded<S> {
    pub(crate) inner: S,
    pub(crate) access: Arc<Access>,
    pub(crate) stats: Arc<TransportStats>,
}

impl<S> Service<Request<Body>> for Guarded<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = req.uri().path().rsplit('/').next().unwrap_or("");
        // Over TLS the TCP details sit inside the TLS connection's.
        let remote = req
            .extensions()
            .get::<TcpConnectInfo>()
            .or_else(|| {
                req.extensions()
                    .get::<TlsConnectInfo<TcpConnectInfo>>()
                    .map(TlsConnectInfo::get_ref)
            })
            .and_then(TcpConnectInfo::remote_addr);
        let authorization = req.headers().get("authorization").map(|v| v.as_bytes());
        match self.access.check(method, remote, authorization) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(why) => {
                bump(&self.stats.api_unauthenticated);
                debug!(method, remote = ?remote, why, "client API call refused");
                let status = Status::unauthenticated(why);
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(open_loopback: bool) -> Access {
        Access {
            token: Some(ApiToken::new("s3cret").unwrap()),
            open_loopback,
        }
    }

    #[test]
    fn tokens_compare_whole() {
        let t = ApiToken::new("s3cret").unwrap();
        assert!(t.matches(b"s3cret"));
        assert!(!t.matches(b"s3cre"));
        assert!(!t.matches(b"s3crets"));
        assert!(!t.matches(b"S3cret"));
        assert!(!t.matches(b""));
        assert!(ApiToken::new("").is_err());
        assert!(ApiToken::new("a b").is_err());
        assert_eq!(format!("{t:?}"), "ApiToken(<redacted>)");
    }

    #[test]
    fn the_rule() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let lo6: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let far: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let good = Some(&b"Bearer s3cret"[..]);
        let bad = Some(&b"Bearer s3creT"[..]);
        let a = access(false);
        assert!(a.check("Get", Some(lo), good).is_ok());
        assert!(a.check("Get", Some(lo), Some(b"bearer s3cret")).is_ok());
        assert!(a.check("Get", Some(lo), None).is_err());
        assert!(a.check("Get", Some(lo), bad).is_err());
        assert!(a.check("Get", Some(lo), Some(b"s3cret")).is_err());
        let a = access(true);
        assert!(a.check("Get", Some(lo), None).is_ok());
        assert!(a.check("Put", Some(lo6), None).is_ok());
        assert!(a.check("Get", Some(far), None).is_err());
        assert!(a.check("Get", None, None).is_err());
        for m in ALWAYS_TOKEN {
            assert!(a.check(m, Some(lo), None).is_err());
            assert!(a.check(m, Some(lo), bad).is_err());
            assert!(a.check(m, Some(lo), good).is_ok());
        }
        let open = Access {
            token: None,
            open_loopback: false,
        };
        assert!(open.check("Shutdown", Some(far), None).is_ok());
    }
}
