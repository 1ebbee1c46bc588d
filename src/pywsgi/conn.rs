//! [`Connection`]: what the WSGI engine needs from a client stream.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use crate::sendfile::{copy_file, send_len, send_plain};

/// A bidirectional byte stream to one client, as the WSGI engine drives it.
///
/// The engine reads requests and writes responses with blocking-style calls on the connection's
/// coroutine. Timeouts are set through this trait; an expired timeout must surface as an
/// `io::Error` of kind `TimedOut` (may sockets) or `WouldBlock` (std sockets), both are handled.
///
/// Implemented here for `may::net::TcpStream` and `may::os::unix::net::UnixStream`.
pub trait Connection: Read + Write + Send {
    /// Sets (or clears, with `None`) the timeout of subsequent reads. Never called with a zero
    /// duration. The engine remembers the last value and only calls this when it changes.
    fn set_read_timeout(&mut self, dur: Option<Duration>) -> io::Result<()>;

    /// Sets (or clears, with `None`) the timeout of subsequent writes. Never called with a zero
    /// duration.
    fn set_write_timeout(&mut self, dur: Option<Duration>) -> io::Result<()>;

    /// Half-closes the write side (TCP FIN) so that the client sees the end of the last response
    /// while the engine drains what the client is still sending (a "lingering close", RFC 9112
    /// section 9.6, which keeps a close with unread input from turning into a reset that would
    /// destroy the response). The default does nothing.
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Called with `true` when the engine starts waiting for the next request of a keep-alive
    /// connection (nothing of it received yet, every response flushed), and with `false` when
    /// that wait ends. Returning `false` from the `true` call means "the server is closing: do
    /// not wait, close the connection". A server uses this to end idle keep-alive connections
    /// at once when it stops (it may shut the socket's read side down while it is idle, which
    /// the engine sees as the client closing). The default does nothing and returns `true`.
    fn set_idle(&mut self, idle: bool) -> bool {
        let _ = idle;
        true
    }

    /// Waits until input is available or the stream ended, without taking any, under the read
    /// timeout last set (an expired one is an error, as for a read): `Ok(Some(n))` with `n > 0`
    /// when there is input, `Ok(Some(0))` at end of stream. The engine calls it on a keep-alive
    /// connection that stayed idle for [`IDLE_RELEASE`](super::IDLE_RELEASE), after giving its
    /// buffers back, so that the wait holds no buffer. `Ok(None)` (the default) means "cannot
    /// wait without reading" (e.g. TLS, whose records may hold input the socket no longer
    /// shows): the engine then reads into a buffer as usual.
    fn wait_input(&mut self) -> io::Result<Option<usize>> {
        Ok(None)
    }

    /// True when the server is closing: the engine then answers the request it is serving with
    /// `Connection: close` instead of keeping the connection alive. Default: `false`.
    fn server_closing(&self) -> bool {
        false
    }

    /// The address of the proxy that sent this connection's PROXY protocol header, when the
    /// server accepted one (it is `may_gevent.proxy_addr` in the environ). Default: `None`.
    fn proxy_addr(&self) -> Option<crate::Address> {
        None
    }

    /// Sends `len` bytes of `file` from `offset` in the file (the body of a
    /// [`Body::file`](super::Body::file) response; everything written before is already
    /// written). Returns how many bytes were sent: `len`, or fewer when the file ended first
    /// (it was truncated meanwhile): the engine then closes the connection, since the
    /// Content-Length it announced cannot be honoured.
    ///
    /// The default is a bounded copy: at most 64 KiB read at a time (`pread`, the file's
    /// position is not used) and written with `write_all`. The implementations for the crate's
    /// connections (may's TCP and Unix streams, [`Stream`](crate::Stream) and the server's
    /// own) use `sendfile(2)` on plain sockets ([`Stream::sendfile`](crate::Stream::sendfile)).
    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        send_len(offset, len, |offset, count| {
            copy_file(self, file, offset, count)
        })
    }
}

impl Connection for may::net::TcpStream {
    fn set_read_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        may::net::TcpStream::set_read_timeout(self, dur)
    }

    fn set_write_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        may::net::TcpStream::set_write_timeout(self, dur)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn wait_input(&mut self) -> io::Result<Option<usize>> {
        self.peek(&mut [0u8; 1]).map(Some)
    }

    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        let timeout = self.write_timeout()?;
        send_len(offset, len, |offset, count| {
            send_plain(self, timeout, file, offset, count)
        })
    }
}

impl Connection for may::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        may::os::unix::net::UnixStream::set_read_timeout(self, dur)
    }

    fn set_write_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        may::os::unix::net::UnixStream::set_write_timeout(self, dur)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn wait_input(&mut self) -> io::Result<Option<usize>> {
        self.peek(&mut [0u8; 1]).map(Some)
    }

    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        let timeout = self.write_timeout()?;
        send_len(offset, len, |offset, count| {
            send_plain(self, timeout, file, offset, count)
        })
    }
}

impl<C: Connection + ?Sized> Connection for Box<C> {
    fn set_read_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(dur)
    }

    fn set_write_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        (**self).set_write_timeout(dur)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        (**self).shutdown_write()
    }

    fn set_idle(&mut self, idle: bool) -> bool {
        (**self).set_idle(idle)
    }

    fn wait_input(&mut self) -> io::Result<Option<usize>> {
        (**self).wait_input()
    }

    fn server_closing(&self) -> bool {
        (**self).server_closing()
    }

    fn proxy_addr(&self) -> Option<crate::Address> {
        (**self).proxy_addr()
    }

    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        (**self).send_file(file, offset, len)
    }
}

pub(crate) use crate::error::is_disconnect;

/// Whether an I/O error is an expired timeout (may: `TimedOut`; std sockets: `WouldBlock`).
pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}
