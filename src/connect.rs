//! `create_connection`: an outgoing TCP connection that never blocks a worker thread
//! (gevent: `gevent.socket.create_connection`).
//!
//! The host name is resolved on the thread pool ([`Resolver`]), each address is tried in the
//! order the resolver gave them until one accepts, and `timeout` bounds the whole of it —
//! resolution and every attempt together, not each attempt. The connect itself is a
//! non-blocking `connect(2)` and a wait in may's event loop, so only the calling coroutine
//! parks; a cancel unwinds it as from any may call.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::address::Address;
use crate::resolver::Resolver;
use crate::stream::Stream;
use crate::wait::{wait_ready, Interest};

/// Something `create_connection` can connect to: `"host:port"`, `"[v6]:port"`, `(host, port)`,
/// a `SocketAddr`, `(IpAddr, port)` or an IP [`Address`].
pub trait ConnectAddress {
    /// The host (a name or an IP literal) and the port.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`] when the text has no valid port, or the address is a
    /// Unix socket.
    fn host_port(&self) -> io::Result<(String, u16)>;
}

fn invalid(input: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid address {input:?}: {why}"),
    )
}

impl ConnectAddress for str {
    fn host_port(&self) -> io::Result<(String, u16)> {
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| invalid(self, "expected host:port"))?;
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(invalid(self, "an IPv6 address needs brackets: [::1]:80"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| invalid(self, "the port is not a number in 0..=65535"))?;
        Ok((host.to_owned(), port))
    }
}

impl ConnectAddress for &str {
    fn host_port(&self) -> io::Result<(String, u16)> {
        (**self).host_port()
    }
}

impl ConnectAddress for String {
    fn host_port(&self) -> io::Result<(String, u16)> {
        self.as_str().host_port()
    }
}

impl ConnectAddress for (&str, u16) {
    fn host_port(&self) -> io::Result<(String, u16)> {
        Ok((self.0.to_owned(), self.1))
    }
}

impl ConnectAddress for (String, u16) {
    fn host_port(&self) -> io::Result<(String, u16)> {
        Ok(self.clone())
    }
}

impl ConnectAddress for (IpAddr, u16) {
    fn host_port(&self) -> io::Result<(String, u16)> {
        Ok((self.0.to_string(), self.1))
    }
}

impl ConnectAddress for SocketAddr {
    fn host_port(&self) -> io::Result<(String, u16)> {
        Ok((self.ip().to_string(), self.port()))
    }
}

impl ConnectAddress for Address {
    fn host_port(&self) -> io::Result<(String, u16)> {
        match self.as_inet() {
            Some(addr) => addr.host_port(),
            None => Err(invalid(
                &self.to_string(),
                "a Unix socket, not a TCP address",
            )),
        }
    }
}

/// Connect to `address`, resolving its host on the thread pool and trying each of its
/// addresses in turn, within `timeout` overall (`None`: each attempt waits as long as the
/// kernel does, about two minutes for an address that never answers; resolution waits at
/// most [`RESOLVE_TIMEOUT`](crate::RESOLVE_TIMEOUT)). With `source_address`, the socket is
/// bound to it first (port 0: any port). gevent:
/// `gevent.socket.create_connection(address, timeout, source_address)`.
///
/// The stream is returned with no read or write timeout (gevent leaves `timeout` on the
/// socket; set it with [`Stream::set_read_timeout`] if you want that) and `TCP_NODELAY` off.
///
/// ```
/// use may_gevent::{create_connection, Address, Stream, StreamServer};
/// use std::io::Read;
/// use std::time::Duration;
///
/// let server = StreamServer::new("127.0.0.1:0", |mut s: Stream, _: Address| {
///     std::io::Write::write_all(&mut s, b"hi")
/// })?;
/// server.start()?;
/// let port = server.local_addr().unwrap().port();
/// let mut conn = create_connection(("localhost", port), Duration::from_secs(5), None)?;
/// let mut text = String::new();
/// conn.read_to_string(&mut text)?;
/// assert_eq!(text, "hi");
/// # server.stop(None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// The resolver's error; [`io::ErrorKind::TimedOut`] when `timeout` passed; otherwise the error
/// of the last address tried (gevent raises the last error too). Every message names the
/// address.
pub fn create_connection<A: ConnectAddress>(
    address: A,
    timeout: impl Into<Option<Duration>>,
    source_address: Option<SocketAddr>,
) -> io::Result<Stream> {
    connect_with(&Resolver::new(), &address, timeout.into(), source_address)
}

impl Resolver {
    /// [`create_connection`] with this resolver.
    ///
    /// # Errors
    /// As [`create_connection`].
    pub fn create_connection<A: ConnectAddress>(
        &self,
        address: A,
        timeout: impl Into<Option<Duration>>,
        source_address: Option<SocketAddr>,
    ) -> io::Result<Stream> {
        connect_with(self, &address, timeout.into(), source_address)
    }
}

fn timed_out(host: &str, port: u16, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connecting to {host}:{port} timed out after {timeout:?}"),
    )
}

pub(crate) fn connect_with<A: ConnectAddress + ?Sized>(
    resolver: &Resolver,
    address: &A,
    timeout: Option<Duration>,
    source: Option<SocketAddr>,
) -> io::Result<Stream> {
    let (host, port) = address.host_port()?;
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let addrs = resolver
        .getaddrinfo_within(&host, port, timeout)
        .map_err(|err| match (err.kind(), timeout) {
            (io::ErrorKind::TimedOut, Some(t)) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connecting to {host}:{port} timed out after {t:?}: {err}"),
            ),
            _ => err,
        })?;
    let mut last = None;
    for addr in addrs {
        if let Some(src) = source {
            if src.is_ipv4() != addr.is_ipv4() {
                continue; // the source address cannot reach this family
            }
        }
        let left = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out(&host, port, timeout.unwrap_or_default()));
                }
                Some(left)
            }
        };
        match connect_one(addr, source, left) {
            Ok(stream) => return Ok(Stream::tcp(stream)),
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                return Err(timed_out(&host, port, timeout.unwrap_or_default()));
            }
            Err(err) => last = Some((addr, err)),
        }
    }
    Err(match last {
        Some((addr, err)) => io::Error::new(
            err.kind(),
            format!("cannot connect to {host}:{port} ({addr}): {err}"),
        ),
        None => io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host}:{port} has no address of the source address's family"),
        ),
    })
}

/// One non-blocking connect, waited for in may's event loop.
fn connect_one(
    addr: SocketAddr,
    source: Option<SocketAddr>,
    timeout: Option<Duration>,
) -> io::Result<may::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(src) = source {
        socket
            .bind(&src.into())
            .map_err(|err| io::Error::new(err.kind(), format!("cannot bind to {src}: {err}")))?;
    }
    socket.set_nonblocking(true)?;
    let pending = match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => false,
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(err) => return Err(err),
    };
    let stream = may_tcp_stream(socket);
    if pending {
        wait_ready(&stream, Interest::Write, timeout)?;
        if let Some(err) = stream.take_error()? {
            return Err(err);
        }
        // a connect that failed without SO_ERROR set (rare): ask the peer address
        stream.peer_addr()?;
    }
    Ok(stream)
}

/// Hand a connecting TCP socket to may (it registers it with its poller).
fn may_tcp_stream(socket: Socket) -> may::net::TcpStream {
    let raw = std::net::TcpStream::from(socket).into_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: `raw` comes from a socket we own and just gave up (`into_raw_fd`), so the may
    // stream becomes its only owner; it is a TCP socket, which is what may's type expects.
    unsafe {
        may::net::TcpStream::from_raw_fd(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms() {
        assert_eq!("a.test:80".host_port().unwrap(), ("a.test".into(), 80));
        assert_eq!("[::1]:81".host_port().unwrap(), ("[::1]".into(), 81));
        assert!("::1:80".host_port().is_err());
        assert!("a.test".host_port().is_err());
        assert!("a.test:99999".host_port().is_err());
        let sa: SocketAddr = "[::1]:5".parse().unwrap();
        assert_eq!(sa.host_port().unwrap(), ("::1".into(), 5));
        assert!(Address::Unix(None).host_port().is_err());
    }
}
