//! Listening sockets: the `listener` argument in all its forms, bound with socket2
//! (gevent: `StreamServer._tcp_listener`, `DatagramServer.get_listener`).
//!
//! `may::net::TcpListener::bind` always sets `SO_REUSEPORT`, so a second server on the same
//! port would silently share it. We create every socket with socket2 (`SO_REUSEADDR` on,
//! `SO_REUSEPORT` only when asked) and hand the file descriptor to `may`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::address::{parse_address, resolve_host_port, Address};
use crate::error::{Error, Result};

/// Default listen backlog. gevent: `StreamServer.backlog` (128).
pub const BACKLOG: i32 = 128;

/// What a server listens on: an address to bind when it starts, or a socket that is already
/// bound (gevent: the `listener` argument of `BaseServer`).
///
/// Built with [`IntoListener`]; you rarely name this type.
pub struct Listener {
    pub(crate) kind: ListenerKind,
    /// The name a process manager gave the socket (`LISTEN_FDNAMES`), if any.
    pub(crate) name: Option<String>,
    /// Inherited from another process (systemd, a supervisor, the old binary of an upgrade)
    /// that may hold the same socket: `close()` only closes this process's descriptor and
    /// never shuts the socket down, so the others keep accepting from the same backlog.
    pub(crate) inherited: bool,
}

pub(crate) enum ListenerKind {
    /// Bind this address at `start()` (gevent: `init_socket`).
    Address(SocketAddr),
    /// An already bound socket (TCP/Unix: listening; UDP: bound).
    Socket(SocketKind, OwnedFd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketKind {
    Tcp,
    Unix,
    Udp,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ListenerKind::Address(addr) => write!(f, "Listener({addr})"),
            ListenerKind::Socket(kind, fd) => {
                write!(f, "Listener({kind:?} fd={}", fd.as_raw_fd())?;
                if let Some(name) = &self.name {
                    write!(f, " name={name:?}")?;
                }
                if self.inherited {
                    write!(f, " inherited")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl Listener {
    /// True when this is an already bound socket rather than an address.
    pub fn is_socket(&self) -> bool {
        matches!(self.kind, ListenerKind::Socket(..))
    }

    /// The name the process manager gave this socket: systemd's `FileDescriptorName=` (or
    /// the socket unit's name), passed in `LISTEN_FDNAMES`; `None` for every other listener.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// True for a socket inherited from another process ([`Listener::from_fd`],
    /// [`Listener::from_systemd`]). Closing the server then closes only this process's
    /// descriptor: the socket is never `shutdown(2)`, so another process that holds the same
    /// socket (systemd, the new binary of an upgrade) keeps accepting, and connections
    /// waiting in the shared backlog are not lost.
    pub fn is_inherited(&self) -> bool {
        self.inherited
    }

    /// A listener on a socket inherited from another process: a descriptor a supervisor
    /// passed (e.g. `MY_APP_FD=3` in the environment), or the listening socket an old
    /// binary handed to its successor. The kind (TCP, Unix, UDP) is read from the socket;
    /// a bound stream socket that is not listening yet is put into listening mode with
    /// [`BACKLOG`]. `FD_CLOEXEC` is set, so the descriptor does not leak into programs this
    /// process runs later.
    ///
    /// The socket is shared with whoever else holds it: the server never calls
    /// `shutdown(2)` on it (see [`is_inherited`](Self::is_inherited)).
    ///
    /// From a raw descriptor number, take ownership first (that is the `unsafe` part: the
    /// number must be an open socket that nothing else in this process owns):
    ///
    /// ```no_run
    /// use std::os::fd::{FromRawFd, OwnedFd};
    /// use may_gevent::{Listener, StreamServer, Stream, Address};
    /// let fd: i32 = std::env::var("MY_APP_FD").unwrap().parse().unwrap();
    /// // SAFETY: the supervisor passed us this open socket; nothing else owns it.
    /// let listener = Listener::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })?;
    /// let server = StreamServer::new(listener, |_s: Stream, _a: Address| {})?;
    /// # Ok::<(), may_gevent::Error>(())
    /// ```
    ///
    /// For systemd's protocol (`LISTEN_FDS`), use [`Listener::from_systemd`]. A shared
    /// socket wrapped in a `std::net::TcpListener` (or another socket type) and passed as
    /// such is served the same way but counts as this process's own: closing the server
    /// shuts it down (refusing new connects at once, for every holder). Pass shared sockets
    /// through `from_fd`.
    ///
    /// # Errors
    /// The descriptor is not a socket, not a stream or datagram socket, or `listen(2)` failed.
    pub fn from_fd(fd: impl Into<OwnedFd>) -> Result<Listener> {
        let fd: OwnedFd = fd.into();
        set_cloexec(&fd)
            .map_err(|err| Error::io("setting FD_CLOEXEC on the inherited socket", err))?;
        let mut listener = Socket::from(fd).into_listener()?;
        listener.inherited = true;
        Ok(listener)
    }
}

/// Sets `FD_CLOEXEC` on `fd` (inherited descriptors come without it).
pub(crate) fn set_cloexec(fd: &impl AsFd) -> std::io::Result<()> {
    let raw = fd.as_fd().as_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: fcntl(2) F_GETFD/F_SETFD on a descriptor we borrow; no memory is passed.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFD);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Conversion into a [`Listener`]: every form gevent accepts as `listener`.
///
/// Addresses (bound when the server starts): `"127.0.0.1:80"`, `":8080"`, `"*:8080"`,
/// `"[::1]:80"`, `"8080"` (see [`parse_address`](crate::parse_address)), a port number
/// (`8080u16`, all interfaces, IPv6 dual-stack), a [`SocketAddr`], or a `(host, port)` tuple.
///
/// Already bound sockets: `std::net::TcpListener`, `may::net::TcpListener`,
/// `std::os::unix::net::UnixListener`, `may::os::unix::net::UnixListener`,
/// `std::net::UdpSocket`, `may::net::UdpSocket` and `socket2::Socket` (a bound stream socket
/// that is not yet listening is put into listening mode).
///
/// Sockets inherited from another process: an `OwnedFd` ([`Listener::from_fd`]) and
/// systemd's `LISTEN_FDS` ([`Listener::from_systemd`]).
pub trait IntoListener {
    /// Convert, or explain why not.
    fn into_listener(self) -> Result<Listener>;
}

impl IntoListener for Listener {
    fn into_listener(self) -> Result<Listener> {
        Ok(self)
    }
}

fn address(addr: SocketAddr) -> Result<Listener> {
    Ok(Listener {
        kind: ListenerKind::Address(addr),
        name: None,
        inherited: false,
    })
}

fn socket(kind: SocketKind, fd: OwnedFd) -> Result<Listener> {
    Ok(Listener {
        kind: ListenerKind::Socket(kind, fd),
        name: None,
        inherited: false,
    })
}

impl IntoListener for &str {
    fn into_listener(self) -> Result<Listener> {
        address(parse_address(self)?)
    }
}

impl IntoListener for String {
    fn into_listener(self) -> Result<Listener> {
        self.as_str().into_listener()
    }
}

impl IntoListener for &String {
    fn into_listener(self) -> Result<Listener> {
        self.as_str().into_listener()
    }
}

impl IntoListener for u16 {
    fn into_listener(self) -> Result<Listener> {
        address(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), self))
    }
}

impl IntoListener for SocketAddr {
    fn into_listener(self) -> Result<Listener> {
        address(self)
    }
}

impl IntoListener for (IpAddr, u16) {
    fn into_listener(self) -> Result<Listener> {
        address(SocketAddr::new(self.0, self.1))
    }
}

impl IntoListener for (Ipv4Addr, u16) {
    fn into_listener(self) -> Result<Listener> {
        address(SocketAddr::new(IpAddr::V4(self.0), self.1))
    }
}

impl IntoListener for (Ipv6Addr, u16) {
    fn into_listener(self) -> Result<Listener> {
        address(SocketAddr::new(IpAddr::V6(self.0), self.1))
    }
}

impl IntoListener for (&str, u16) {
    fn into_listener(self) -> Result<Listener> {
        let text = format!("{}:{}", self.0, self.1);
        address(resolve_host_port(&text, self.0, self.1)?)
    }
}

impl IntoListener for std::net::TcpListener {
    fn into_listener(self) -> Result<Listener> {
        socket(SocketKind::Tcp, self.into())
    }
}

impl IntoListener for may::net::TcpListener {
    fn into_listener(self) -> Result<Listener> {
        // `into_raw_fd` deregisters the fd from may's poller and hands it over.
        let std = owned(self.into_raw_fd());
        socket(SocketKind::Tcp, std)
    }
}

impl IntoListener for std::os::unix::net::UnixListener {
    fn into_listener(self) -> Result<Listener> {
        socket(SocketKind::Unix, self.into())
    }
}

impl IntoListener for may::os::unix::net::UnixListener {
    fn into_listener(self) -> Result<Listener> {
        socket(SocketKind::Unix, owned(self.into_raw_fd()))
    }
}

impl IntoListener for std::net::UdpSocket {
    fn into_listener(self) -> Result<Listener> {
        socket(SocketKind::Udp, self.into())
    }
}

impl IntoListener for may::net::UdpSocket {
    fn into_listener(self) -> Result<Listener> {
        socket(SocketKind::Udp, owned(self.into_raw_fd()))
    }
}

/// An inherited descriptor: same as [`Listener::from_fd`].
impl IntoListener for OwnedFd {
    fn into_listener(self) -> Result<Listener> {
        Listener::from_fd(self)
    }
}

impl IntoListener for Socket {
    fn into_listener(self) -> Result<Listener> {
        let ctx = |what: &str| format!("inspecting the listener socket ({what})");
        let ty = self.r#type().map_err(|err| Error::io(ctx("type"), err))?;
        let domain = self.domain().map_err(|err| Error::io(ctx("domain"), err))?;
        let kind = if ty == Type::DGRAM {
            SocketKind::Udp
        } else if ty == Type::STREAM && domain == Domain::UNIX {
            SocketKind::Unix
        } else if ty == Type::STREAM {
            SocketKind::Tcp
        } else {
            return Err(Error::InvalidConfig(
                "the listener must be a stream or datagram socket".into(),
            ));
        };
        if kind != SocketKind::Udp && !self.is_listener().unwrap_or(false) {
            self.listen(BACKLOG)
                .map_err(|err| Error::io("listen() on the given socket", err))?;
        }
        socket(kind, self.into())
    }
}

fn owned(fd: RawFd) -> OwnedFd {
    #[allow(unsafe_code)]
    // SAFETY: `fd` was just released by `into_raw_fd` of a socket we owned, so nobody else
    // owns or closes it.
    unsafe {
        OwnedFd::from_raw_fd(fd)
    }
}

/// Create, bind and listen a TCP socket with gevent's options.
pub(crate) fn tcp_listener(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
) -> Result<may::net::TcpListener> {
    let bind_err = |source| Error::Bind {
        address: addr.to_string(),
        source,
    };
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_err)?;
    sock.set_reuse_address(true).map_err(bind_err)?;
    if reuse_port {
        sock.set_reuse_port(true).map_err(bind_err)?;
    }
    sock.bind(&SockAddr::from(addr)).map_err(bind_err)?;
    sock.listen(backlog).map_err(bind_err)?;
    Ok(may_tcp_listener(sock.into()))
}

/// Create and bind a UDP socket (gevent: `DatagramServer.get_listener`).
pub(crate) fn udp_socket(
    addr: SocketAddr,
    reuse_port: bool,
    recv_buffer_size: usize,
) -> Result<may::net::UdpSocket> {
    let bind_err = |source| Error::Bind {
        address: addr.to_string(),
        source,
    };
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_err)?;
    sock.set_reuse_address(true).map_err(bind_err)?;
    if reuse_port {
        sock.set_reuse_port(true).map_err(bind_err)?;
    }
    sock.bind(&SockAddr::from(addr)).map_err(bind_err)?;
    set_recv_buffer_size(&sock, recv_buffer_size).map_err(bind_err)?;
    Ok(may_udp_socket(sock.into()))
}

/// Ask the kernel for a receive buffer of `size` bytes (`SO_RCVBUF`; Linux doubles it and
/// caps it at `net.core.rmem_max`).
pub(crate) fn set_recv_buffer_size(fd: &impl AsFd, size: usize) -> std::io::Result<()> {
    socket2::SockRef::from(fd).set_recv_buffer_size(size)
}

/// The receive buffer the kernel gave a socket, in bytes (`SO_RCVBUF`).
pub(crate) fn recv_buffer_size(fd: &impl AsFd) -> std::io::Result<usize> {
    socket2::SockRef::from(fd).recv_buffer_size()
}

/// Hand a listening TCP socket to may (sets O_NONBLOCK and registers it with the poller).
pub(crate) fn may_tcp_listener(fd: OwnedFd) -> may::net::TcpListener {
    let raw = fd.into_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: `raw` comes from an `OwnedFd` we just gave up, so the may listener becomes its
    // only owner.
    unsafe {
        may::net::TcpListener::from_raw_fd(raw)
    }
}

/// Hand a listening Unix socket to may.
pub(crate) fn may_unix_listener(fd: OwnedFd) -> may::os::unix::net::UnixListener {
    let raw = fd.into_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: as in `may_tcp_listener`: sole ownership of `raw` moves into may.
    unsafe {
        may::os::unix::net::UnixListener::from_raw_fd(raw)
    }
}

/// Hand a bound UDP socket to may.
pub(crate) fn may_udp_socket(fd: OwnedFd) -> may::net::UdpSocket {
    let raw = fd.into_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: as in `may_tcp_listener`: sole ownership of `raw` moves into may.
    unsafe {
        may::net::UdpSocket::from_raw_fd(raw)
    }
}

/// The local address of a may stream listener.
pub(crate) fn unix_local(l: &may::os::unix::net::UnixListener) -> Address {
    l.local_addr()
        .map(|addr| Address::from_unix(&addr))
        .unwrap_or(Address::Unix(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_in_use_names_the_address() {
        let first = tcp_listener("127.0.0.1:0".parse().unwrap(), BACKLOG, false).unwrap();
        let addr = first.local_addr().unwrap();
        let err = tcp_listener(addr, BACKLOG, false).unwrap_err();
        assert!(err.is_addr_in_use(), "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        // may's own bind would share the port (SO_REUSEPORT); ours does not.
        assert!(may::net::TcpListener::bind(addr).is_err());
    }

    #[test]
    fn reuse_port_when_asked() {
        let first = tcp_listener("127.0.0.1:0".parse().unwrap(), BACKLOG, true).unwrap();
        let addr = first.local_addr().unwrap();
        let second = tcp_listener(addr, BACKLOG, true).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
    }
}
