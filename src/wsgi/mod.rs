//! gevent's `gevent.wsgi`: the buffered WSGI server on may_minihttp's engine (feature
//! `minihttp`, on by default).
//!
//! gevent documented two WSGI servers: `gevent.wsgi.WSGIServer`, "very fast" because it ran on
//! libevent's HTTP server, but fully buffered (requests loaded whole, no streaming, no SSL), and
//! `gevent.pywsgi`, which has none of those limits. [`pywsgi`](crate::pywsgi) is the second;
//! this module is the first, on [may_minihttp](https://crates.io/crates/may_minihttp) 0.1.11.
//! [`WsgiServer`] serves the **same [`Application`](crate::pywsgi::Application)**, unchanged:
//!
//! ```no_run
//! use may_gevent::pywsgi::{AppResult, Environ, StartResponse};
//!
//! fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
//!     if env.path_info() == "/" {
//!         start_response.call("200 OK", &[("Content-Type", "text/html")])?;
//!         return Ok(b"<b>hello world</b>".into());
//!     }
//!     start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
//!     Ok(b"<h1>Not Found</h1>".into())
//! }
//!
//! // gevent: from gevent.wsgi import WSGIServer; WSGIServer(('127.0.0.1', 8088), application)
//! may_gevent::wsgi::WsgiServer::new(("127.0.0.1", 8088), application)?.serve_forever()?;
//! // the same application on pywsgi:
//! // may_gevent::pywsgi::WsgiServer::new(("127.0.0.1", 8088), application)?.serve_forever()?;
//! # Ok::<(), may_gevent::Error>(())
//! ```
//!
//! # Which one to pick
//!
//! **pywsgi.** Measured on the hello world (`cargo bench --bench http`, 1 may worker each,
//! pywsgi, this server and raw may_minihttp in the same run; figures in the README), this
//! server is not cheaper than pywsgi: the same server CPU per request at 16 keep-alive
//! connections (0.97x–1.26x pywsgi's in four runs, within the noise), 1.13x–1.47x at 256
//! connections and 1.7x–2.2x with 16-deep pipelining. may_minihttp's engine is cheap, but
//! pywsgi's is already within 1.0x–1.3x of it, and a WSGI application needs the environ,
//! `start_response` and the response checks, which this server takes from pywsgi and runs on
//! a copy of each request, on top of may_minihttp's own parsing. What it adds is
//! may_minihttp's limits, below. It is here for programs ported from `gevent.wsgi`, and for
//! the comparison; build without it with `default-features = false` (feature `minihttp`).
//!
//! # How a request is served
//!
//! may_minihttp parses the request head; this server writes it back out as bytes, reads the
//! body whole (Content-Length only), and runs pywsgi's engine on that copy in memory: the
//! environ (every key pywsgi sets, `wsgi.input` over the buffered body), the head checks and
//! limits, `start_response`, error handling (an application error or panic is a 500, logged
//! with the environ redacted, and the server keeps serving) and the access log are pywsgi's.
//! The response is collected whole (a streamed body or `write()` calls included) and handed to
//! may_minihttp, which writes it with its own `Server`, `Date` and `Content-Length` headers. A
//! response that fails after its head (a body iterator error, a short body) becomes a clean
//! 500 here, since nothing was sent yet.
//!
//! # What may_minihttp cannot do, and what this server does about it
//!
//! - **Request bodies are Content-Length only.** A chunked body would be parsed as the next
//!   request (request smuggling): any request with `Transfer-Encoding` is answered
//!   `501 Not Implemented` and the connection closed, before anything of it is read. A
//!   non-numeric or repeated Content-Length gets `400`, one over
//!   [`max_body_size`](WsgiServerBuilder::max_body_size) (default [`MAX_BODY`], 10 MiB)
//!   `413`, both with a close (may_minihttp itself panics its connection on a non-numeric
//!   one; this server never lets it see one).
//! - **Keep-alive is always on in may_minihttp.** When pywsgi's rules end the connection
//!   (`Connection: close`, HTTP/1.0 without keep-alive, a refused request), this server shuts
//!   the socket's read side: may_minihttp writes the responses it has, then reads end-of-file
//!   and closes. Requests already pipelined behind such a one are answered `400` without
//!   reaching the application.
//! - **Pipelining** is may_minihttp's: every request of a read is answered, then all the
//!   responses go out in one write. A malformed request makes may_minihttp close the
//!   connection at once, *without* the responses of the requests before it in that batch
//!   (and it prints `failed to parse http request` on standard error).
//! - **At most 16 request headers**: may_minihttp closes the connection on a 17th, without a
//!   response. Longer heads are pywsgi's limits (`max_request_line`, `max_header_block`: 414,
//!   431), but may_minihttp buffers a head until it is complete, without a bound of its own:
//!   only [`idle_timeout`](WsgiServerBuilder::idle_timeout) ends a head that never completes.
//! - **No timeouts in may_minihttp.** This server keeps a registry of the connections and ends
//!   those idle beyond [`idle_timeout`](WsgiServerBuilder::idle_timeout) (default 75 s) and
//!   bodies read for longer than [`body_read_timeout`](WsgiServerBuilder::body_read_timeout)
//!   (30 s, for the whole body); there is no write timeout.
//! - **No streaming**: a streamed body is collected whole, then sent; `write()` calls too.
//!   Upgrades (`101`) and WebSocket are not possible (the application's 101 becomes a 500);
//!   `Body::file` is read into memory. **No TLS.**
//! - **No `100 Continue`**: a client that sends `Expect: 100-continue` waits for its own
//!   timeout (curl: 1 s) before it sends the body.
//! - **Response details are may_minihttp's**: a `200` is always `HTTP/1.1 200 Ok`, every
//!   response has `Server: M` (and an application `Server` header is sent as well), every
//!   status line says `HTTP/1.1`, and every response has a `Content-Length` — a response to
//!   HEAD says `Content-Length: 0` (pywsgi announces the length a GET would get), 204 and 304
//!   responses carry `Content-Length: 0`.
//! - **Binding**: may_minihttp binds with `SO_REUSEPORT` and cannot tell its port. This server
//!   first binds the address itself without `SO_REUSEPORT` and releases it, so a port in use
//!   (by anything, including another `SO_REUSEPORT` server) is an [`Error::Bind`](crate::Error)
//!   instead of a silently shared port, and port 0 is resolved to a free port that
//!   [`WsgiServer::local_addr`] reports. Between that probe and may_minihttp's bind is a short
//!   window in which another `SO_REUSEPORT` socket could take the port too. IP addresses only
//!   (no Unix sockets, no pre-bound listeners).
//! - **Stopping**: may_minihttp's connection coroutines are detached and wait in a call that
//!   cannot be cancelled. [`WsgiServer::stop`] closes the listener (by cancelling
//!   may_minihttp's accept coroutine), shuts down idle connections, lets requests being served
//!   finish with `Connection: close`, then shuts down every socket still open; an application
//!   call that never returns cannot be cancelled and keeps its connection (logged at WARN).
//! - No `Pool`/spawn strategy, no socketserver hooks: one coroutine per connection, as
//!   may_minihttp spawns them, with may's default stack size (`may::config().set_stack_size`;
//!   may_minihttp has no per-server setting). An accept error such as `EMFILE` is retried at
//!   once by may_minihttp's accept loop, without back-off.

mod fd;
mod glue;
mod server;

pub use server::{WsgiServer, WsgiServerBuilder, MAX_BODY};
