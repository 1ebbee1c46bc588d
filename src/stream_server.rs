//! `StreamServer`: a TCP/Unix (and TLS) server (gevent: `gevent.server.StreamServer`).

use std::fmt;
use std::sync::Arc;

use crate::base_server::BaseServer;
use crate::error::Result;
use crate::handler::StreamHandler;
use crate::protocol::{StreamExtra, StreamProto};
use crate::settings::{common_builder_methods, Common};
use crate::socket::IntoListener;

/// A generic TCP/Unix stream server: each accepted connection is handed to the handler,
/// in its own coroutine, as a [`Stream`](crate::Stream) and the peer's
/// [`Address`](crate::Address). gevent: `gevent.server.StreamServer`.
///
/// [`StreamServer::new`] gives a server with gevent's defaults; [`StreamServer::builder`] sets
/// the spawn strategy, backlog, hooks, TLS and the rest. Dropping a started server stops it
/// (gevent's context manager); [`handle`](Self::handle) gives a [`ServerHandle`](crate::ServerHandle)
/// to stop it from elsewhere.
///
/// ```
/// use may_gevent::{Address, Pool, Stream, StreamServer};
/// use std::io::{BufRead, BufReader, Write};
///
/// // gevent: StreamServer(('127.0.0.1', 0), echo, spawn=Pool(100))
/// let server = StreamServer::builder(("127.0.0.1", 0), |sock: Stream, _addr: Address| {
///     let mut reader = BufReader::new(sock.try_clone()?);
///     let mut writer = sock;
///     let mut line = String::new();
///     while reader.read_line(&mut line)? > 0 {
///         writer.write_all(line.as_bytes())?;
///         line.clear();
///     }
///     Ok::<(), std::io::Error>(())
/// })
/// .spawn(Pool::new(100))
/// .build()?;
/// server.start()?;
///
/// let addr = server.local_addr().unwrap();
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"hello\n")?;
/// let mut reply = String::new();
/// BufReader::new(&client).read_line(&mut reply)?;
/// assert_eq!(reply, "hello\n");
///
/// server.stop(None); // close, wait up to 1 s for handlers, then cancel them
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamServer {
    base: BaseServer<StreamProto>,
}

/// Builder for a [`StreamServer`], from [`StreamServer::builder`].
#[must_use = "a builder does nothing until .build()"]
pub struct StreamServerBuilder {
    common: Common,
    handler: Arc<dyn StreamHandler>,
    #[cfg(feature = "tls")]
    pub(crate) tls: crate::tls::TlsBuilder,
    proxy: crate::proxy_protocol::ProxyBuilder,
}

impl fmt::Debug for StreamServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServerBuilder")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl StreamServer {
    /// A server that listens on `listener` (an address such as `("127.0.0.1", 16000)`,
    /// `"127.0.0.1:16000"`, `16000`, or an already bound socket, see [`IntoListener`]) and
    /// serves every connection with `handler`, with gevent's defaults. Nothing is bound until
    /// `start()`/`serve_forever()`. gevent: `StreamServer(listener, handle)`.
    ///
    /// # Errors
    /// An unparsable address or an unusable socket (see [`StreamServerBuilder::build`]).
    pub fn new(listener: impl IntoListener, handler: impl StreamHandler) -> Result<StreamServer> {
        StreamServer::builder(listener, handler).build()
    }

    /// Start configuring a server: spawn strategy, backlog, hooks, timeouts, TLS, logger.
    /// gevent: the keyword arguments of `StreamServer(listener, handle, ...)`.
    pub fn builder(
        listener: impl IntoListener,
        handler: impl StreamHandler,
    ) -> StreamServerBuilder {
        StreamServerBuilder {
            common: Common::new(listener),
            handler: Arc::new(handler),
            #[cfg(feature = "tls")]
            tls: Default::default(),
            proxy: Default::default(),
        }
    }

    /// Replace the handler; only before `start()`. gevent: `BaseServer.set_handle`.
    ///
    /// # Errors
    /// [`Error::State`](crate::Error::State) when the server is started.
    pub fn set_handle(&self, handler: impl StreamHandler) -> Result<()> {
        self.base.set_handler(Arc::new(handler))
    }
}

impl StreamServerBuilder {
    common_builder_methods!();
    #[cfg(feature = "tls")]
    crate::tls::tls_builder_methods!();
    crate::proxy_protocol::proxy_builder_methods!();

    /// Bind nothing yet, but check the settings and create the server.
    ///
    /// # Errors
    /// An unparsable address, `max_accept` of 0, a backlog together with a bound socket, a
    /// datagram socket as listener, a `proxy_protocol` list that does not parse, or (with TLS)
    /// unreadable or invalid certificate files.
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    pub fn build(mut self) -> Result<StreamServer> {
        #[cfg(feature = "tls")]
        let tls = {
            let (tls, stack_words) = self.tls.finish(self.common.opts.stack_words)?;
            self.common.opts.stack_words = stack_words;
            tls
        };
        let proxy = self
            .proxy
            .finish(crate::proxy_protocol::PROXY_HEADER_TIMEOUT)?;
        let extra = StreamExtra {
            #[cfg(feature = "tls")]
            tls,
            proxy,
            ..StreamExtra::default()
        };
        let base = BaseServer::from_parts("StreamServer", self.common, self.handler, extra)?;
        Ok(StreamServer { base })
    }
}

crate::server_methods::lifecycle_methods!(StreamServer);
