//! # may_gevent
//!
//! gevent's server layer — `StreamServer`, `DatagramServer`, `Pool`, `pywsgi.WSGIServer` —
//! ported to Rust on the [`may`] stackful-coroutine runtime. Handlers stay blocking-style
//! functions running on green threads, exactly like greenlets: no `async`, no futures.
//!
//! Porting a gevent program? `docs/porting.md` in the repository lists every gevent and
//! socketserver name of the server layer, and the gevent core a server program touches, with
//! its spelling here, and shows two of gevent's examples side by side with their ports.
//!
//! | gevent / socketserver | may_gevent |
//! |---|---|
//! | `gevent.baseserver.BaseServer` | the lifecycle methods every server has; [`ServerHandle`] |
//! | `gevent.server.StreamServer` | [`StreamServer`] |
//! | `gevent.server.DatagramServer` | [`DatagramServer`] |
//! | `gevent.pool.Pool`, `Group` | [`Pool::new`], [`Pool::unbounded`], [`Group`] |
//! | `pool.map`, `imap`, `imap_unordered`, `apply`, `apply_async` | [`Pool::map`], [`Pool::imap`], [`Pool::imap_unordered`], [`Pool::apply`], [`Pool::apply_async`] |
//! | `gevent.spawn`, `Greenlet`, `joinall`, `killall` | [`spawn()`], [`Greenlet`], [`joinall`], [`killall`] |
//! | `spawn='default' / Pool / int / None` | [`Spawn`] |
//! | `handle(socket, address)` | [`StreamHandler`] (closures too) |
//! | `serve_forever`, `start`, `stop(timeout)`, `close` | same names on every server |
//! | `verify_request`, `handle_error`, `service_actions`, `handle_timeout` | builder hooks |
//! | `handle_request`, `shutdown`, `fileno`, `server_address` | same names on every server |
//! | `gevent.signal_handler(SIGTERM, server.close)` | built into `serve_forever` (SIGINT, SIGTERM) |
//! | `max_accept`, `min_delay`, `max_delay`, `stop_timeout`, `backlog` | builder settings |
//! | `gevent.threadpool.ThreadPool`, `get_hub().threadpool` | [`ThreadPool`], [`ThreadPool::default_pool`] |
//! | `gevent.socket.create_connection`, `getaddrinfo` | [`create_connection`], [`getaddrinfo`], [`Resolver`] |
//! | `urllib`/`requests` under `monkey.patch_all()` | [`client`] ([`client::get`], [`client::Client`]) |
//!
//! ## A stream server
//!
//! ```no_run
//! use may_gevent::{Address, Pool, Stream, StreamServer};
//! use std::io::Write;
//!
//! // gevent: server = StreamServer(('127.0.0.1', 16000), handle, spawn=Pool(10000))
//! //         server.serve_forever()
//! let server = StreamServer::builder(("127.0.0.1", 16000), |mut sock: Stream, addr: Address| {
//!     writeln!(sock, "Welcome to the echo server! {addr}")
//! })
//! .spawn(Pool::new(10_000))
//! .build()?;
//! server.serve_forever()?; // until Ctrl-C or SIGTERM, then a graceful stop
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! The handler runs in its own coroutine: blocking reads and writes park only that
//! coroutine. When it returns, the connection is closed. If it returns `Err` or panics, the
//! `handle_error` hook reports it (by default, a log line) and the server keeps serving.
//!
//! ## Stopping
//!
//! `stop(timeout)` (e.g. [`StreamServer::stop`]) works for every spawn strategy, in four steps:
//!
//! 1. close the listener: new connects are refused at once;
//! 2. wait up to `timeout` (default `stop_timeout`, 1 s) for the running handlers to return;
//! 3. shut down the sockets of the connections still being served: a handler blocked in a
//!    read gets end-of-file, one blocked in a write an error, and it returns through its
//!    normal path; wait up to [`STOP_GRACE`] (250 ms) more;
//! 4. cancel what still runs (handlers blocked in a sleep, a channel, a lock, another
//!    socket), one at a time, waiting up to [`KILL_TIMEOUT`] (1 s) for them to unwind; any
//!    left after that are logged at WARN.
//!
//! Measured with 20 handlers blocked in reads and `stop(100 ms)`: all 20 return through
//! step 3 about 100 ms after the call; with 20 handlers asleep, step 4 cancels and unwinds
//! all of them in a few milliseconds after the grace (about 350 ms after the call).
//!
//! `serve_forever` stops the server gracefully on SIGINT and SIGTERM by itself (turn that off
//! with the builder's `handle_signals(false)`). To stop it from another thread or coroutine,
//! take a [`ServerHandle`] ([`StreamServer::handle`]):
//!
//! ```
//! use may_gevent::{Address, Stream, StreamServer};
//!
//! let server = StreamServer::new("127.0.0.1:0", |_s: Stream, _a: Address| {})?;
//! server.start()?;
//! let control = server.handle();
//! let thread = std::thread::spawn(move || control.stop(None));
//! server.serve_forever()?; // returns once the other thread has stopped the server
//! // (also if it stopped it before serve_forever began: a closed server is not restarted)
//! thread.join().unwrap();
//! assert!(!server.started());
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! ## What a `Drop` may do when a handler is cancelled
//!
//! A `Drop` guard is the Rust spelling of gevent's `finally:`. When a handler returns — also
//! through `stop()`'s step 3 — its guards run as after any return: they may lock, write,
//! sleep, anything. When a handler is *cancelled* (step 4, or [`Pool::kill`]), may unwinds
//! its stack from the call it was parked in: the guards run during that unwinding
//! (`std::thread::panicking()` is true) and the coroutine stays marked as cancelled, so may
//! makes every call that would wait fail at once. In such a `Drop`:
//!
//! - **fine**: a `std::sync::Mutex` held for a moment (never across a may call), atomics,
//!   logging through slog, sending on a may or std channel, `SyncFlag::fire`,
//!   `Semphore::post`, closing sockets and files, a socket write that fits in the send
//!   buffer, and a `may::sync::Mutex` that no other coroutine holds — `stop()` and
//!   `Pool::kill` cancel one handler at a time and wait for it, so the guards of two
//!   cancelled handlers never contend with each other;
//! - **not fine**: waiting for anything. A `may::sync::Mutex` that another coroutine holds
//!   makes may raise a second cancel panic inside the `Drop`, and Rust aborts the process
//!   when a panic leaves a `Drop` during unwinding; a may socket read or write that would
//!   block retries forever (a busy loop on that worker); `may::coroutine::sleep` returns at
//!   once. If a guard must wait (for a lock held across blocking calls, a flush to a slow
//!   peer), check `std::thread::panicking()` and skip or defer that work, or keep the state
//!   behind a `std::sync::Mutex` that is never held across a may call.
//!
//! `tests/cancel_guards.rs` runs guards that lock a shared `may::sync::Mutex`, write to
//! another socket and log, for handlers ended by step 3 and by cancel, under every spawn
//! strategy, for `StreamServer`, `WsgiServer` and a bare `Pool`.
//!
//! ## Logging
//!
//! Servers log through [`slog`] (to standard error, INFO and up, unless given a logger):
//! ERROR for a failed handler or a broken listening socket; WARN for accept back-off,
//! datagrams the kernel dropped or that were truncated, and handlers still running after a
//! cancel; INFO for the pywsgi access log when it goes to a logger; DEBUG for client
//! disconnects, TLS handshake failures and timeouts, and the steps of `stop()`.
//!
//! slog compiles DEBUG and TRACE records out of release builds by default. An application
//! that wants the DEBUG records in a release build enables slog's feature in its own
//! `Cargo.toml` (features are unified, so this reaches the records this crate emits):
//!
//! ```toml
//! slog = { version = "2.8", features = ["release_max_level_debug"] }
//! ```
//!
//! (`max_level_*`/`release_max_level_*` set the compile-time cap; a `slog::LevelFilter` on
//! the drain still filters at run time.) This crate's own tests do exactly that, as a
//! dev-dependency, and assert DEBUG records in debug and release builds.
//!
//! ## A pool
//!
//! A [`Pool`] bounds concurrency, for a server (`.spawn(Pool::new(n))`: while it is full the
//! server accepts nothing) or on its own; see its docs.
//!
//! On its own it is gevent's `Pool` in full: [`Pool::spawn`] returns a [`Greenlet`] handle
//! (`join`, `get`, `kill`…), and [`Pool::map`], [`Pool::imap`], [`Pool::imap_unordered`],
//! [`Pool::apply`] run many calls at most `n` at once:
//!
//! ```
//! use may_gevent::Pool;
//! use std::time::Duration;
//!
//! // gevent: pool = Pool(10); results = pool.map(work, range(100))
//! let pool = Pool::new(10);
//! let results = pool.map(|n: u64| n * n, 0..100)?;
//! assert_eq!(results[9], 81);
//! for square in pool.imap_unordered(|n: u64| n * n, 0..100) {
//!     assert!(square? < 10_000); // as they finish
//! }
//! let g = pool.spawn(move || 42);
//! assert!(g.join(Duration::from_secs(5)));
//! if g.ready() && g.successful() {
//!     assert_eq!(g.get(None)?, 42);
//! }
//! # Ok::<(), may_gevent::GreenletError>(())
//! ```
//!
//! ## A datagram server
//!
//! [`DatagramServer`] calls its handler once per datagram with the sender's address and the
//! socket to reply on ([`DatagramSocket::sendto`]). The server asks the kernel for a 1 MiB
//! receive buffer ([`RECV_BUFFER_SIZE`], `recv_buffer_size` on the builder) so that a burst
//! from many clients waits there while handlers run; anything the kernel still has to drop
//! is counted ([`DatagramServer::dropped`]) and logged at WARN.
//!
//! ## A WSGI server
//!
//! [`pywsgi::WsgiServer`] (gevent's `pywsgi.WSGIServer`) serves HTTP/1.1 to an application
//! written like a WSGI callable: it gets an [`Environ`](pywsgi::Environ) and a
//! [`StartResponse`](pywsgi::StartResponse) and returns a [`Body`](pywsgi::Body).
//!
//! ```
//! use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
//! use std::io::{Read, Write};
//!
//! fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
//!     if env.path_info() == "/" {
//!         start_response.call("200 OK", &[("Content-Type", "text/html")])?;
//!         return Ok(vec![b"<b>hello world</b>".to_vec()].into());
//!     }
//!     start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
//!     Ok(vec![b"<h1>Not Found</h1>".to_vec()].into())
//! }
//!
//! // gevent: WSGIServer(('127.0.0.1', 8088), application).serve_forever()
//! let server = WsgiServer::builder("127.0.0.1:0", application).access_log(None).build()?;
//! server.start()?; // serve_forever() in a real program
//!
//! let mut client = std::net::TcpStream::connect(server.local_addr().unwrap())?;
//! client.write_all(b"GET /missing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
//! let mut reply = String::new();
//! client.read_to_string(&mut reply)?;
//! assert!(reply.starts_with("HTTP/1.1 404 Not Found\r\n"));
//! assert!(reply.ends_with("<h1>Not Found</h1>"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Unlike gevent's pywsgi, which its documentation says is not meant for the open Internet,
//! this server follows RFC 9112 strictly (malformed, ambiguous and smuggling-prone requests get
//! a 400 and the connection closes), bounds every buffer and every wait (header, keep-alive,
//! body and write timeouts), and never panics on network input. See [`pywsgi`] for the rules.
//!
//! gevent's other WSGI server, the fully buffered `gevent.wsgi.WSGIServer`, is
//! `may_gevent::wsgi::WsgiServer` (cargo feature `minihttp`, on by default): the same
//! application on may_minihttp's engine, with that engine's limits and, as measured, no gain
//! in speed over pywsgi; its module documentation says when (rarely) to pick it.
//!
//! ## TLS
//!
//! With the `tls` feature (on by default; it needs OpenSSL through `native-tls`), any stream
//! or WSGI server serves TLS — gevent's `certfile=`/`keyfile=`/`ssl_context=`:
//!
//! ```no_run
//! use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
//! # fn application(_: &mut Environ, _: &mut StartResponse<'_>) -> AppResult { Ok(().into()) }
//! let server = WsgiServer::builder("127.0.0.1:8443", application)
//!     .tls_files("server.crt", "server.key") // PEM certificate (chain) and key
//!     .build()?; // a missing file, bad PEM or a key that does not match is an error here
//! server.serve_forever()?;
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! Also `.tls_pkcs12(path, password)` and `.tls_acceptor(native_tls::TlsAcceptor)`. The
//! handshake runs in each connection's own coroutine under a deadline (`handshake_timeout`,
//! default 10 s), so a slow or silent client never delays others; a failed handshake is logged
//! at DEBUG level with the peer address and the connection is closed. Handlers receive the
//! same [`Stream`] type (`stream.is_tls()`), and a WSGI server sets `wsgi.url_scheme` to
//! `https`.
//!
//! ## Behind a load balancer
//!
//! With `proxy_protocol(peers)` a stream or WSGI server reads the PROXY protocol header (v1 or
//! v2: HAProxy's `send-proxy`/`send-proxy-v2`) that the listed balancers send first on every
//! connection, and the handler sees the client's address (the balancer's is
//! [`Stream::proxy_addr`]); from anyone else a connection is closed unhandled. A WSGI server
//! believes `X-Forwarded-For`/`X-Forwarded-Proto` (or `Forwarded`) only from
//! `forwarded_allow_ips` (default loopback, as gunicorn), resolved from the right as nginx's
//! realip module does. See [`IpAllowList`] and
//! [`WsgiConfig::forwarded_allow_ips`](pywsgi::WsgiConfig::forwarded_allow_ips) for the
//! security model.
//!
//! ```
//! use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
//! # fn app(_: &mut Environ, _: &mut StartResponse<'_>) -> AppResult { Ok(().into()) }
//! let server = WsgiServer::builder("127.0.0.1:0", app)
//!     .proxy_protocol("10.0.0.0/8")        // the balancers; PROXY v1 or v2 required from them
//!     .forwarded_allow_ips("10.0.0.0/8")   // whose X-Forwarded-* headers are believed
//!     .forwarded_remote_addr(true)         // REMOTE_ADDR = the resolved client
//!     .build()?;
//! # drop(server);
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! ## In production
//!
//! Sockets from systemd (`LISTEN_FDS`: [`Listener::from_systemd`]) or from any other process
//! ([`Listener::from_fd`], [`systemd::handover_command`] for binary upgrades), readiness
//! through `NOTIFY_SOCKET` (automatic in `serve_forever`), restarts that lose no connection,
//! HAProxy and nginx in front: see [`systemd`] and `docs/deploy.md` in the repository.
//!
//! ## Runtime
//!
//! Everything runs on may's scheduler. Configure it (`may::config().set_workers(n)`) before
//! the first server starts. Inside handlers, use may's blocking primitives
//! (`may::coroutine::sleep`, `may::sync`), not `std::thread::sleep` or std mutexes that
//! block a whole worker thread.

// Cancelling a coroutine (what `stop()` and `Pool::kill` do last) unwinds its stack; with
// `panic = "abort"` the first cancel would abort the whole process.
#[cfg(panic = "abort")]
compile_error!(
    "may_gevent needs `panic = \"unwind\"`: stop() and Pool::kill cancel coroutines by \
     unwinding their stacks, which `panic = \"abort\"` turns into a process abort. \
     Remove `panic = \"abort\"` from the profile."
);

pub use may;
pub use slog;

mod accept;
mod accept_error;
mod address;
mod backoff;
mod base_server;
pub mod client;
mod connect;
mod datagram_server;
mod datagram_socket;
mod error;
mod handle;
mod handler;
mod ip_allow;
mod log;
mod pool;
mod protocol;
mod proxy_protocol;
pub mod pywsgi;
mod registry;
mod resolver;
mod sendfile;
mod server_methods;
mod settings;
mod shared;
mod signals;
mod socket;
mod spawn;
mod stream;
mod stream_server;
pub mod systemd;
mod threadpool;
#[cfg(feature = "tls")]
mod tls;
mod wait;
#[cfg(feature = "minihttp")]
pub mod wsgi;

pub use address::{parse_address, Address};
pub use backoff::{MAX_DELAY, MIN_DELAY};
pub use connect::{create_connection, ConnectAddress};
pub use datagram_server::{DatagramServer, DatagramServerBuilder};
pub use datagram_socket::{DatagramSocket, DATAGRAM_SIZE, RECV_BUFFER_SIZE};
pub use error::{BoxError, Error, Result};
pub use handle::ServerHandle;
pub use handler::{DatagramHandler, HandlerError, HandlerResult, IntoHandlerResult, StreamHandler};
pub use ip_allow::{AllowFrom, IpAllowList};
pub use log::{default_logger, discard_logger, StderrDrain};
pub use pool::Pool;
pub use pool::{
    joinall, killall, spawn, AnyGreenlet, Greenlet, GreenletError, Group, IMap, IMapUnordered,
};
pub use proxy_protocol::{PROXY_HEADER_TIMEOUT, PROXY_V1_MAX, PROXY_V2_MAX};
pub use pywsgi::{WsgiServer, WsgiServerBuilder};
pub use resolver::{getaddrinfo, LookupFn, Resolver, RESOLVE_TIMEOUT};
pub use settings::{KILL_TIMEOUT, MAX_ACCEPT, POLL_INTERVAL, STOP_GRACE, STOP_TIMEOUT};
pub use socket::{IntoListener, Listener, BACKLOG};
pub use spawn::Spawn;
pub use stream::{PlainStream, Stream, UnixConn};
pub use stream_server::{StreamServer, StreamServerBuilder};
pub use threadpool::{ThreadPool, ThreadResult, DEFAULT_THREADPOOL_SIZE};
#[cfg(feature = "tls")]
pub use tls::{HANDSHAKE_TIMEOUT, TLS_STACK_SIZE};
