//! `DatagramServer`: a UDP server (gevent: `gevent.server.DatagramServer`).

use std::fmt;
use std::sync::Arc;

use crate::base_server::BaseServer;
use crate::error::Result;
use crate::handler::DatagramHandler;
use crate::protocol::DatagramProto;
use crate::settings::{common_builder_methods, Common};
use crate::socket::IntoListener;

/// A UDP server: each datagram is handed to the handler, in its own coroutine (per the spawn
/// strategy), with the sender's address and the socket to reply on.
/// gevent: `gevent.server.DatagramServer`.
///
/// ```
/// use may_gevent::{DatagramServer, DatagramSocket};
/// use std::net::SocketAddr;
///
/// // gevent examples/udp_server.py
/// let server = DatagramServer::new(("127.0.0.1", 0),
///     |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
///         sock.sendto(format!("Received {} bytes", data.len()).as_bytes(), addr).map(|_| ())
///     })?;
/// server.start()?;
///
/// let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// client.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
/// client.send_to(b"Test udp_server", server.local_addr().unwrap())?;
/// let mut buf = [0u8; 64];
/// let (n, _) = client.recv_from(&mut buf)?;
/// assert_eq!(&buf[..n], b"Received 15 bytes");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DatagramServer {
    base: BaseServer<DatagramProto>,
}

/// Builder for a [`DatagramServer`], from [`DatagramServer::builder`].
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
    /// A UDP server on `listener` (an address or a bound UDP socket) with gevent's defaults;
    /// it binds at `start()`/`serve_forever()`. gevent: `DatagramServer(listener, handle)`.
    ///
    /// # Errors
    /// An unparsable address or a stream socket as listener (see
    /// [`DatagramServerBuilder::build`]).
    pub fn new(
        listener: impl IntoListener,
        handler: impl DatagramHandler,
    ) -> Result<DatagramServer> {
        DatagramServer::builder(listener, handler).build()
    }

    /// Start configuring a UDP server: spawn strategy, receive buffer, hooks, logger.
    pub fn builder(
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
    /// [`Error::State`](crate::Error::State) when the server is started.
    pub fn set_handle(&self, handler: impl DatagramHandler) -> Result<()> {
        self.base.set_handler(Arc::new(handler))
    }

    /// How many datagrams the kernel dropped because the socket's receive buffer was full
    /// (the server could not keep up), over the server's lifetime. Each increase is also
    /// logged at WARN level (at most one record a second). Linux only; elsewhere 0.
    /// Raise [`recv_buffer_size`](DatagramServerBuilder::recv_buffer_size) if this grows.
    pub fn dropped(&self) -> u64 {
        self.base.shared.extra.dropped()
    }

    /// How many datagrams were longer than `max_datagram_size` and reached the handler
    /// truncated (each also logged at WARN level).
    pub fn truncated(&self) -> u64 {
        self.base.shared.extra.truncated()
    }

    /// The receive buffer the kernel gave the bound socket (`SO_RCVBUF` as Linux reports
    /// it: twice the size asked for, capped by `net.core.rmem_max`). `None` when the server
    /// has no socket.
    pub fn recv_buffer_size(&self) -> Option<usize> {
        self.base.bound().and_then(|bound| bound.recv_buffer_size())
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

    /// The receive buffer to ask of the kernel (`SO_RCVBUF`), in bytes. Datagrams that
    /// arrive while the buffer is full are dropped by the kernel (counted in
    /// [`DatagramServer::dropped`] and logged), so it must hold a burst: everything clients
    /// may have in flight while the handlers run. Default: [`RECV_BUFFER_SIZE`](crate::RECV_BUFFER_SIZE)
    /// (1 MiB) on a socket the server binds; a socket passed in keeps its own size unless
    /// this is set. Linux doubles the value and caps it at `net.core.rmem_max` (raise that
    /// sysctl for more); [`DatagramServer::recv_buffer_size`] tells what the kernel gave.
    /// gevent leaves the kernel default (208 KiB on Linux).
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.common.opts.recv_buffer_size = Some(bytes);
        self
    }

    /// Check the settings and create the server (it binds at `start()`).
    ///
    /// # Errors
    /// An unparsable address, `max_accept` of 0, or a stream socket as listener.
    pub fn build(self) -> Result<DatagramServer> {
        let base = BaseServer::from_parts(
            "DatagramServer",
            self.common,
            self.handler,
            Default::default(),
        )?;
        Ok(DatagramServer { base })
    }
}

crate::server_methods::lifecycle_methods!(DatagramServer);
