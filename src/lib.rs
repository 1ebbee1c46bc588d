//! # may_gevent
//!
//! gevent's server layer — `StreamServer`, `DatagramServer`, `Pool`, `pywsgi.WSGIServer` —
//! ported to Rust on the [`may`] stackful-coroutine runtime. Handlers stay blocking-style
//! functions running on green threads, exactly like greenlets: no `async`, no futures.
//!
//! | gevent / socketserver | may_gevent |
//! |---|---|
//! | `gevent.baseserver.BaseServer` | [`BaseServer`] (lifecycle every server shares) |
//! | `gevent.server.StreamServer` | [`StreamServer`] |
//! | `gevent.server.DatagramServer` | [`DatagramServer`] |
//! | `gevent.pool.Pool`, `Group` | [`Pool::new`], [`Pool::unbounded`] |
//! | `spawn='default' / Pool / int / None` | [`Spawn`] |
//! | `handle(socket, address)` | [`StreamHandler`] (closures too) |
//! | `serve_forever`, `start`, `stop(timeout)`, `close` | same names on [`BaseServer`] |
//! | `verify_request`, `handle_error`, `service_actions`, `handle_timeout` | builder hooks |
//! | `handle_request`, `shutdown`, `fileno`, `server_address` | same names on [`BaseServer`] |
//! | `max_accept`, `min_delay`, `max_delay`, `stop_timeout`, `backlog` | builder settings |
//!
//! ## A stream server
//!
//! ```no_run
//! use may_gevent::{Address, Pool, Stream, StreamServer};
//! use std::io::Write;
//!
//! // gevent: server = StreamServer(('127.0.0.1', 16000), handle, spawn=Pool(10000))
//! //         server.serve_forever()
//! let server = StreamServer::new("127.0.0.1:16000", |mut sock: Stream, addr: Address| {
//!     writeln!(sock, "Welcome to the echo server! {addr}")
//! })
//! .spawn(Pool::new(10_000))
//! .build()?;
//! server.serve_forever()?;
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! The handler runs in its own coroutine: blocking reads and writes park only that
//! coroutine. When it returns, the connection is closed. If it returns `Err` or panics, the
//! `handle_error` hook reports it (by default, a log line) and the server keeps serving.
//!
//! ## Stopping
//!
//! [`BaseServer::stop`] closes the listener (new connects are refused at once), waits up to
//! `stop_timeout` (1 s) for running handlers, then cancels the ones still running: each is
//! unwound at its current blocking call, its `Drop`s run and its socket closes. This works
//! for every spawn strategy. Clone [`StreamServer::base`] to stop the server from another
//! thread, for example one that waits for SIGTERM:
//!
//! ```
//! use may_gevent::{Address, Stream, StreamServer};
//!
//! let server = StreamServer::new("127.0.0.1:0", |_s: Stream, _a: Address| {}).build()?;
//! server.start()?;
//! let control = server.base();
//! let thread = std::thread::spawn(move || control.stop(None));
//! server.serve_forever()?; // returns once the other thread has stopped the server
//! // (also if it stopped it before serve_forever began: a closed server is not restarted)
//! thread.join().unwrap();
//! assert!(!server.started());
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! ## A pool
//!
//! A [`Pool`] bounds concurrency, for a server (`.spawn(Pool::new(n))`: while it is full the
//! server accepts nothing) or on its own; see its docs.
//!
//! ## Runtime
//!
//! Everything runs on may's scheduler. Configure it (`may::config().set_workers(n)`) before
//! the first server starts. Inside handlers, use may's blocking primitives
//! (`may::coroutine::sleep`, `may::sync`), not `std::thread::sleep` or std mutexes that
//! block a whole worker thread.

pub use may;
pub use slog;

mod accept_error;
mod address;
mod backoff;
mod base_server;
mod datagram_server;
mod error;
mod handler;
mod log;
mod pool;
pub mod pywsgi;
mod socket;
mod spawn;
mod stream;
mod stream_server;
#[cfg(feature = "tls")]
mod tls;

pub use address::{parse_address, Address};
pub use backoff::{MAX_DELAY, MIN_DELAY};
pub use base_server::{BaseServer, KILL_TIMEOUT, MAX_ACCEPT, POLL_INTERVAL, STOP_TIMEOUT};
pub use datagram_server::{DatagramServer, DatagramServerBuilder, DatagramSocket, DATAGRAM_SIZE};
pub use error::{BoxError, Error, Result};
pub use handler::{DatagramHandler, HandlerError, HandlerResult, IntoHandlerResult, StreamHandler};
pub use log::{default_logger, discard_logger, StderrDrain};
pub use pool::Pool;
pub use pywsgi::{WsgiServer, WsgiServerBuilder};
pub use socket::{IntoListener, Listener, BACKLOG};
pub use spawn::Spawn;
pub use stream::{PlainStream, Stream};
pub use stream_server::{StreamServer, StreamServerBuilder};
#[cfg(feature = "tls")]
pub use tls::{HANDSHAKE_TIMEOUT, TLS_STACK_SIZE};
