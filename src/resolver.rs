//! Cooperative name resolution: `getaddrinfo` on the thread pool, with a timeout (gevent's
//! default resolver, `gevent.resolver.thread.Resolver`).
//!
//! `getaddrinfo(3)` blocks the thread that calls it, for as long as the DNS servers take (up to
//! tens of seconds when one does not answer). Called on a may worker — as any `ToSocketAddrs`
//! with a host name does, `may::net::TcpStream::connect("host:80")` included — it stalls every
//! coroutine queued on that worker. [`Resolver`] runs it on a [`ThreadPool`] instead: only the
//! calling coroutine parks, and it stops waiting after the timeout (the lookup itself cannot be
//! interrupted: it finishes on its pool thread and its answer is dropped).
//!
//! IP literals (`127.0.0.1`, `::1`, `[::1]`) are parsed on the spot and never reach the pool.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::threadpool::ThreadPool;

/// How long a lookup may take unless set otherwise: 10 s (glibc's default is 5 s per server and
/// attempt, two attempts).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking lookup function: host and port to addresses. It runs on a pool thread.
pub type LookupFn = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static;

/// Resolves host names on a thread pool, with a timeout. gevent: `gevent.resolver.thread.Resolver`.
///
/// [`Resolver::new`] uses the system's `getaddrinfo` on [`ThreadPool::default_pool`];
/// [`Resolver::with_lookup`] plugs in any blocking lookup (a fixed table, a test double that
/// hangs). Cloning is cheap and shares the pool.
///
/// ```
/// use may_gevent::Resolver;
///
/// let addrs = Resolver::new().getaddrinfo("localhost", 80)?;
/// assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Resolver {
    lookup: Arc<LookupFn>,
    pool: Option<ThreadPool>,
    timeout: Option<Duration>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("pool", &self.pool)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Resolver {
    fn default() -> Resolver {
        Resolver::new()
    }
}

/// The system resolver: `getaddrinfo(3)` through std.
fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

impl Resolver {
    /// The system resolver (`getaddrinfo`) on the default pool, with [`RESOLVE_TIMEOUT`].
    pub fn new() -> Resolver {
        Resolver::with_lookup(system_lookup)
    }

    /// A resolver that calls `lookup` (blocking is fine: it runs on a pool thread). For a fixed
    /// host table, another DNS library, or a test double.
    pub fn with_lookup<F>(lookup: F) -> Resolver
    where
        F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    {
        Resolver {
            lookup: Arc::new(lookup),
            pool: None,
            timeout: Some(RESOLVE_TIMEOUT),
        }
    }

    /// Run lookups on `pool` instead of [`ThreadPool::default_pool`].
    pub fn pool(mut self, pool: ThreadPool) -> Resolver {
        self.pool = Some(pool);
        self
    }

    /// How long a lookup may take (`None`: no limit). Default: [`RESOLVE_TIMEOUT`].
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Resolver {
        self.timeout = timeout.into();
        self
    }

    /// The lookup timeout.
    pub fn lookup_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The addresses of `host` (a name or an IP literal, IPv6 with or without brackets), with
    /// `port`, in the order the resolver gave them. gevent: `Resolver.getaddrinfo`.
    ///
    /// # Errors
    /// The lookup's error, with the host in the message; [`io::ErrorKind::TimedOut`] after the
    /// timeout; [`io::ErrorKind::NotFound`] when the name has no address.
    pub fn getaddrinfo(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self.getaddrinfo_within(host, port, None)
    }

    /// As [`getaddrinfo`](Self::getaddrinfo), waiting at most the shorter of `limit` and the
    /// resolver's timeout.
    pub(crate) fn getaddrinfo_within(
        &self,
        host: &str,
        port: u16,
        limit: Option<Duration>,
    ) -> io::Result<Vec<SocketAddr>> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if host.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot resolve an empty host name",
            ));
        }
        let timeout = match (self.timeout, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let lookup = self.lookup.clone();
        let name = host.to_owned();
        let pool = self.pool.as_ref().unwrap_or(ThreadPool::default_pool());
        let call = pool.spawn(move || lookup(&name, port))?;
        let result = match timeout {
            None => call.join(),
            Some(timeout) => {
                if !call.wait(Some(timeout)) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("resolving {host:?} timed out after {timeout:?}"),
                    ));
                }
                call.join()
            }
        };
        let addrs = match result {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(err)) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("resolving {host:?} failed: {err}"),
                ))
            }
            Err(_) => return Err(io::Error::other(format!("resolving {host:?} panicked"))),
        };
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host:?} has no address"),
            ));
        }
        Ok(addrs)
    }
}

/// Resolve `host` with the system resolver on the default pool (see [`Resolver`]), waiting at
/// most `timeout` ([`RESOLVE_TIMEOUT`] if `None`). gevent: `gevent.socket.getaddrinfo`.
///
/// # Errors
/// As [`Resolver::getaddrinfo`].
pub fn getaddrinfo(
    host: &str,
    port: u16,
    timeout: Option<Duration>,
) -> io::Result<Vec<SocketAddr>> {
    Resolver::new().getaddrinfo_within(host, port, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_never_reach_the_lookup() {
        let r = Resolver::with_lookup(|_, _| panic!("not a literal"));
        assert_eq!(
            r.getaddrinfo("127.0.0.1", 5).unwrap(),
            vec![([127, 0, 0, 1], 5).into()]
        );
        assert_eq!(r.getaddrinfo("[::1]", 6).unwrap()[0].port(), 6);
        assert!(r.getaddrinfo("::1", 7).unwrap()[0].is_ipv6());
        assert_eq!(
            r.getaddrinfo("", 1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn empty_answers_and_errors_carry_the_host() {
        let r = Resolver::with_lookup(|_, _| Ok(Vec::new()));
        let err = r.getaddrinfo("nowhere.test", 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("nowhere.test"), "{err}");
        let r = Resolver::with_lookup(|_, _| Err(io::Error::other("servfail")));
        let err = r.getaddrinfo("bad.test", 1).unwrap_err();
        assert!(err.to_string().contains("bad.test") && err.to_string().contains("servfail"));
    }
}
