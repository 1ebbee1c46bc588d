//! A WSGI-style HTTP/1.1 server engine: gevent's `pywsgi` on `may` coroutines.
//!
//! An application is called once per request, on the connection's coroutine, with an
//! [`Environ`] and a [`StartResponse`], and returns a [`Body`]:
//!
//! ```no_run
//! use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
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
//! WsgiServer::new("127.0.0.1:8088", application)?.serve_forever()?;
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! [`WsgiServer`] runs the engine on a [`StreamServer`](crate::StreamServer)'s accept loop (so
//! every spawn strategy, `stop(timeout)`, TLS and the socketserver hooks apply); each connection
//! is served by [`handle_connection`] with the server's [`WsgiConfig`].
//!
//! # Differences from gevent
//!
//! gevent's documentation says pywsgi is not meant for the open Internet. This engine is: where
//! gevent is lenient or unsafe it follows RFC 9112 / RFC 9110 instead.
//!
//! - Every wait is bounded: a header read timeout (a client trickling its head is cut off with a
//!   408), a keep-alive idle timeout, a body read timeout and a write timeout.
//! - Request heads are parsed strictly (httparse with every leniency off, plus the checks of
//!   `head/`; the plainest heads are tokenized by a strict subset of httparse's grammar that
//!   splits them exactly as httparse does, tested against it): 400 and close on Content-Length together with Transfer-Encoding,
//!   repeated or non-numeric Content-Length, a Transfer-Encoding not ending in chunked (501 for
//!   other codings), Transfer-Encoding on HTTP/1.0, whitespace before a colon, obs-fold (gevent
//!   accepts folded headers), bare CR or LF, NUL, invalid name characters, non-ASCII request
//!   targets, a missing (HTTP/1.1) or repeated Host. `HTTP/2.0`, `HTTP/1.2`, `HTTP/0.9` get 505
//!   (gevent serves 0.9 and 1.2). A request line over 8192 bytes gets 414, a header section over
//!   64 KiB or more than 100 headers 431 (gevent: 400). Every such error response is
//!   `HTTP/1.1 <code> <reason>\r\nConnection: close\r\nContent-Length: 0\r\nDate: ...\r\n\r\n`,
//!   followed by a lingering close.
//! - Chunked request bodies are decoded by a strict state machine (no control characters in
//!   extensions, strict trailers): see `chunked.rs`.
//! - An unread request body is discarded only up to [`WsgiConfig::max_discard`]; beyond that the
//!   connection is closed (and no `100 Continue` is ever sent for it: gevent #2075).
//! - HEAD responses never carry a body; a Content-Length the application declared is enforced;
//!   streamed responses to HTTP/1.0 are close-delimited with `Connection: close` (gevent answers
//!   `keep-alive` with no framing); an application `Transfer-Encoding` header is refused.
//! - Absolute-form targets: PATH_INFO is the path only, HTTP_HOST the target's authority.
//! - `wsgi.multithread` is true: may runs coroutines on several threads.
//! - Application errors go to the error log (slog) with the environ redacted; client disconnects
//!   are logged at DEBUG and client protocol errors at INFO, never as errors.
//!
//! # Performance notes
//!
//! A response is built in a per-connection output buffer and leaves in one `write`; every request
//! already in the read buffer (pipelining) is answered before the output is flushed, once, ahead of
//! the next blocking read (streamed bodies and the `write` callable flush as they go). The environ
//! computes its keys on lookup from the parsed head; header values that need their own storage are
//! prepared on the first lookup only. `start_response` reuses its validated result when called
//! with the same arguments as the previous request of the connection. Buffers start small (1 KiB
//! read buffer), grow when a read fills them and shrink back after large requests; the parser's
//! header slots live on the heap so that a connection's coroutine touches a single stack page.
//!
//! A [`WsgiServer`]'s plain connections are read without may's per-read timer (an allocation
//! and a timer-list insert per read) and without the read that would only find the socket
//! empty: a read whose socket was left empty waits for may's readiness event at once, and one
//! sweeper coroutine per server wakes the reads whose deadline has passed (they fail with
//! `TimedOut`, never early and up to two ticks late: a tick is a tenth of the shortest
//! timeout, 5–100 ms). A keep-alive request then costs one `read` and one `write`.
//!
//! Idle keep-alive connections: after [`IDLE_RELEASE`] a connection gives its buffers back, and
//! on a [`WsgiServer`] with the default spawn strategy (Linux, not TLS) its coroutine too: it
//! waits in the server's lot, one hub coroutine per server watching all of them on an epoll set
//! nested in may's event loop, and a new handler serves its next request
//! ([`WsgiServer::parked_connections`]). 9 000 idle connections cost about 3.5 KiB each (12 KiB
//! with a coroutine each: two stack pages and the handler's state).
//!
//! # Layout
//!
//! Leaf modules first; each module imports only modules above it in this list (no cycles):
//! `syntax.rs` (byte syntax helpers), `forwarded.rs` (trusted forwarded headers), `config.rs`
//! (limits, timeouts), `conn.rs` (`Connection`),
//! `date.rs`, `body.rs` (`Body`, `AppError`), `io.rs` (buffers, the response `Phase`),
//! `chunked.rs` (chunked decoder), `head/` (request head: `parse.rs`, `framing.rs` for the RFC 9112
//! framing rules, `target.rs`), `input.rs` (`wsgi.input`), `environ/` (`Environ`; `values.rs`:
//! the `HTTP_*` values), `access_log.rs`, `response/` (`start_response` and `write`:
//! `validate.rs`, `wire.rs`, `encode.rs`, `writer.rs`), `app.rs` (`Application`), `handler.rs`
//! (the connection loop), `park.rs` (idle connections without a coroutine), `sweep.rs` (reads
//! without may's timers), `server.rs` (`WsgiServer`).

mod access_log;
mod app;
mod body;
pub(crate) mod chunked;
mod config;
mod conn;
mod date;
mod environ;
mod forwarded;
mod handler;
mod head;
mod input;
mod io;
mod park;
mod response;
mod server;
mod sweep;
mod syntax;

pub use app::{from_fn, Application};
pub use body::{AppError, AppResult, Body};
pub use config::{
    AccessLog, WsgiConfig, WsgiSettings, BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, IDLE_RELEASE,
    KEEPALIVE_TIMEOUT, LINGER_MAX_BYTES, LINGER_TIMEOUT, MAX_CHUNK_EXTENSION, MAX_DISCARD,
    MAX_HEADERS, MAX_HEADER_BLOCK, MAX_REQUEST_LINE, MAX_TRAILER_LINE, MAX_TRAILER_SECTION,
    READ_BUFFER_SIZE, SERVER_SOFTWARE, WRITE_TIMEOUT,
};
pub use conn::Connection;
pub use environ::{Environ, NON_STRING_KEYS};
pub use forwarded::ForwardedHeader;
pub use handler::{handle_connection, WsgiHandler};
pub use input::Input;
pub use response::{ResponseError, StartResponse, Writer};
#[cfg(feature = "minihttp")]
pub(crate) use server::update_environ;
pub use server::{WsgiServer, WsgiServerBuilder};

/// Internals exposed for benchmarks and fuzzing only; not a stable API.
#[doc(hidden)]
#[path = "bench.rs"]
pub mod __private;
