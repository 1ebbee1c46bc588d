//! What differs between a stream server and a datagram server, as types: the bound socket,
//! what one read gives, how a handler is called, and what `stop()` can shut down. The
//! lifecycle (`base_server.rs`) and the accept loop (`accept.rs`) are written once over
//! [`Protocol`].

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use slog::{debug, error, warn, Logger};

use crate::address::Address;
use crate::datagram_socket::{DatagramSocket, DatagramStats, RECV_BUFFER_SIZE};
use crate::error::{Error, Result};
use crate::handler::{DatagramHandler, HandlerError, HandlerResult, Hooks, StreamHandler};
use crate::pool::is_cancel;
use crate::registry::Registry;
use crate::settings::Options;
use crate::socket::{
    may_tcp_listener, may_udp_socket, may_unix_listener, set_recv_buffer_size, tcp_listener,
    udp_socket, unix_local, SocketKind, BACKLOG,
};
use crate::stream::{close_after_may, Stream};

/// What a handler call needs from its server besides the protocol's own state.
pub(crate) struct Ctx<'a> {
    pub(crate) name: &'static str,
    pub(crate) hooks: &'a Hooks,
    pub(crate) logger: &'a Logger,
}

impl Ctx<'_> {
    /// Report a handler's failure: the `handle_error` hook, else a log record (a client
    /// that went away is DEBUG, as pywsgi logs it; anything else ERROR).
    fn report(&self, err: HandlerError, address: &Address) {
        match &self.hooks.handle_error {
            Some(hook) => hook(&err, address),
            None if err.is_disconnect() => debug!(self.logger, "client disconnected";
                "server" => self.name, "peer" => %address, "error" => %err),
            None => error!(self.logger, "handler failed";
                "server" => self.name, "peer" => %address, "error" => %err),
        }
    }

    /// Run a handler body: errors and panics go to `handle_error`; a cancel keeps unwinding.
    pub(crate) fn guarded(&self, address: &Address, body: impl FnOnce() -> HandlerResult) {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.report(HandlerError::Error(err), address),
            Err(payload) if is_cancel(payload.as_ref()) => resume_unwind(payload),
            Err(payload) => self.report(HandlerError::from_panic(payload.as_ref()), address),
        }
    }
}

/// A kind of server.
pub(crate) trait Protocol: Sized + Send + Sync + 'static {
    /// The handler, as a trait object.
    type Handler: ?Sized + Send + Sync + 'static;
    /// The bound socket.
    type Socket: AsRawFd + Send + Sync + 'static;
    /// One accepted connection or received datagram, with its sender.
    type Incoming: Send + 'static;
    /// What the kind keeps per server (TLS and the live connections; datagram counters).
    type Extra: Send + Sync + 'static;

    /// "a stream" / "a datagram": what a passed-in socket must be.
    const WANTS: &'static str;

    /// Whether an already bound socket of this kind can serve.
    fn accepts(kind: SocketKind) -> bool;

    /// Bind `addr` (gevent: `init_socket`).
    fn bind(
        addr: SocketAddr,
        opts: &Options,
        extra: &Self::Extra,
        ctx: &Ctx<'_>,
    ) -> Result<Self::Socket>;

    /// Take over an already bound socket.
    fn adopt(
        kind: SocketKind,
        fd: OwnedFd,
        opts: &Options,
        extra: &Self::Extra,
        ctx: &Ctx<'_>,
    ) -> Result<Self::Socket>;

    /// The receive buffer one read needs (empty for a stream listener).
    fn buffer(opts: &Options) -> Vec<u8>;

    /// gevent `do_read`: accept one connection or receive one datagram.
    fn read(socket: &Self::Socket, buf: &mut [u8]) -> io::Result<Self::Incoming>;

    /// Who sent it (for `verify_request` and error reports); also logs what is worth it.
    fn peer(incoming: &Self::Incoming, ctx: &Ctx<'_>) -> Address;

    /// Serve it, in the handler's coroutine.
    fn serve(
        handler: &Self::Handler,
        incoming: Self::Incoming,
        socket: &Self::Socket,
        extra: &Self::Extra,
        ctx: &Ctx<'_>,
    );

    /// The address the socket is bound to.
    fn local_address(socket: &Self::Socket) -> Option<Address>;

    /// `stop()`'s step 3: shut down the connections being served; how many there were.
    fn shutdown_connections(extra: &Self::Extra) -> usize;
}

/// `StreamServer` and `WsgiServer`: TCP or Unix listeners, a coroutine per connection.
pub(crate) struct StreamProto;

/// The per-server state of a stream server.
#[derive(Default)]
pub(crate) struct StreamExtra {
    /// The connections being served, for `stop()`'s shutdown step.
    pub(crate) connections: Arc<Registry>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsOptions>,
    /// The PROXY protocol, when it is on.
    pub(crate) proxy: Option<crate::proxy_protocol::ProxyOptions>,
}

/// A bound stream listener.
pub(crate) enum StreamSocket {
    Tcp(may::net::TcpListener),
    /// Closed by [`close_after_may`] (see [`crate::UnixConn`] for why): may's own drop would
    /// close the descriptor before it leaves may's poller.
    Unix(ManuallyDrop<may::os::unix::net::UnixListener>),
}

impl Drop for StreamSocket {
    fn drop(&mut self) {
        if let StreamSocket::Unix(listener) = self {
            #[allow(unsafe_code)]
            // SAFETY: this is the drop of `self`: the listener is taken exactly once and not
            // used after it.
            let listener = unsafe { ManuallyDrop::take(listener) };
            close_after_may(listener);
        }
    }
}

impl AsRawFd for StreamSocket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            StreamSocket::Tcp(l) => l.as_raw_fd(),
            StreamSocket::Unix(l) => l.as_raw_fd(),
        }
    }
}

impl Protocol for StreamProto {
    type Handler = dyn StreamHandler;
    type Socket = StreamSocket;
    type Incoming = (Stream, Address);
    type Extra = StreamExtra;

    const WANTS: &'static str = "stream";

    fn accepts(kind: SocketKind) -> bool {
        matches!(kind, SocketKind::Tcp | SocketKind::Unix)
    }

    fn bind(
        addr: SocketAddr,
        opts: &Options,
        _: &StreamExtra,
        _: &Ctx<'_>,
    ) -> Result<StreamSocket> {
        let backlog = opts.backlog.unwrap_or(BACKLOG);
        Ok(StreamSocket::Tcp(tcp_listener(
            addr,
            backlog,
            opts.reuse_port,
        )?))
    }

    fn adopt(
        kind: SocketKind,
        fd: OwnedFd,
        _: &Options,
        _: &StreamExtra,
        _: &Ctx<'_>,
    ) -> Result<StreamSocket> {
        Ok(match kind {
            SocketKind::Unix => StreamSocket::Unix(ManuallyDrop::new(may_unix_listener(fd))),
            _ => StreamSocket::Tcp(may_tcp_listener(fd)),
        })
    }

    fn buffer(_: &Options) -> Vec<u8> {
        Vec::new()
    }

    fn read(socket: &StreamSocket, _: &mut [u8]) -> io::Result<(Stream, Address)> {
        match socket {
            StreamSocket::Tcp(l) => {
                let (s, addr) = l.accept()?;
                Ok((Stream::tcp(s), Address::Inet(addr)))
            }
            StreamSocket::Unix(l) => {
                let (s, addr) = l.accept()?;
                Ok((Stream::unix(s), Address::from_unix(&addr)))
            }
        }
    }

    fn peer(incoming: &(Stream, Address), _: &Ctx<'_>) -> Address {
        incoming.1.clone()
    }

    fn serve(
        handler: &dyn StreamHandler,
        (stream, address): (Stream, Address),
        _: &StreamSocket,
        extra: &StreamExtra,
        ctx: &Ctx<'_>,
    ) {
        // Tracked from before a TLS handshake, so that stop() can end that too. Without TLS
        // the stream carries its registration at once (by its own descriptor: the record
        // drops before the socket); a handshake may close the socket inside the TLS
        // library first, so with TLS the registry holds a duplicate until the stream exists.
        let mut stream = stream;
        #[cfg(feature = "tls")]
        let registration = if extra.tls.is_some() {
            extra.connections.register_dup(stream.as_fd())
        } else {
            stream.set_registration(Some(extra.connections.register(stream.as_fd())));
            None
        };
        #[cfg(not(feature = "tls"))]
        stream.set_registration(Some(extra.connections.register(stream.as_fd())));
        // The PROXY header comes first, before any TLS.
        let proxied = match &extra.proxy {
            None => None,
            Some(opts) => {
                let Some(proxied) = crate::proxy_protocol::accept(
                    opts,
                    ctx.logger,
                    ctx.name,
                    &mut stream,
                    &address,
                ) else {
                    return; // refused: logged, the connection closes
                };
                Some(proxied)
            }
        };
        #[cfg(feature = "tls")]
        let Some(stream) = crate::tls::wrap(extra.tls.as_ref(), ctx.logger, stream, &address) else {
            return;
        };
        let mut stream = stream;
        #[cfg(feature = "tls")]
        if registration.is_some() {
            stream.set_registration(registration);
        }
        let address = match proxied {
            Some(proxied) => {
                let client = proxied.client.map(Address::Inet);
                stream.set_proxied(proxied);
                client.unwrap_or(address)
            }
            None => address,
        };
        ctx.guarded(&address, || handler.handle(stream, address.clone()));
    }

    fn local_address(socket: &StreamSocket) -> Option<Address> {
        match socket {
            StreamSocket::Tcp(l) => l.local_addr().ok().map(Address::Inet),
            StreamSocket::Unix(l) => Some(unix_local(l)),
        }
    }

    fn shutdown_connections(extra: &StreamExtra) -> usize {
        extra.connections.shutdown_all()
    }
}

/// `DatagramServer`: a UDP socket, a handler call per datagram.
pub(crate) struct DatagramProto;

/// A bound UDP socket: the receiving handle and the one handlers send with.
pub(crate) struct UdpBound {
    recv: may::net::UdpSocket,
    send: DatagramSocket,
}

impl AsRawFd for UdpBound {
    fn as_raw_fd(&self) -> RawFd {
        self.recv.as_raw_fd()
    }
}

impl UdpBound {
    fn new(
        recv: may::net::UdpSocket,
        stats: &Arc<DatagramStats>,
        ctx: &Ctx<'_>,
    ) -> Result<UdpBound> {
        let send = DatagramSocket::new(&recv, stats.clone(), ctx.logger.clone(), ctx.name)?;
        Ok(UdpBound { recv, send })
    }

    /// The kernel's receive buffer size (`SO_RCVBUF`).
    pub(crate) fn recv_buffer_size(&self) -> Option<usize> {
        crate::socket::recv_buffer_size(self.recv.inner()).ok()
    }
}

/// A received datagram: the data, the sender, and whether it was longer than
/// `max_datagram_size` (and so truncated).
pub(crate) struct Datagram {
    data: Vec<u8>,
    from: SocketAddr,
    truncated: bool,
}

impl Protocol for DatagramProto {
    type Handler = dyn DatagramHandler;
    type Socket = UdpBound;
    type Incoming = Datagram;
    type Extra = Arc<DatagramStats>;

    const WANTS: &'static str = "datagram";

    fn accepts(kind: SocketKind) -> bool {
        kind == SocketKind::Udp
    }

    fn bind(
        addr: SocketAddr,
        opts: &Options,
        stats: &Arc<DatagramStats>,
        ctx: &Ctx<'_>,
    ) -> Result<UdpBound> {
        let size = opts.recv_buffer_size.unwrap_or(RECV_BUFFER_SIZE);
        UdpBound::new(udp_socket(addr, opts.reuse_port, size)?, stats, ctx)
    }

    fn adopt(
        _: SocketKind,
        fd: OwnedFd,
        opts: &Options,
        stats: &Arc<DatagramStats>,
        ctx: &Ctx<'_>,
    ) -> Result<UdpBound> {
        if let Some(size) = opts.recv_buffer_size {
            set_recv_buffer_size(&fd, size)
                .map_err(|err| Error::io("setting the receive buffer size", err))?;
        }
        UdpBound::new(may_udp_socket(fd), stats, ctx)
    }

    /// One byte longer than the largest datagram delivered whole, so that a longer one is
    /// seen (and reported) as truncated.
    fn buffer(opts: &Options) -> Vec<u8> {
        vec![0u8; opts.max_datagram_size + 1]
    }

    fn read(socket: &UdpBound, buf: &mut [u8]) -> io::Result<Datagram> {
        let (n, from, truncated) = socket.send.receive(&socket.recv, buf)?;
        Ok(Datagram {
            data: buf[..n].to_vec(),
            from,
            truncated,
        })
    }

    fn peer(datagram: &Datagram, ctx: &Ctx<'_>) -> Address {
        if datagram.truncated {
            warn!(ctx.logger, "datagram longer than max_datagram_size, truncated";
                "server" => ctx.name, "peer" => %datagram.from,
                "max_datagram_size" => datagram.data.len());
        }
        Address::Inet(datagram.from)
    }

    fn serve(
        handler: &dyn DatagramHandler,
        datagram: Datagram,
        socket: &UdpBound,
        _: &Arc<DatagramStats>,
        ctx: &Ctx<'_>,
    ) {
        let Datagram { data, from, .. } = datagram;
        ctx.guarded(&Address::Inet(from), || {
            handler.handle(data, from, &socket.send)
        });
    }

    fn local_address(socket: &UdpBound) -> Option<Address> {
        socket.recv.local_addr().ok().map(Address::Inet)
    }

    fn shutdown_connections(_: &Arc<DatagramStats>) -> usize {
        0 // a datagram handler has no connection of its own
    }
}

impl fmt::Debug for StreamSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamSocket(fd={})", self.as_raw_fd())
    }
}
