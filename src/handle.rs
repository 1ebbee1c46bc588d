//! `ServerHandle`: stop or close a server from anywhere.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::address::Address;

/// The part of a server's lifecycle a handle drives (implemented by every server's engine).
pub(crate) trait Control: Send + Sync + fmt::Debug {
    fn stop(&self, timeout: Option<Duration>);
    fn close(&self);
    fn shutdown(&self);
    fn started(&self) -> bool;
    fn closed(&self) -> bool;
    fn address(&self) -> Option<Address>;
}

/// A cloneable, `Send + Sync` handle to a server, from `server.handle()`: stop or close it
/// from another thread, another coroutine or a signal-handling thread (gevent:
/// `gevent.signal_handler(SIGTERM, server.close)`).
///
/// Dropping a handle never blocks and does nothing to the server; the server itself stops
/// when it is dropped.
///
/// ```
/// use may_gevent::{Address, Stream, StreamServer};
///
/// let server = StreamServer::new("127.0.0.1:0", |_s: Stream, _a: Address| {})?;
/// server.start()?;
/// let handle = server.handle();
/// let thread = std::thread::spawn(move || handle.stop(None));
/// server.serve_forever()?; // returns once the other thread has stopped the server
/// thread.join().unwrap();
/// assert!(!server.started());
/// # Ok::<(), may_gevent::Error>(())
/// ```
#[derive(Clone)]
pub struct ServerHandle {
    base: Arc<dyn Control>,
}

impl ServerHandle {
    pub(crate) fn new(base: Arc<dyn Control>) -> ServerHandle {
        ServerHandle { base }
    }

    /// The server's `stop(timeout)`: close, wait for handlers, shut their connections down,
    /// cancel what remains. Blocks the caller until done.
    pub fn stop(&self, timeout: impl Into<Option<Duration>>) {
        self.base.stop(timeout.into());
    }

    /// The server's `close()`: stop accepting and close the listener; `serve_forever`
    /// then stops the server and returns. Never blocks for long.
    pub fn close(&self) {
        self.base.close();
    }

    /// The server's `shutdown()`: make `serve_forever` return and wait until it has.
    pub fn shutdown(&self) {
        self.base.shutdown();
    }

    /// True between `start()` and `close()`/`stop()`.
    pub fn started(&self) -> bool {
        self.base.started()
    }

    /// True when the server has no listening socket.
    pub fn closed(&self) -> bool {
        self.base.closed()
    }

    /// The address the server listens on (the configured one before it is bound).
    pub fn address(&self) -> Option<Address> {
        self.base.address()
    }

    /// The IP address and port the server listens on (`None` for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.base.address().and_then(|address| address.as_inet())
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ServerHandle").field(&self.base).finish()
    }
}
