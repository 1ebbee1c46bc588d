//! `Stream`: the connection a stream handler receives (gevent: the `socket` argument of
//! `handle(socket, address)`).

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::mem::ManuallyDrop;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use may::net::TcpStream;
use may::os::unix::net::UnixStream;

use crate::address::Address;
use crate::proxy_protocol::Proxied;
use crate::registry::Registration;
use crate::sendfile::{self, COPY_CHUNK};
use crate::wait::{wait_ready, Interest};

/// A client connection: TCP, Unix or (with the `tls` feature) TLS over either.
///
/// Implements [`Read`] and [`Write`] with may's blocking-style I/O: a read parks only the
/// current coroutine. Dropping the stream closes the connection; when the handler returns,
/// the server drops it (gevent closes the socket when `handle` returns).
pub struct Stream {
    /// The server's record of this connection (for `stop()`); dropped with the stream.
    /// Declared first, so dropped first: the record goes before the socket closes (the
    /// server's registry may hold the socket's own descriptor, see `registry.rs`).
    registration: Option<Registration>,
    inner: Inner,
    /// What an accepted PROXY protocol header said (see [`Stream::proxy_addr`]).
    proxied: Option<Box<Proxied>>,
}

enum Inner {
    Plain(PlainStream),
    #[cfg(feature = "tls")]
    Tls(Box<native_tls::TlsStream<PlainStream>>),
}

/// The socket under a [`Stream`] (TCP or Unix), before any TLS.
#[derive(Debug)]
pub enum PlainStream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix stream connection.
    Unix(UnixConn),
}

/// A may Unix stream that leaves may's poller before its descriptor is closed. It dereferences
/// to may's [`UnixStream`]; `From<UnixStream>` wraps one.
///
/// may's `UnixStream` closes its descriptor first and then removes that descriptor *number*
/// from its epoll set. A socket opened on another thread in between (the kernel gives out the
/// lowest free number, so the same one) is removed instead, and never gets another readiness
/// event: a connection that waits on it stalls until its timeout. Measured: 5 054 of 400 000
/// registrations lost while another thread opened and closed Unix sockets
/// (`tests/unix_registrations.rs`). This type hands the descriptor out of may first
/// (`into_raw_fd`, after which may removes it while it is still open), then closes it. may's
/// `TcpStream` removes its registration first and needs none of this.
pub struct UnixConn(ManuallyDrop<UnixStream>);

impl UnixConn {
    /// The may stream, which then closes as may closes it.
    pub fn into_inner(self) -> UnixStream {
        let mut this = ManuallyDrop::new(self);
        #[allow(unsafe_code)]
        // SAFETY: `this` is never dropped nor used again, so the stream is taken exactly once.
        unsafe {
            ManuallyDrop::take(&mut this.0)
        }
    }
}

impl From<UnixStream> for UnixConn {
    fn from(stream: UnixStream) -> UnixConn {
        UnixConn(ManuallyDrop::new(stream))
    }
}

impl Drop for UnixConn {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: this is the drop of `self`: the stream is taken exactly once and `self.0` is
        // not used after it.
        let stream = unsafe { ManuallyDrop::take(&mut self.0) };
        close_after_may(stream);
    }
}

impl std::ops::Deref for UnixConn {
    type Target = UnixStream;
    fn deref(&self) -> &UnixStream {
        &self.0
    }
}

impl std::ops::DerefMut for UnixConn {
    fn deref_mut(&mut self) -> &mut UnixStream {
        &mut self.0
    }
}

impl fmt::Debug for UnixConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Read for UnixConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for UnixConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl AsRawFd for UnixConn {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl may::io::AsIoData for UnixConn {
    fn as_io_data(&self) -> &may::io::IoData {
        self.0.as_io_data()
    }
}

/// Closes a may socket whose own drop would close the descriptor before may removes it from
/// its poller (`CoIo` types: Unix streams, listeners, datagrams): `into_raw_fd` lets may
/// remove it while it is open, and the descriptor is closed after.
pub(crate) fn close_after_may(io: impl IntoRawFd) {
    let fd = io.into_raw_fd();
    #[allow(unsafe_code)]
    // SAFETY: `into_raw_fd` gave up the descriptor: nothing else owns or closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

macro_rules! plain {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            PlainStream::Tcp($s) => $e,
            PlainStream::Unix($s) => $e,
        }
    };
}

impl PlainStream {
    /// The remote end's address.
    pub fn peer_addr(&self) -> io::Result<Address> {
        match self {
            PlainStream::Tcp(s) => s.peer_addr().map(Address::Inet),
            PlainStream::Unix(s) => s.peer_addr().map(|addr| Address::from_unix(&addr)),
        }
    }

    /// The local end's address.
    pub fn local_addr(&self) -> io::Result<Address> {
        match self {
            PlainStream::Tcp(s) => s.local_addr().map(Address::Inet),
            PlainStream::Unix(s) => s.local_addr().map(|addr| Address::from_unix(&addr)),
        }
    }

    /// Set the timeout of every following read (`None`: wait forever). A read that times out
    /// fails with [`io::ErrorKind::TimedOut`].
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        plain!(self, s => s.set_read_timeout(dur))
    }

    /// Set the timeout of every following write (`None`: wait forever).
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        plain!(self, s => s.set_write_timeout(dur))
    }

    /// The current read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        plain!(self, s => s.read_timeout())
    }

    /// The current write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        plain!(self, s => s.write_timeout())
    }

    /// Wait (parking only this coroutine) until the socket is ready for `interest`.
    fn wait(&self, interest: Interest, timeout: Option<Duration>) -> io::Result<()> {
        plain!(self, s => wait_ready(s, interest, timeout))
    }

    /// [`Stream::sendfile`] on this socket.
    fn sendfile(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        let timeout = self.write_timeout()?;
        plain!(self, s => sendfile::send_plain(s, timeout, file, offset, count))
    }

    /// Shut down the reading, writing or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        plain!(self, s => s.shutdown(how))
    }

    /// Another handle to the same socket (for a reader and a writer in two coroutines).
    pub fn try_clone(&self) -> io::Result<PlainStream> {
        match self {
            PlainStream::Tcp(s) => s.try_clone().map(PlainStream::Tcp),
            PlainStream::Unix(s) => s.try_clone().map(|s| PlainStream::Unix(s.into())),
        }
    }
}

impl Read for PlainStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        plain!(self, s => s.read(buf))
    }
}

impl Write for PlainStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        plain!(self, s => s.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        plain!(self, s => s.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        plain!(self, s => s.flush())
    }
}

impl AsFd for PlainStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            PlainStream::Tcp(s) => s.inner().as_fd(),
            PlainStream::Unix(s) => s.inner().as_fd(),
        }
    }
}

impl AsRawFd for PlainStream {
    fn as_raw_fd(&self) -> RawFd {
        plain!(self, s => s.as_raw_fd())
    }
}

impl Stream {
    pub(crate) fn tcp(stream: TcpStream) -> Stream {
        Stream {
            inner: Inner::Plain(PlainStream::Tcp(stream)),
            registration: None,
            proxied: None,
        }
    }

    pub(crate) fn unix(stream: UnixStream) -> Stream {
        Stream {
            inner: Inner::Plain(PlainStream::Unix(stream.into())),
            registration: None,
            proxied: None,
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls(stream: native_tls::TlsStream<PlainStream>) -> Stream {
        Stream {
            inner: Inner::Tls(Box::new(stream)),
            registration: None,
            proxied: None,
        }
    }

    #[cfg(feature = "tls")]
    pub(crate) fn into_plain(self) -> Result<PlainStream, Stream> {
        match self.inner {
            Inner::Plain(plain) => Ok(plain),
            other => Err(Stream {
                inner: other,
                registration: self.registration,
                proxied: self.proxied,
            }),
        }
    }

    /// Carry the server's record of this connection (dropped with the stream).
    pub(crate) fn set_registration(&mut self, registration: Option<Registration>) {
        self.registration = registration;
    }

    /// Record what the PROXY header said (the server does this before the handler runs).
    pub(crate) fn set_proxied(&mut self, proxied: Proxied) {
        self.proxied = Some(Box::new(proxied));
    }

    /// The address of the proxy that sent this connection's PROXY protocol header (the socket
    /// peer), when the server accepts the PROXY protocol (the builders' `proxy_protocol`);
    /// `None` otherwise. [`peer_addr`](Self::peer_addr) is then the client's address.
    pub fn proxy_addr(&self) -> Option<&Address> {
        self.proxied.as_ref().map(|p| &p.proxy)
    }

    /// The socket under the stream (under the TLS layer, if any).
    pub fn get_ref(&self) -> &PlainStream {
        match &self.inner {
            Inner::Plain(plain) => plain,
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => tls.get_ref(),
        }
    }

    /// The TCP socket, if this is a TCP connection (TLS or not).
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self.get_ref() {
            PlainStream::Tcp(s) => Some(s),
            PlainStream::Unix(_) => None,
        }
    }

    /// True when the connection is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        match &self.inner {
            Inner::Plain(_) => false,
            #[cfg(feature = "tls")]
            Inner::Tls(_) => true,
        }
    }

    /// The TLS stream, when the connection is encrypted (to read the peer certificate etc.).
    #[cfg(feature = "tls")]
    pub fn as_tls(&self) -> Option<&native_tls::TlsStream<PlainStream>> {
        match &self.inner {
            Inner::Plain(_) => None,
            Inner::Tls(tls) => Some(tls),
        }
    }

    /// The remote end's address: the client's as a PROXY protocol header gave it, when the
    /// server accepted one with a client address (see [`proxy_addr`](Self::proxy_addr));
    /// otherwise the socket's peer (what [`PlainStream::peer_addr`] always is).
    pub fn peer_addr(&self) -> io::Result<Address> {
        if let Some(client) = self.proxied.as_ref().and_then(|p| p.client) {
            return Ok(Address::Inet(client));
        }
        self.get_ref().peer_addr()
    }

    /// The local end's address.
    pub fn local_addr(&self) -> io::Result<Address> {
        self.get_ref().local_addr()
    }

    /// Set the timeout of every following read (`None`: wait forever). A read that times out
    /// fails with [`io::ErrorKind::TimedOut`] and the stream stays usable.
    pub fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.get_ref().set_read_timeout(dur)
    }

    /// Set the timeout of every following write (`None`: wait forever).
    pub fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        self.get_ref().set_write_timeout(dur)
    }

    /// The current read timeout.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        self.get_ref().read_timeout()
    }

    /// The current write timeout.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.get_ref().write_timeout()
    }

    /// Wait until the connection can be written to without blocking: there is room in the
    /// socket's send buffer, or the socket is shut down or in error (then the next write
    /// reports it). gevent: `gevent.socket.wait_write(fileno)`.
    ///
    /// Only this coroutine parks (on a plain thread, the thread blocks in `poll(2)`). The wait
    /// is bounded by the stream's write timeout ([`Stream::set_write_timeout`]) and ends when
    /// the connection is shut down — a server's `stop()` shuts its connections down, so a
    /// handler waiting here returns, and the write that follows fails. A cancel (`stop()`'s
    /// last resort, [`Pool::kill`](crate::Pool::kill)) unwinds the coroutine as from any
    /// blocking call. Nothing is read or written. With TLS, this is the writability of the
    /// socket under it (a TLS write sends everything it encrypted before it returns).
    ///
    /// It takes `&mut self`: may lets one coroutine at a time wait on a socket. For a reader
    /// and a writer in two coroutines, wait on a [`try_clone`](Self::try_clone)d stream.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the write timeout passed first.
    pub fn wait_writable(&mut self) -> io::Result<()> {
        let timeout = self.write_timeout()?;
        self.get_ref().wait(Interest::Write, timeout)
    }

    /// Wait until the connection has something to read: data, end-of-file, or an error
    /// (then the next read reports it). gevent: `gevent.socket.wait_read(fileno)`.
    ///
    /// Like [`wait_writable`](Self::wait_writable), bounded by the read timeout
    /// ([`Stream::set_read_timeout`]), ended by a shutdown, unwound by a cancel, and nothing is
    /// read. With TLS, bytes the TLS layer already decrypted count as readable; bytes on the
    /// socket that do not complete a TLS record yet make this return although a read would
    /// still wait for the rest.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when the read timeout passed first.
    pub fn wait_readable(&mut self) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Inner::Tls(tls) = &self.inner {
            if tls.buffered_read_size().unwrap_or(0) > 0 {
                return Ok(());
            }
        }
        let timeout = self.read_timeout()?;
        self.get_ref().wait(Interest::Read, timeout)
    }

    /// Send up to `count` bytes of `file`, starting at `offset` in the file, and return how
    /// many were sent: `count`, or fewer only when the file ends first (0 when `offset` is at
    /// or past its end). The file's own position is neither used nor moved. This is gevent's
    /// `gevent_sendfile` (examples/geventsendfile.py), the cooperative `sendfile`.
    ///
    /// - On a plain TCP or Unix connection (Linux): `sendfile(2)` in a loop — the kernel copies
    ///   from the page cache to the socket — and whenever the send buffer is full it waits as
    ///   [`wait_writable`](Self::wait_writable) does (bounded by the write timeout, ended by a
    ///   shutdown, unwound by a cancel).
    /// - With TLS (and without `sendfile(2)`: other systems, or a file system that refuses
    ///   it): a bounded copy, reading at most 64 KiB of the file at a time and writing it as
    ///   [`Write::write_all`] does.
    ///
    /// A long send to a fast reader yields to the other coroutines every few MiB.
    ///
    /// # Errors
    /// The write's error (the client is gone, [`io::ErrorKind::TimedOut`]), or the file's read
    /// error. Some bytes may have been sent before an error: the connection's framing is then
    /// unknown, close it.
    pub fn sendfile(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(plain) => plain.sendfile(file, offset, count),
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => sendfile::copy_file(&mut **tls, file, offset, count),
        }
    }

    /// One step of [`sendfile`](Self::sendfile) that never waits for a plain socket: up to
    /// `count` bytes of `file` from `offset`, as much as fits in the socket's send buffer now.
    /// Returns how many were sent (0: `offset` is at or past the end of the file, or `count` is
    /// 0). gevent: py-sendfile's `sendfile(out_fd, in_fd, offset, count)` on a non-blocking
    /// socket; loop with [`wait_writable`](Self::wait_writable) on `WouldBlock` as gevent's
    /// `gevent_sendfile` does on `EAGAIN`.
    ///
    /// With TLS (and on systems without `sendfile(2)`) one step copies at most 64 KiB and
    /// writes it whole, waiting as a write does: it never fails with `WouldBlock`.
    ///
    /// # Errors
    /// [`io::ErrorKind::WouldBlock`] when the send buffer is full (nothing was sent); the
    /// write's or the file's error.
    pub fn try_sendfile(&mut self, file: &File, offset: u64, count: usize) -> io::Result<usize> {
        match &mut self.inner {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::Plain(plain) => sendfile::sendfile_once(plain, file, offset, count),
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            Inner::Plain(plain) => copy_step(plain, file, offset, count),
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => copy_step(&mut **tls, file, offset, count),
        }
    }

    /// Turn Nagle's algorithm off (`true`) or on. No-op for Unix sockets.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self.get_ref() {
            PlainStream::Tcp(s) => s.set_nodelay(nodelay),
            PlainStream::Unix(_) => Ok(()),
        }
    }

    /// Shut down the reading, writing or both halves of the connection. For TLS, shutting down
    /// the write half first sends the TLS close_notify alert.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Inner::Tls(tls) = &mut self.inner {
            if matches!(how, Shutdown::Write | Shutdown::Both) {
                // Best effort: the peer may be gone already.
                let _ = tls.shutdown();
            }
        }
        self.get_ref().shutdown(how)
    }

    /// Another handle to the same connection, for a reader and a writer in two coroutines.
    ///
    /// # Errors
    /// TLS streams cannot be cloned (the TLS state is not shareable): `ErrorKind::Unsupported`.
    pub fn try_clone(&self) -> io::Result<Stream> {
        match &self.inner {
            Inner::Plain(plain) => plain.try_clone().map(|plain| Stream {
                inner: Inner::Plain(plain),
                registration: None,
                proxied: self.proxied.clone(),
            }),
            #[cfg(feature = "tls")]
            Inner::Tls(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a TLS stream cannot be cloned",
            )),
        }
    }
}

/// One bounded copy step of [`Stream::try_sendfile`].
#[cfg_attr(
    all(not(feature = "tls"), any(target_os = "linux", target_os = "android")),
    allow(dead_code)
)]
fn copy_step<W: Write + ?Sized>(
    out: &mut W,
    file: &File,
    offset: u64,
    count: usize,
) -> io::Result<usize> {
    let mut buf = vec![0u8; count.min(COPY_CHUNK)];
    sendfile::copy_chunk(out, file, offset, count, &mut buf)
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Stream");
        d.field("fd", &self.as_raw_fd())
            .field("tls", &self.is_tls());
        if let Ok(peer) = self.peer_addr() {
            d.field("peer", &format_args!("{peer}"));
        }
        d.finish()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(plain) => plain.read(buf),
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(plain) => plain.write(buf),
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(plain) => plain.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(plain) => plain.flush(),
            #[cfg(feature = "tls")]
            Inner::Tls(tls) => tls.flush(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl From<TcpStream> for Stream {
    /// Wrap a may TCP stream (e.g. an outgoing connection, to use it like a client's).
    fn from(stream: TcpStream) -> Stream {
        Stream::tcp(stream)
    }
}

impl From<UnixStream> for Stream {
    /// Wrap a may Unix stream.
    fn from(stream: UnixStream) -> Stream {
        Stream::unix(stream)
    }
}
