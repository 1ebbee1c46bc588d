//! `DatagramServer`: a UDP server (gevent: `gevent.server.DatagramServer`).

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use crate::base_server::{common_builder_methods, BaseServer, Common};
use crate::error::{Error, Result};
use crate::handler::{DatagramHandler, Dispatch};
use crate::socket::IntoListener;

/// Largest datagram received whole by default: the largest UDP payload over IPv4.
/// gevent reads only 8192 bytes and silently truncates longer datagrams; we do not.
pub const DATAGRAM_SIZE: usize = 65_535;

/// The server's socket as handlers see it: `sendto` from any number of handlers at once.
/// gevent: `DatagramServer.sendto` (serialised by a semaphore there, and here).
#[derive(Clone)]
pub struct DatagramSocket {
    inner: Arc<may::sync::Mutex<may::net::UdpSocket>>,
    local: Option<SocketAddr>,
}

impl fmt::Debug for DatagramSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramSocket")
            .field("local", &self.local)
            .finish()
    }
}

impl DatagramSocket {
    pub(crate) fn new(sock: &may::net::UdpSocket) -> Result<DatagramSocket> {
        // A separate handle for sending, so a send never contends with the blocked receive.
        let send = sock
            .try_clone()
            .map_err(|err| Error::io("cloning the datagram socket", err))?;
        Ok(DatagramSocket {
            local: sock.local_addr().ok(),
            inner: Arc::new(may::sync::Mutex::new(send)),
        })
    }

    /// Send `data` to `addr`; returns the number of bytes sent. gevent: `sendto`.
    ///
    /// # Errors
    /// The operating system refused the datagram (too large, unreachable, ...).
    pub fn sendto(&self, data: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let sock = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("datagram socket lock poisoned"))?;
        sock.send_to(data, addr)
    }

    /// The server's local address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}

/// A UDP server: each datagram is handed to the handler, in its own coroutine (per the spawn
/// strategy), with the sender's address and the socket to reply on.
/// gevent: `gevent.server.DatagramServer`.
///
/// ```
/// use may_gevent::{DatagramServer, DatagramSocket};
/// use std::net::SocketAddr;
///
/// // gevent examples/udp_server.py
/// let server = DatagramServer::new("127.0.0.1:0",
///     |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
///         sock.sendto(format!("Received {} bytes", data.len()).as_bytes(), addr).map(|_| ())
///     })
///     .build()?;
/// server.start()?;
///
/// let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// client.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
/// client.send_to(b"Test udp_server", server.address().unwrap().as_inet().unwrap())?;
/// let mut buf = [0u8; 64];
/// let (n, _) = client.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"Received 15 bytes");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DatagramServer {
    base: BaseServer,
}

/// Builder for a [`DatagramServer`], from [`DatagramServer::new`].
#[must_use = "a builder does nothing until .build()"]
pub struct DatagramServerBuilder {
    common: Common,
    handler: Arc<dyn DatagramHandler>,
}

impl fmt::Debug for DatagramServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramServerBuilder")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl DatagramServer {
    /// Start building a UDP server on `listener` (an address or a bound UDP socket).
    /// gevent: `DatagramServer(listener, handle)`.
    #[allow(clippy::new_ret_no_self)] // gevent's constructor name; returns the builder
    pub fn new(
        listener: impl IntoListener,
        handler: impl DatagramHandler,
    ) -> DatagramServerBuilder {
        DatagramServerBuilder {
            common: Common::new(listener),
            handler: Arc::new(handler),
        }
    }

    /// Replace the handler; only before `start()`. gevent: `BaseServer.set_handle`.
    ///
    /// # Errors
    /// [`Error::State`] when the server is started.
    pub fn set_handle(&self, handler: impl DatagramHandler) -> Result<()> {
        self.base
            .set_dispatch(Dispatch::Datagram(Arc::new(handler)))
    }
}

impl DatagramServerBuilder {
    common_builder_methods!();

    /// The largest datagram received whole; longer ones are truncated by the kernel.
    /// Default: 65 535 (gevent: 8192).
    pub fn max_datagram_size(mut self, bytes: usize) -> Self {
        self.common.opts.max_datagram_size = bytes.max(1);
        self
    }

    /// Check the settings and create the server (it binds at `start()`).
    ///
    /// # Errors
    /// An unparsable address, `max_accept` of 0, or a stream socket as listener.
    pub fn build(self) -> Result<DatagramServer> {
        let base = BaseServer::from_parts(
            "DatagramServer",
            true,
            self.common,
            Dispatch::Datagram(self.handler),
            #[cfg(feature = "tls")]
            None,
        )?;
        Ok(DatagramServer { base })
    }
}

crate::base_server::server_wrapper!(DatagramServer);
