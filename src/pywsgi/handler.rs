//! [`WsgiHandler`]: one client connection, from its first request to its close.
//!
//! gevent: `pywsgi.WSGIHandler` (`handle` → `handle_one_request` → `handle_one_response`).

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::handler::HandlerError;
use crate::pool::is_cancel;

use super::access_log::{self, LogLine};
use super::app::Application;
use super::body::AppError;
use super::config::{WsgiConfig, IDLE_RELEASE, LINGER_MAX_BYTES, LINGER_TIMEOUT};
use super::conn::{is_disconnect, is_timeout, Connection};
use super::date::{now_secs, request_clock};
use super::environ::{EnvState, Environ, Forwarded, Remote};
use super::forwarded;
use super::head::{self, Framing, HeadError, Limits};
use super::input::Input;
use super::io::{Link, ReadBuf, Shared};
use super::park::{ParkCtx, Parked};
use super::response::{Failure, Response, StartResponse};

/// Serves every request of one connection, then returns (the caller drops the connection).
///
/// This is the entry point for a server: call it on the connection's own coroutine, e.g.
/// `go!(move || handle_connection(stream, Some(peer), &config, &*app))`. It returns when the
/// client closes, a request asks for `Connection: close`, an error ends the connection, or a
/// timeout expires. If the coroutine is cancelled it unwinds (no I/O is done while unwinding).
///
/// gevent: `WSGIServer.handle(socket, address)`.
#[inline(never)]
pub fn handle_connection<C: Connection + 'static>(
    conn: C,
    peer: Option<SocketAddr>,
    config: &WsgiConfig,
    app: &dyn Application,
) {
    // On the heap, and in a frame of its own: the handler lives as long as the connection, and
    // the coroutine stack pages its frames touch stay resident while the connection is idle.
    WsgiHandler::new_boxed_dyn(Box::new(conn), peer, config, app).serve();
}

/// [`handle_connection`] for the crate's servers: `park` lets an idle keep-alive connection
/// wait in the server's lot without this coroutine ([`super::park`]); `resumed` is set for a
/// connection the lot gives back (input is waiting; read it under this keep-alive timeout).
#[inline(never)]
pub(crate) fn serve_connection(
    conn: Box<dyn Connection>,
    peer: Option<SocketAddr>,
    config: &WsgiConfig,
    app: &dyn Application,
    park: Option<ParkCtx>,
    resumed: Option<Option<Duration>>,
) {
    let (mut conn, mut park, mut resumed) = (conn, park, resumed);
    loop {
        let mut handler = WsgiHandler::new_boxed_dyn(conn, peer, config, app);
        handler.park = park.take();
        if let Some(left) = resumed.take() {
            handler.first = false;
            handler.resumed = Some(left);
        }
        handler.serve();
        let Some(deadline) = handler.parked.take() else {
            return;
        };
        let Some(ctx) = handler.park.take() else {
            return;
        };
        let Some(idle) = handler.into_conn() else {
            return;
        };
        let parked = Parked {
            conn: idle,
            fd: ctx.fd,
            peer,
            deadline,
        };
        match ctx.parking.park(parked) {
            Ok(()) => return,
            // the server is closing: an idle connection closes
            Err(parked) if parked.conn.server_closing() => return,
            // no room in the lot: wait on this coroutine (with a buffer), as without a lot
            Err(parked) => {
                conn = parked.conn;
                resumed = Some(keepalive_left(deadline));
            }
        }
    }
}

/// The keep-alive timeout left until `deadline`, at least [`IDLE_RELEASE`] (a request that
/// has begun to arrive gets time to arrive whole).
pub(crate) fn keepalive_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|at| {
        at.saturating_duration_since(Instant::now())
            .max(IDLE_RELEASE)
    })
}

/// The shared connection (its own frame: see [`handle_connection`]).
#[inline(never)]
fn new_link(conn: Box<dyn Connection>) -> Shared {
    Rc::new(RefCell::new(Link::from_box(conn)))
}

/// The boxed environ storage of a connection (its own frame: see [`handle_connection`]).
#[inline(never)]
fn new_state(link: Shared, remote: Remote, config: &WsgiConfig) -> Box<EnvState> {
    let input = Input::new(
        link,
        ReadBuf::new(config.read_buffer_size),
        Framing::Empty,
        false,
        config.body_read_timeout,
        config.max_body_size,
    );
    Box::new(EnvState::new(Arc::clone(&config.base), remote, input))
}

/// How the wait for the next request of a keep-alive connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// Input arrived (it is in the read buffer).
    Input,
    /// Input is there to read (or nothing was read): read it under this keep-alive timeout.
    Waited(Option<Duration>),
    /// Idle past [`IDLE_RELEASE`] with the buffers released: park the connection in the
    /// server's lot until this keep-alive deadline.
    Park(Option<Instant>),
    /// The client closed, the keep-alive timeout passed, a read failed, or the server is
    /// closing: close the connection.
    Closed,
}

/// What happens after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Read the next request.
    KeepAlive,
    /// Flush and close.
    Close,
    /// Flush, half-close, drain what the client still sends, close (RFC 9112 9.6).
    Linger,
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy)]
enum Reject {
    Head(HeadError),
    Timeout,
}

/// The per-connection protocol state: buffers, the parsed head, the response writer.
///
/// `WsgiHandler::new(conn, peer, &config, &app).handle()` is what [`handle_connection`] does.
///
/// gevent: `pywsgi.WSGIHandler`.
pub struct WsgiHandler<'a> {
    config: &'a WsgiConfig,
    app: &'a dyn Application,
    remote: Remote,
    /// The environ's storage (parsed head, input and its read buffer), lent to each request.
    state: Option<Box<EnvState>>,
    /// The stream and output buffer, shared with the response writer and the body reader.
    link: Shared,
    /// Boxed: the handler itself is built on the stack before it is boxed (see [`new_boxed`]).
    resp: Box<Response>,
    limits: Limits,
    first: bool,
    started: Instant,
    /// The access-log line buffer (its start is kept between lines).
    log: LogLine,
    /// The peer may send forwarded headers (`forwarded_allow_ips`).
    forwarded_trusted: bool,
    /// Where the connection can wait without a coroutine when idle (the server's lot).
    park: Option<ParkCtx>,
    /// Set when the handler ends to park the connection: its keep-alive deadline.
    parked: Option<Option<Instant>>,
    /// A connection given back by the lot: its first read runs under this keep-alive timeout.
    resumed: Option<Option<Duration>>,
}

impl fmt::Debug for WsgiHandler<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsgiHandler")
            .field("peer", &self.remote.ip())
            .field(
                "buffered",
                &self.state.as_ref().map(|state| state.input.rbuf().len()),
            )
            .field("response", &self.resp)
            .finish()
    }
}

impl<'a> WsgiHandler<'a> {
    /// Prepares to serve `conn` (nothing is read yet). `peer` is the client's address (`None` for
    /// Unix sockets: `REMOTE_ADDR` is then absent and the access log shows `-`).
    pub fn new<C: Connection + 'static>(
        conn: C,
        peer: Option<SocketAddr>,
        config: &'a WsgiConfig,
        app: &'a dyn Application,
    ) -> WsgiHandler<'a> {
        WsgiHandler::new_dyn(Box::new(conn), peer, config, app)
    }

    fn new_dyn(
        conn: Box<dyn Connection>,
        peer: Option<SocketAddr>,
        config: &'a WsgiConfig,
        app: &'a dyn Application,
    ) -> WsgiHandler<'a> {
        let proxy = conn.proxy_addr();
        let link = new_link(conn);
        let remote = Remote::new(peer);
        let mut state = new_state(Rc::clone(&link), remote, config);
        if let Some(proxy) = &proxy {
            state.set_proxy_addr(proxy);
        }
        WsgiHandler {
            config,
            app,
            remote,
            forwarded_trusted: !config.forwarded_allow_ips.is_empty()
                && config.forwarded_allow_ips.contains_peer(peer),
            state: Some(state),
            resp: Response::boxed(Rc::clone(&link)),
            link,
            limits: Limits::new(
                config.max_request_line,
                config.max_header_block,
                config.max_body_size,
            ),
            first: true,
            started: Instant::now(),
            log: LogLine::default(),
            park: None,
            parked: None,
            resumed: None,
        }
    }

    /// [`WsgiHandler::new`] on the heap, for a boxed connection; a frame of its own keeps its
    /// temporaries off the frames that live as long as the connection.
    #[inline(never)]
    fn new_boxed_dyn(
        conn: Box<dyn Connection>,
        peer: Option<SocketAddr>,
        config: &'a WsgiConfig,
        app: &'a dyn Application,
    ) -> Box<WsgiHandler<'a>> {
        Box::new(WsgiHandler::new_dyn(conn, peer, config, app))
    }

    /// The connection back, once nothing else holds it (between requests).
    fn into_conn(self: Box<Self>) -> Option<Box<dyn Connection>> {
        let WsgiHandler {
            state, resp, link, ..
        } = *self;
        drop(state);
        drop(resp);
        Rc::try_unwrap(link)
            .ok()
            .map(|link| link.into_inner().stream)
    }

    /// Serves requests until the connection is done. gevent: `WSGIHandler.handle`.
    pub fn handle(mut self) {
        self.serve();
    }

    fn serve(&mut self) {
        let res = self
            .link
            .borrow_mut()
            .stream
            .set_write_timeout(self.config.write_timeout);
        if let Err(err) = res {
            slog::debug!(self.config.base.errors, "cannot set the write timeout"; "error" => %err);
        }
        loop {
            match self.handle_one_request() {
                Next::KeepAlive => {}
                Next::Close => {
                    let _ = self.resp.flush();
                    break;
                }
                Next::Linger => {
                    self.linger();
                    break;
                }
            }
        }
    }

    /// Serves one request already available on the connection (the buffered `wsgi` server's
    /// in-memory exchange) and writes its response out; `false` when the connection must
    /// close after it.
    #[cfg(feature = "minihttp")]
    pub(crate) fn serve_buffered(&mut self) -> bool {
        match self.handle_one_request() {
            Next::KeepAlive => self.resp.flush().is_ok(),
            Next::Close => {
                let _ = self.resp.flush();
                false
            }
            Next::Linger => {
                self.linger();
                false
            }
        }
    }

    fn log(&self) -> &slog::Logger {
        &self.config.base.errors
    }

    fn peer(&self) -> &str {
        self.remote.ip().unwrap_or("-")
    }

    /// Reads one request and answers it. gevent: `WSGIHandler.handle_one_request`.
    fn handle_one_request(&mut self) -> Next {
        let Some(mut state) = self.state.take() else {
            return Next::Close;
        };
        let len = match self.read_request(&mut state) {
            Ok(Some(len)) => len,
            Ok(None) => {
                self.state = Some(state);
                return Next::Close;
            }
            Err(reject) => {
                let next = self.reject(reject, &state);
                self.state = Some(state);
                return next;
            }
        };
        self.first = false;
        let t0 = (!self.config.access_log.is_off()).then(|| request_clock().raw());
        state.input.rbuf_mut().consume(len);
        let keep_alive = state.head.keep_alive
            && self.config.keep_alive
            && !self.link.borrow().stream.server_closing();
        self.resp.begin(&state.head, keep_alive);
        state.begin_request();
        if self.forwarded_trusted && state.head.forwarded {
            self.resolve_forwarded(&mut state);
        }
        let mut env = Environ::from_state(state);

        self.handle_one_response(&mut env);

        let duration = t0.map(|t0| {
            let clock = request_clock();
            Duration::from_nanos(clock.delta_as_nanos(t0, clock.raw()))
        });
        self.log_request(&env, duration);
        let dead = self.link.borrow().phase.is_dead();
        let mut close = self.resp.closes() || dead || env.input_ref().error().is_some();
        let mut linger = false;
        if !close && !env.input().discard(self.config.max_discard) {
            // the rest of the body is too large to discard, or broken: stop reading here
            close = true;
            linger = true;
        }
        let mut state = env.into_state();
        let unread_body = !state.input.is_complete();
        let buffered = !state.input.rbuf().is_empty();
        if !close {
            state.input.rbuf_mut().shrink_if_idle();
        }
        self.state = Some(state);
        if close {
            if dead {
                return Next::Close;
            }
            return if linger || unread_body || buffered {
                Next::Linger
            } else {
                Next::Close
            };
        }
        Next::KeepAlive
    }

    /// Reads bytes until a whole request head is buffered, under the header and keep-alive
    /// timeouts. `Ok(None)`: the connection ended (EOF, idle timeout, error) before a request
    /// started. gevent: `WSGIHandler.read_requestline` + `read_request`.
    fn read_request(&mut self, state: &mut EnvState) -> Result<Option<usize>, Reject> {
        let mut keepalive = self.config.keepalive_timeout;
        if let Some(left) = self.resumed.take() {
            keepalive = left;
        } else if !self.first && state.input.rbuf().is_empty() {
            match self.wait_idle(state) {
                Idle::Input => {}
                Idle::Waited(left) => keepalive = left,
                Idle::Park(deadline) => {
                    self.parked = Some(deadline);
                    return Ok(None);
                }
                Idle::Closed => return Ok(None),
            }
        }
        let header_timeout = self.config.header_read_timeout;
        // the first head of a connection must arrive within the header timeout of the
        // connection's start; later ones within it from their first byte
        let mut deadline = if self.first {
            header_timeout.and_then(|t| self.started.checked_add(t))
        } else {
            None
        };
        let EnvState { head, input, .. } = state;
        let rbuf = input.rbuf_mut();
        let mut started = self.first || !rbuf.is_empty();
        let mut scanned = 0usize;
        let mut line_checked = false;
        loop {
            if !rbuf.is_empty() {
                let data = rbuf.data();
                if scanned == 0 || head::may_be_complete(data, scanned) {
                    match head::parse(data, head, &self.limits) {
                        Ok(Some(len)) => return Ok(Some(len)),
                        Ok(None) => {}
                        Err(err) => return Err(Reject::Head(err)),
                    }
                } else {
                    head::check_partial(data, head, &self.limits, &mut line_checked)
                        .map_err(Reject::Head)?;
                }
                scanned = data.len();
            }
            let timeout = if started {
                if deadline.is_none() {
                    deadline = header_timeout.and_then(|t| Instant::now().checked_add(t));
                }
                match deadline {
                    None => None,
                    Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                        Some(left) if !left.is_zero() => Some(left),
                        _ => return timed_out(rbuf),
                    },
                }
            } else {
                keepalive
            };
            let res = {
                let mut link = self.link.borrow_mut();
                // between requests: the server may end an idle connection when it stops
                let idle = !started;
                if idle && !link.stream.set_idle(true) {
                    return Ok(None);
                }
                let res = link.fill(rbuf, self.limits.max_head(), timeout);
                if idle {
                    link.stream.set_idle(false);
                }
                res
            };
            match res {
                Ok(0) => {
                    if rbuf.len() >= self.limits.max_head() {
                        return Err(Reject::Head(HeadError::HeadTooLarge));
                    }
                    if !rbuf.is_empty() {
                        slog::debug!(self.config.base.errors, "connection closed inside a request head";
                            "peer" => self.remote.ip().unwrap_or("-"));
                    }
                    return Ok(None);
                }
                Ok(_) => started = true,
                Err(err) if is_timeout(&err) => return timed_out(rbuf),
                Err(err) => {
                    slog::debug!(self.config.base.errors, "read error";
                        "peer" => self.remote.ip().unwrap_or("-"), "error" => %err);
                    return Ok(None);
                }
            }
        }
    }

    /// Waits for the next request of a keep-alive connection. When none started within
    /// [`IDLE_RELEASE`], gives the connection's buffers back and waits on without a buffer
    /// ([`Connection::wait_input`]) for the rest of the keep-alive timeout. `Idle::Waited`:
    /// nothing read (the connection cannot wait without a buffer), the rest of the keep-alive
    /// timeout is the value.
    fn wait_idle(&mut self, state: &mut EnvState) -> Idle {
        let keepalive = self.config.keepalive_timeout;
        if keepalive.is_some_and(|k| k <= IDLE_RELEASE) {
            return Idle::Input;
        }
        let mut link = self.link.borrow_mut();
        if !link.stream.set_idle(true) {
            return Idle::Closed;
        }
        let res = link.fill(
            state.input.rbuf_mut(),
            self.limits.max_head(),
            Some(IDLE_RELEASE),
        );
        let idle = match res {
            Ok(0) => Idle::Closed,
            Ok(_) => Idle::Input,
            Err(err) if is_timeout(&err) => {
                // The wait began at least IDLE_RELEASE ago (timeouts never fire early): the
                // keep-alive timeout counts from then, without a clock read per request.
                let now = Instant::now();
                let since = now.checked_sub(IDLE_RELEASE).unwrap_or(now);
                // idle: give the buffers back, wait on without one
                state.release_idle();
                link.release();
                self.log.release();
                let left = keepalive.map(|k| k.saturating_sub(since.elapsed()));
                match left {
                    Some(left) if left.is_zero() => Idle::Closed,
                    _ if self.park.is_some() => {
                        Idle::Park(keepalive.and_then(|k| since.checked_add(k)))
                    }
                    _ => match link.wait_input(left) {
                        Ok(None) => Idle::Waited(left),
                        Ok(Some(0)) => Idle::Closed,
                        Ok(Some(_)) => Idle::Waited(
                            keepalive.map(|k| k.saturating_sub(since.elapsed()).max(IDLE_RELEASE)),
                        ),
                        Err(err) if is_timeout(&err) => Idle::Closed,
                        Err(err) => {
                            slog::debug!(self.config.base.errors, "read error";
                                "peer" => self.remote.ip().unwrap_or("-"), "error" => %err);
                            Idle::Closed
                        }
                    },
                }
            }
            Err(err) => {
                slog::debug!(self.config.base.errors, "read error";
                    "peer" => self.remote.ip().unwrap_or("-"), "error" => %err);
                Idle::Closed
            }
        };
        link.stream.set_idle(false);
        idle
    }

    /// Answers a refused head with its canned error response.
    fn reject(&mut self, reject: Reject, state: &EnvState) -> Next {
        let (code, message) = match reject {
            Reject::Head(err) => (err.status(), err.message()),
            // RFC 9110 15.5.9: "a server SHOULD send the "close" connection option"
            Reject::Timeout => (408, "timed out reading the request head"),
        };
        slog::info!(self.log(), "invalid request"; "peer" => self.peer(), "status" => code, "reason" => message);
        self.resp.begin_reject();
        self.resp.send_error(code);
        let data = state.input.rbuf().data();
        let end = data
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(data.len());
        self.log_line(&data[..end.min(1024)], None);
        Next::Linger
    }

    /// Runs the application and sends its response. gevent: `WSGIHandler.handle_one_response`
    /// (`run_application` + `process_result`).
    fn handle_one_response(&mut self, env: &mut Environ) {
        let app = self.app;
        let resp = &mut self.resp;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            let result = {
                let mut start_response = StartResponse::new(resp);
                app.call(env, &mut start_response)
            };
            match result {
                Ok(body) => resp.send_body(body),
                Err(err) => Err(Failure::App(err)),
            }
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => self.handle_failure(failure, env),
            Err(payload) => {
                // may delivers a coroutine cancel as a panic: it must keep unwinding, it is not
                // an application error
                if is_cancel(payload.as_ref()) {
                    panic::resume_unwind(payload);
                }
                let message = panic_message(payload.as_ref());
                slog::error!(self.log(), "application panicked";
                    "panic" => message, "peer" => self.peer(), "environ" => ?env);
                self.fail_response();
            }
        }
    }

    fn handle_failure(&mut self, failure: Failure, env: &Environ) {
        match failure {
            Failure::Disconnect(err) => {
                slog::debug!(self.log(), "client disconnected"; "peer" => self.peer(), "error" => %err);
                self.resp.set_close();
            }
            Failure::Protocol(err) => {
                slog::error!(self.log(), "application error";
                    "error" => %err, "peer" => self.peer(), "environ" => ?env);
                self.fail_response();
            }
            Failure::App(err) => {
                // a body-read error the application let through is the client's doing
                if let Some(input_err) = env.input_ref().error() {
                    self.resp.set_close();
                    match input_err.status() {
                        Some(code) => {
                            slog::info!(self.log(), "invalid request body";
                                "peer" => self.peer(), "status" => code, "error" => %err);
                            if !self.resp.head_sent() {
                                self.resp.send_error(code);
                            }
                        }
                        None => {
                            slog::debug!(self.log(), "client disconnected"; "peer" => self.peer(), "error" => %err);
                        }
                    }
                    return;
                }
                if self.link.borrow().phase.is_dead() || is_app_disconnect(&err) {
                    slog::debug!(self.log(), "client disconnected"; "peer" => self.peer(), "error" => %err);
                    self.resp.set_close();
                    return;
                }
                slog::error!(self.log(), "application error";
                    "error" => %err, "peer" => self.peer(), "environ" => ?env);
                self.fail_response();
            }
        }
    }

    /// 500 if nothing was sent yet, else close (gevent: `_send_error_response_if_possible`).
    fn fail_response(&mut self) {
        if self.resp.head_sent() {
            self.resp.set_close();
        } else {
            self.resp.send_internal_error();
        }
    }

    /// Reads the request's forwarded headers (the peer is trusted).
    #[inline(never)]
    fn resolve_forwarded(&self, state: &mut EnvState) {
        let head = &state.head;
        let headers = head
            .headers
            .iter()
            .map(|entry| (entry.name.get(&head.buf), entry.value.get(&head.buf)));
        let resolved = forwarded::resolve(
            headers,
            self.config.forwarded_header,
            &self.config.forwarded_allow_ips,
        );
        if resolved != forwarded::Resolved::default() {
            state.set_forwarded(Forwarded {
                scheme: resolved.scheme,
                client: resolved.client_addr().map(|addr| Remote::new(Some(addr))),
                replace_remote: self.config.forwarded_remote_addr,
            });
        }
    }

    /// Writes the access-log line. gevent: `WSGIHandler.log_request`.
    fn log_request(&mut self, env: &Environ, duration: Option<Duration>) {
        if !self.config.access_log.is_off() {
            let remote = *env.log_remote();
            self.write_log_line(env.head().request_line(), duration, remote.ip_bytes());
        }
    }

    /// Formats and writes one access-log line. gevent: `WSGIHandler.format_request`.
    #[inline]
    fn log_line(&mut self, request_line: &[u8], duration: Option<Duration>) {
        if !self.config.access_log.is_off() {
            let remote = self.remote;
            self.write_log_line(request_line, duration, remote.ip_bytes());
        }
    }

    #[inline(never)]
    fn write_log_line(
        &mut self,
        request_line: &[u8],
        duration: Option<Duration>,
        client: Option<&[u8]>,
    ) {
        let (status, bytes_sent) = (self.resp.sent_code(), self.resp.bytes_sent());
        let date = &mut self.resp.date;
        let line = self.log.format(
            client,
            now_secs(),
            |secs| date.local_time_bytes(secs),
            request_line,
            status,
            bytes_sent,
            duration,
        );
        access_log::write_line(&self.config.access_log, line);
    }

    /// Flushes, half-closes and drains the client's input for a bounded time and size, so that
    /// closing with unread input does not reset the connection before the client read our last
    /// response (RFC 9112 9.6).
    fn linger(&mut self) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let rbuf = state.input.rbuf_mut();
        let mut link = self.link.borrow_mut();
        if link.flush().is_err() {
            return;
        }
        if link.stream.shutdown_write().is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIMEOUT;
        let mut drained = 0usize;
        rbuf.consume(rbuf.len());
        while drained < LINGER_MAX_BYTES {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            match link.fill(rbuf, 16 * 1024, Some(left)) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    drained += n;
                    rbuf.consume(n);
                }
            }
        }
    }
}

/// The header timeout expired: silently close an idle connection, 408 a started request.
fn timed_out(rbuf: &ReadBuf) -> Result<Option<usize>, Reject> {
    if rbuf.is_empty() {
        Ok(None)
    } else {
        Err(Reject::Timeout)
    }
}

fn is_app_disconnect(err: &AppError) -> bool {
    err.downcast_ref::<io::Error>().is_some_and(is_disconnect)
}

/// The panic's message (the crate's one extraction, `HandlerError::from_panic`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match HandlerError::from_panic(payload) {
        HandlerError::Panic(message) => message,
        other => other.to_string(),
    }
}
