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
//!   `head.rs`): 400 and close on Content-Length together with Transfer-Encoding,
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
//! # Layout
//!
//! `head.rs` (request head, RFC 9112 framing rules), `chunked.rs` (chunked decoder),
//! `input.rs` (`wsgi.input`), `response.rs` (`start_response`, `write`, framing), `environ.rs`,
//! `app.rs` (`Application`, `Body`), `handler.rs` (the connection loop), `io.rs` (buffers),
//! `conn.rs` (`Connection`), `config.rs` (limits, timeouts), `date.rs`, `access_log.rs`.

mod access_log;
mod app;
mod body;
mod chunked;
mod config;
mod conn;
mod date;
mod environ;
mod handler;
mod head;
mod input;
mod io;
mod response;
mod server;
mod syntax;

pub use app::{from_fn, Application};
pub use body::{AppError, AppResult, Body};
pub use config::{
    AccessLog, WsgiConfig, BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, KEEPALIVE_TIMEOUT,
    LINGER_MAX_BYTES, LINGER_TIMEOUT, MAX_CHUNK_EXTENSION, MAX_DISCARD, MAX_HEADERS,
    MAX_HEADER_BLOCK, MAX_REQUEST_LINE, MAX_TRAILER_LINE, MAX_TRAILER_SECTION, READ_BUFFER_SIZE,
    SERVER_SOFTWARE, WRITE_TIMEOUT,
};
pub use conn::Connection;
pub use environ::{Environ, NON_STRING_KEYS};
pub use handler::{handle_connection, WsgiHandler};
pub use input::Input;
pub use response::{ResponseError, StartResponse, Writer};
pub use server::{WsgiServer, WsgiServerBuilder};

/// Internals exposed for benchmarks and fuzzing only; not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::chunked::ChunkedDecoder;
    use super::head::{self, Limits, RequestHead};

    /// A reusable request-head parser (the engine's, with the default limits).
    #[derive(Debug, Default)]
    pub struct HeadParser(RequestHead);

    impl HeadParser {
        /// Parses one request head; returns its length, `None` when incomplete, or the status
        /// code of the rejection.
        pub fn parse(&mut self, buf: &[u8]) -> Result<Option<usize>, u16> {
            let limits = Limits::new(super::MAX_REQUEST_LINE, super::MAX_HEADER_BLOCK, None);
            head::parse(buf, &mut self.0, &limits).map_err(|err| err.status())
        }
    }

    /// Serialises a hello-world response (`start_response` with one header, a static body)
    /// through the engine's response writer into an in-memory buffer, as a benchmark target.
    pub struct ResponseBench {
        resp: super::response::Response,
        head: RequestHead,
    }

    impl std::fmt::Debug for ResponseBench {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ResponseBench")
        }
    }

    struct Sink;

    impl std::io::Read for Sink {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Ok(0)
        }
    }

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl super::Connection for Sink {
        fn set_read_timeout(&mut self, _: Option<std::time::Duration>) -> std::io::Result<()> {
            Ok(())
        }
        fn set_write_timeout(&mut self, _: Option<std::time::Duration>) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Default for ResponseBench {
        fn default() -> ResponseBench {
            let link: super::io::Shared =
                std::rc::Rc::new(std::cell::RefCell::new(super::io::Link::new(Sink)));
            let mut head = RequestHead::default();
            let limits = Limits::new(8192, 65536, None);
            let _ = head::parse(
                b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
                &mut head,
                &limits,
            );
            ResponseBench {
                resp: super::response::Response::new(link),
                head,
            }
        }
    }

    impl ResponseBench {
        /// One response with `status` and `headers` (the same arguments every time hit the
        /// `start_response` cache; vary them to measure validation); returns its wire length.
        pub fn run(
            &mut self,
            status: &str,
            headers: &[(&str, &str)],
            body: &'static [u8],
        ) -> usize {
            self.resp.begin(&self.head, true);
            if self.resp.start(status, headers).is_err() {
                return 0;
            }
            let _ = self.resp.send_body(super::Body::from(body));
            let mut link = self.resp.link.borrow_mut();
            let len = link.wbuf.len();
            link.wbuf.clear();
            len
        }
    }

    /// Decodes a whole chunked body fed in `piece`-byte slices (through the engine's decoder);
    /// returns the decoded length, or `None` if it is malformed or incomplete.
    pub fn decode_chunked(body: &[u8], piece: usize, out: &mut Vec<u8>) -> Option<usize> {
        let mut decoder = ChunkedDecoder::new();
        out.clear();
        for slice in body.chunks(piece.max(1)) {
            let mut pos = 0;
            while pos < slice.len() && !decoder.is_done() {
                pos += decoder.decode(&slice[pos..], out).ok()?;
            }
        }
        decoder.is_done().then_some(out.len())
    }
}
