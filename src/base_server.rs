//! `BaseServer`: the lifecycle and accept loop every server shares
//! (gevent: `gevent.baseserver.BaseServer`; Python: `socketserver.BaseServer`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use may::coroutine::{self, JoinHandle};
use may::sync::SyncFlag;
use slog::{debug, error, info, warn, Logger};

use crate::accept_error::{classify, AcceptError};
use crate::address::Address;
use crate::backoff::{Backoff, MAX_DELAY, MIN_DELAY};
use crate::datagram_socket::{DatagramSocket, DatagramStats, RECV_BUFFER_SIZE};
use crate::error::{Error, Result};
use crate::handler::{Dispatch, HandlerError, Hooks};
use crate::pool::{cancel, is_cancel, Permit, Pool};
use crate::registry::Registry;
use crate::signals::SignalGuard;
use crate::socket::{
    may_tcp_listener, may_udp_socket, may_unix_listener, set_recv_buffer_size, tcp_listener,
    udp_socket, unix_local, ListenerKind, SocketKind, BACKLOG,
};
use crate::stream::Stream;

/// Accepts in a row before the accept loop yields to other coroutines.
/// gevent: `BaseServer.max_accept` (100).
pub const MAX_ACCEPT: usize = 100;
/// Default time `stop()` waits for handlers before cancelling them.
/// gevent: `BaseServer.stop_timeout` (1 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(1);
/// Default interval at which `serve_forever` calls `service_actions`.
/// Python: `serve_forever(poll_interval=0.5)`.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long `stop()` waits for cancelled handlers to unwind. gevent: `pool.kill(timeout=1)`.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `stop()` gives handlers to return after it has shut their connections down,
/// before it cancels those still running (see [`StreamServer::stop`](crate::StreamServer::stop)).
pub const STOP_GRACE: Duration = Duration::from_millis(250);

/// Settings fixed when the server is built.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) backlog: Option<i32>,
    pub(crate) reuse_port: bool,
    pub(crate) max_accept: usize,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) timeout: Option<Duration>,
    /// Handler coroutine stack, in machine words (may's unit); `None`: may's default.
    pub(crate) stack_words: Option<usize>,
    /// `serve_forever` stops the server on SIGINT/SIGTERM.
    pub(crate) handle_signals: bool,
    pub(crate) max_datagram_size: usize,
    /// `SO_RCVBUF` to ask for on a datagram socket; `None`: [`RECV_BUFFER_SIZE`] on a socket
    /// the server binds, the socket's own on a given one.
    pub(crate) recv_buffer_size: Option<usize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backlog: None,
            reuse_port: false,
            max_accept: MAX_ACCEPT,
            min_delay: MIN_DELAY,
            max_delay: MAX_DELAY,
            stop_timeout: STOP_TIMEOUT,
            poll_interval: POLL_INTERVAL,
            timeout: None,
            stack_words: None,
            handle_signals: true,
            max_datagram_size: crate::datagram_socket::DATAGRAM_SIZE,
            recv_buffer_size: None,
        }
    }
}

/// What every server builder collects besides its handler.
pub(crate) struct Common {
    pub(crate) listener: Result<crate::Listener>,
    pub(crate) spawn: crate::Spawn,
    pub(crate) opts: Options,
    pub(crate) hooks: Hooks,
    pub(crate) logger: Option<Logger>,
}

impl Common {
    pub(crate) fn new(listener: impl crate::IntoListener) -> Common {
        Common {
            listener: listener.into_listener(),
            spawn: crate::Spawn::Default,
            opts: Options::default(),
            hooks: Hooks::default(),
            logger: None,
        }
    }
}

impl fmt::Debug for Common {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Common")
            .field("listener", &self.listener)
            .field("spawn", &self.spawn)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// A bound socket, shared by the server and its accept loop.
pub(crate) enum Bound {
    Tcp(may::net::TcpListener),
    Unix(may::os::unix::net::UnixListener),
    Udp(may::net::UdpSocket, DatagramSocket),
}

pub(crate) enum Incoming {
    Stream(Stream, Address),
    /// A datagram, its sender, and whether it was longer than `max_datagram_size` (truncated).
    Datagram(Vec<u8>, SocketAddr, bool),
}

impl Bound {
    /// gevent: `do_read`: accept one connection or receive one datagram (`buf` is one byte
    /// longer than the largest datagram delivered whole).
    fn do_read(&self, buf: &mut [u8]) -> io::Result<Incoming> {
        match self {
            Bound::Tcp(l) => {
                let (s, addr) = l.accept()?;
                Ok(Incoming::Stream(Stream::tcp(s), Address::Inet(addr)))
            }
            Bound::Unix(l) => {
                let (s, addr) = l.accept()?;
                Ok(Incoming::Stream(Stream::unix(s), Address::from_unix(&addr)))
            }
            Bound::Udp(sock, socket) => {
                let (n, addr, truncated) = socket.receive(sock, buf)?;
                Ok(Incoming::Datagram(buf[..n].to_vec(), addr, truncated))
            }
        }
    }

    fn local_address(&self) -> Option<Address> {
        match self {
            Bound::Tcp(l) => l.local_addr().ok().map(Address::Inet),
            Bound::Unix(l) => Some(unix_local(l)),
            Bound::Udp(s, _) => s.local_addr().ok().map(Address::Inet),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Bound::Tcp(l) => l.as_raw_fd(),
            Bound::Unix(l) => l.as_raw_fd(),
            Bound::Udp(s, _) => s.as_raw_fd(),
        }
    }

    fn shutdown(&self) {
        // Wakes a blocked accept/recv at once (Linux) and makes new connects fail.
        #[allow(unsafe_code)]
        // SAFETY: shutdown(2) on a descriptor we own; it does not close or invalidate it.
        unsafe {
            libc::shutdown(self.fd(), libc::SHUT_RDWR);
        }
    }
}

/// Where the listener comes from.
enum Source {
    /// Bind this address at every `start()` (gevent: `init_socket`).
    Address(SocketAddr),
    /// An already bound socket, not yet handed to may.
    Socket(SocketKind, std::os::fd::OwnedFd),
    /// The given socket was used and closed: it cannot be started again.
    Spent,
}

struct State {
    source: Source,
    bound: Option<Arc<Bound>>,
    address: Option<Address>,
    accept_loop: Option<JoinHandle<()>>,
    started: bool,
    /// Fired by `close()`; `serve_forever` waits on it. Replaced at each `start()`.
    stop_event: Arc<SyncFlag>,
    /// Fired when `serve_forever` has returned (for `shutdown()`).
    serving: Option<Arc<SyncFlag>>,
    /// `close()` was called since the last `start()`: `serve_forever` must not restart.
    close_requested: bool,
    /// The error that made the accept loop close the server; `serve_forever` returns it.
    failure: Option<io::Error>,
}

pub(crate) struct Shared {
    pub(crate) name: &'static str,
    datagram: bool,
    pub(crate) opts: Options,
    pub(crate) pool: Pool,
    pub(crate) hooks: Hooks,
    pub(crate) logger: Logger,
    dispatch: Mutex<Dispatch>,
    state: Mutex<State>,
    /// Called on every `start()` (true) and `close()` (false), e.g. to end idle keep-alive
    /// connections when a WSGI server stops.
    lifecycle: Mutex<Vec<LifecycleHook>>,
    /// The connections being served (stream servers), for `stop()`'s shutdown step.
    connections: Arc<Registry>,
    /// Drop and truncation counts of a datagram server.
    pub(crate) datagram_stats: Arc<DatagramStats>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsOptions>,
}

pub(crate) type LifecycleHook = Arc<dyn Fn(bool) + Send + Sync>;

/// The lifecycle every server shares: `start`, `serve_forever`, `stop(timeout)`, `close`,
/// `start_accepting`/`stop_accepting`, `handle_request`, `shutdown`, and the bound address.
/// gevent: `gevent.baseserver.BaseServer`; Python: `socketserver.BaseServer`. Each server type
/// holds one and exposes these methods as its own (`server_methods.rs`); a
/// [`ServerHandle`](crate::ServerHandle) holds a clone.
#[derive(Clone)]
pub(crate) struct BaseServer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for BaseServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        let mut d = f.debug_struct(self.shared.name);
        if let Some(address) = &state.address {
            d.field("address", &format_args!("{address}"));
        }
        if let Some(bound) = &state.bound {
            d.field("fileno", &bound.fd());
        }
        d.field("started", &state.started)
            .field("pool", &self.shared.pool)
            .finish()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // State updates are single assignments; a panic cannot leave them half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, err: HandlerError, address: &Address) {
        match &self.hooks.handle_error {
            Some(hook) => hook(&err, address),
            // A client that went away is normal, not an error (pywsgi logs it the same way).
            None if err.is_disconnect() => debug!(self.logger, "client disconnected";
                "server" => self.name, "peer" => %address, "error" => %err),
            None => error!(self.logger, "handler failed";
                "server" => self.name, "peer" => %address, "error" => %err),
        }
    }

    /// Run a handler body: errors and panics go to `handle_error`; a cancel keeps unwinding.
    pub(crate) fn guarded(&self, address: &Address, body: impl FnOnce() -> crate::HandlerResult) {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.report(HandlerError::Error(err), address),
            Err(payload) if is_cancel(payload.as_ref()) => resume_unwind(payload),
            Err(payload) => self.report(HandlerError::from_panic(payload.as_ref()), address),
        }
    }

    fn verify(&self, address: &Address) -> bool {
        self.hooks
            .verify_request
            .as_ref()
            .is_none_or(|verify| verify(address))
    }

    /// Serve one accepted connection or datagram (in the handler's own coroutine).
    fn handle(self: &Arc<Shared>, dispatch: &Dispatch, incoming: Incoming, bound: &Bound) {
        match (dispatch, incoming) {
            (Dispatch::Stream(handler), Incoming::Stream(stream, address)) => {
                // Tracked from before a TLS handshake, so that stop() can end that too.
                let registration = self.connections.register(stream.as_fd());
                #[cfg(feature = "tls")]
                let stream = match crate::tls::wrap(self.tls.as_ref(), &self.logger, stream, &address) {
                    Some(stream) => stream,
                    None => return,
                };
                let mut stream = stream;
                stream.set_registration(registration);
                self.guarded(&address, || handler.handle(stream, address.clone()));
            }
            (Dispatch::Datagram(handler), Incoming::Datagram(data, addr, _)) => {
                if let Bound::Udp(_, socket) = bound {
                    self.guarded(&Address::Inet(addr), || handler.handle(data, addr, socket));
                }
            }
            _ => {
                error!(self.logger, "handler does not match the socket type"; "server" => self.name)
            }
        }
    }
}

/// `handle_and_close_when_done`: spawn (or run) the handler for one connection.
fn do_handle(shared: &Arc<Shared>, bound: &Arc<Bound>, incoming: Incoming, permit: Permit) {
    let dispatch = shared
        .dispatch
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (s, b) = (shared.clone(), bound.clone());
    let spawned = shared
        .pool
        .spawn_with(permit, shared.opts.stack_words, move || {
            s.handle(&dispatch, incoming, &b);
        });
    if let Err(err) = spawned {
        // gevent test_error_in_spawn: the connection is closed (dropped with the closure).
        error!(shared.logger, "cannot spawn a handler"; "server" => shared.name, "error" => %err);
        coroutine::sleep(shared.opts.min_delay);
    }
}

/// The accept loop (gevent: `_do_read`), in its own coroutine.
fn accept_loop(shared: Arc<Shared>, bound: Arc<Bound>) {
    let opts = &shared.opts;
    let mut backoff = Backoff::new(opts.min_delay, opts.max_delay);
    let mut buf = datagram_buffer(&shared);
    let mut streak = 0usize;
    loop {
        // While the pool is full this blocks: nothing is accepted (gevent: stop_accepting()
        // until a slot frees).
        let permit = shared.pool.acquire();
        match bound.do_read(&mut buf) {
            Ok(incoming) => {
                backoff.reset();
                let verified = match &incoming {
                    Incoming::Stream(_, address) => shared.verify(address),
                    Incoming::Datagram(data, addr, truncated) => {
                        if *truncated {
                            warn!(shared.logger, "datagram longer than max_datagram_size, truncated";
                                "server" => shared.name, "peer" => %addr,
                                "max_datagram_size" => data.len());
                        }
                        shared.verify(&Address::Inet(*addr))
                    }
                };
                if verified {
                    do_handle(&shared, &bound, incoming, permit);
                } else {
                    // socketserver: verify_request false -> close without handling.
                    drop(incoming);
                }
                streak += 1;
                if streak >= opts.max_accept {
                    streak = 0;
                    coroutine::yield_now();
                }
            }
            Err(err) => {
                drop(permit);
                streak = 0;
                match classify(&err) {
                    AcceptError::Retry => {
                        debug!(shared.logger, "accept interrupted"; "error" => %err);
                    }
                    AcceptError::Fatal => {
                        {
                            let mut state = shared.state();
                            if !state.started {
                                return; // we are being closed: shutdown() woke the accept
                            }
                            error!(shared.logger, "the listening socket failed, closing the server";
                                "server" => shared.name, "error" => %err);
                            state.failure = Some(err);
                        }
                        BaseServer {
                            shared: shared.clone(),
                        }
                        .close_inner(false);
                        return;
                    }
                    AcceptError::Backoff => {
                        let pause = backoff.fail();
                        warn!(shared.logger, "accept failed, pausing";
                            "server" => shared.name, "error" => %err,
                            "pause_ms" => pause.as_millis() as u64);
                        coroutine::sleep(pause);
                    }
                }
            }
        }
    }
}

/// The receive buffer of a datagram server's loop: one byte longer than the largest datagram
/// delivered whole, so that a longer one is seen (and reported) as truncated.
fn datagram_buffer(shared: &Shared) -> Vec<u8> {
    if shared.datagram {
        vec![0u8; shared.opts.max_datagram_size + 1]
    } else {
        Vec::new()
    }
}

impl BaseServer {
    pub(crate) fn from_parts(
        name: &'static str,
        datagram: bool,
        common: Common,
        dispatch: Dispatch,
        #[cfg(feature = "tls")] tls: Option<crate::tls::TlsOptions>,
    ) -> Result<BaseServer> {
        let Common {
            listener,
            spawn,
            opts,
            hooks,
            logger,
        } = common;
        let listener = listener?;
        let logger = logger.unwrap_or_else(crate::log::default_logger);
        if opts.max_accept < 1 {
            return Err(Error::InvalidConfig(
                "max_accept must be a positive number".into(),
            ));
        }
        let source = match listener.kind {
            ListenerKind::Address(addr) => Source::Address(addr),
            ListenerKind::Socket(kind, fd) => {
                if opts.backlog.is_some() {
                    // gevent: TypeError('backlog must be None when a socket instance is passed')
                    return Err(Error::InvalidConfig(
                        "backlog must not be set when an already bound socket is passed".into(),
                    ));
                }
                let wants_udp = datagram;
                if (kind == SocketKind::Udp) != wants_udp {
                    return Err(Error::InvalidConfig(format!(
                        "{name} needs a {} socket, got a {kind:?} socket",
                        if wants_udp { "datagram" } else { "stream" }
                    )));
                }
                Source::Socket(kind, fd)
            }
        };
        let server = BaseServer {
            shared: Arc::new(Shared {
                name,
                datagram,
                opts,
                pool: spawn.into_pool(),
                hooks,
                logger,
                dispatch: Mutex::new(dispatch),
                lifecycle: Mutex::new(Vec::new()),
                connections: Arc::new(Registry::default()),
                datagram_stats: Arc::new(DatagramStats::default()),
                state: Mutex::new(State {
                    source,
                    bound: None,
                    address: None,
                    accept_loop: None,
                    started: false,
                    stop_event: Arc::new(SyncFlag::new()),
                    serving: None,
                    close_requested: false,
                    failure: None,
                }),
                #[cfg(feature = "tls")]
                tls,
            }),
        };
        // A given socket is live at once: connects queue in its backlog until start()
        // (gevent test: created on a pre-bound socket, not started -> connect OK, no response).
        {
            let mut state = server.shared.state();
            if matches!(state.source, Source::Socket(..)) {
                server.init_socket_locked(&mut state)?;
            }
        }
        Ok(server)
    }

    pub(crate) fn on_lifecycle(&self, hook: LifecycleHook) {
        self.shared
            .lifecycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn run_lifecycle(&self, started: bool) {
        let hooks = self
            .shared
            .lifecycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for hook in hooks {
            hook(started);
        }
    }

    pub(crate) fn set_dispatch(&self, dispatch: Dispatch) -> Result<()> {
        if self.started() {
            return Err(Error::State("set_handle() must be called before start()"));
        }
        *self
            .shared
            .dispatch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = dispatch;
        Ok(())
    }

    fn init_socket_locked(&self, state: &mut State) -> Result<()> {
        if state.bound.is_some() {
            return Ok(());
        }
        let opts = &self.shared.opts;
        let bound = match std::mem::replace(&mut state.source, Source::Spent) {
            Source::Address(addr) => {
                state.source = Source::Address(addr);
                if self.shared.datagram {
                    let size = opts.recv_buffer_size.unwrap_or(RECV_BUFFER_SIZE);
                    let sock = udp_socket(addr, opts.reuse_port, size)?;
                    let send = DatagramSocket::new(
                        &sock,
                        self.shared.datagram_stats.clone(),
                        self.shared.logger.clone(),
                        self.shared.name,
                    )?;
                    Bound::Udp(sock, send)
                } else {
                    let backlog = opts.backlog.unwrap_or(BACKLOG);
                    Bound::Tcp(tcp_listener(addr, backlog, opts.reuse_port)?)
                }
            }
            Source::Socket(kind, fd) => match kind {
                SocketKind::Tcp => Bound::Tcp(may_tcp_listener(fd)),
                SocketKind::Unix => Bound::Unix(may_unix_listener(fd)),
                SocketKind::Udp => {
                    if let Some(size) = opts.recv_buffer_size {
                        set_recv_buffer_size(&fd, size)
                            .map_err(|err| Error::io("setting the receive buffer size", err))?;
                    }
                    let sock = may_udp_socket(fd);
                    let send = DatagramSocket::new(
                        &sock,
                        self.shared.datagram_stats.clone(),
                        self.shared.logger.clone(),
                        self.shared.name,
                    )?;
                    Bound::Udp(sock, send)
                }
            },
            Source::Spent => {
                return Err(Error::State(
                    "the server was closed and its listening socket with it",
                ))
            }
        };
        state.address = bound.local_address();
        state.bound = Some(Arc::new(bound));
        Ok(())
    }

    /// Bind the listener now if it is not bound yet (normally done by `start()`), so that
    /// [`address`](Self::address) knows the real port.
    ///
    /// # Errors
    /// The address cannot be bound (e.g. [`Error::Bind`] when the port is in use).
    /// gevent: `BaseServer.init_socket`.
    pub(crate) fn init_socket(&self) -> Result<()> {
        let mut state = self.shared.state();
        self.init_socket_locked(&mut state)
    }

    /// Start accepting connections in the background and return at once. Binds the address
    /// first if needed. Calling it on a started server does nothing. gevent: `BaseServer.start`.
    ///
    /// # Errors
    /// Binding failed, or the server was closed and was built on a socket (which is gone).
    pub(crate) fn start(&self) -> Result<()> {
        let mut state = self.shared.state();
        if state.started {
            return Ok(());
        }
        self.init_socket_locked(&mut state)?;
        state.started = true;
        state.close_requested = false;
        state.failure = None;
        if state.stop_event.is_fired() {
            state.stop_event = Arc::new(SyncFlag::new());
        }
        self.run_lifecycle(true);
        self.start_accepting_locked(&mut state)
    }

    fn start_accepting_locked(&self, state: &mut State) -> Result<()> {
        if !state.started || state.accept_loop.is_some() {
            return Ok(());
        }
        let Some(bound) = state.bound.clone() else {
            return Err(Error::State("the server has no listening socket"));
        };
        let shared = self.shared.clone();
        let builder = coroutine::Builder::new().name(format!("{}-accept", self.shared.name));
        let handle = may::go!(builder, move || accept_loop(shared, bound))
            .map_err(|err| Error::io("spawning the accept loop", err))?;
        state.accept_loop = Some(handle);
        Ok(())
    }

    /// Resume accepting after [`stop_accepting`](Self::stop_accepting). Does nothing if the
    /// server is not started. gevent: `BaseServer.start_accepting`.
    ///
    /// # Errors
    /// The accept coroutine could not be spawned.
    pub(crate) fn start_accepting(&self) -> Result<()> {
        let mut state = self.shared.state();
        self.start_accepting_locked(&mut state)
    }

    /// Stop accepting, keeping the listening socket open: new clients wait in the backlog.
    /// Running handlers are not touched. gevent: `BaseServer.stop_accepting`.
    pub(crate) fn stop_accepting(&self) {
        let handle = self.shared.state().accept_loop.take();
        if let Some(handle) = handle {
            cancel(handle.coroutine());
            handle.wait();
        }
    }

    /// True between `start()` and `close()`/`stop()`. gevent: `BaseServer.started`.
    pub(crate) fn started(&self) -> bool {
        self.shared.state().started
    }

    /// True when the server has no listening socket (before the first `start()` of a server
    /// built on an address, and after `close()`). gevent: `BaseServer.closed`.
    pub(crate) fn closed(&self) -> bool {
        self.shared.state().bound.is_none()
    }

    /// The address the server is bound to — after binding to port 0, the real port.
    /// `None` before the socket is bound. gevent: `BaseServer.address`.
    pub(crate) fn address(&self) -> Option<Address> {
        let state = self.shared.state();
        match (&state.address, &state.source) {
            (Some(address), _) => Some(address.clone()),
            // Not bound yet: the configured address, as gevent's `server.address`.
            (None, Source::Address(addr)) => Some(Address::Inet(*addr)),
            (None, _) => None,
        }
    }

    /// The listening socket's file descriptor. Python: `socketserver.BaseServer.fileno`.
    pub(crate) fn fileno(&self) -> Option<RawFd> {
        self.shared.state().bound.as_ref().map(|bound| bound.fd())
    }

    /// The kernel's receive buffer size of a datagram server's socket.
    pub(crate) fn recv_buffer_size(&self) -> Option<usize> {
        match self.shared.state().bound.as_deref() {
            Some(Bound::Udp(sock, _)) => crate::socket::recv_buffer_size(sock.inner()).ok(),
            _ => None,
        }
    }

    /// The pool that runs (and tracks) the handlers.
    pub(crate) fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// The logger the server reports to.
    pub(crate) fn logger(&self) -> &Logger {
        &self.shared.logger
    }

    /// Stop accepting and close the listening socket: new connects are refused at once.
    /// Running handlers are not touched (see [`stop`](Self::stop)). Also makes
    /// `serve_forever` return. gevent: `BaseServer.close`.
    pub(crate) fn close(&self) {
        self.close_inner(true);
    }

    fn close_inner(&self, wait_accept_loop: bool) {
        let (accept_loop, bound, stop_event) = {
            let mut state = self.shared.state();
            state.started = false;
            state.close_requested = true;
            (
                state.accept_loop.take(),
                state.bound.take(),
                state.stop_event.clone(),
            )
        };
        if let Some(bound) = &bound {
            bound.shutdown();
        }
        if let Some(handle) = accept_loop {
            cancel(handle.coroutine());
            if wait_accept_loop && !std::thread::panicking() {
                handle.wait();
            }
        }
        // The accept loop held the other reference; the socket closes here.
        drop(bound);
        self.run_lifecycle(false);
        stop_event.fire();
    }

    /// Stop the server: close it, let the running handlers finish, and end those that do
    /// not. gevent: `BaseServer.stop(timeout)` — but here for every spawn strategy, not only
    /// for a pool, and with a gentler step before the cancel:
    ///
    /// 1. [`close`](Self::close): stop accepting; new connects are refused.
    /// 2. Wait up to `timeout` (default: `stop_timeout`, 1 s) for the handlers to return.
    /// 3. Shut down the socket of every connection still being served (stream servers): a
    ///    handler blocked in `read` gets end-of-file, one blocked in `write` an error, and it
    ///    leaves through its normal path — its `Drop`s run as on any return, with nothing
    ///    restricted. Then wait up to [`STOP_GRACE`] (250 ms) more.
    /// 4. Cancel what is still running (handlers blocked elsewhere: a sleep, a channel, a
    ///    lock, another socket), **one handler at a time**, and wait up to [`KILL_TIMEOUT`]
    ///    (1 s) in all for them to unwind. A cancelled handler unwinds from its blocking call
    ///    with its `Drop`s running during the unwinding, where may makes every further
    ///    blocking call fail at once: see the crate docs, "What a `Drop` may do when a handler
    ///    is cancelled". Handlers still running after that are logged at WARN and left alone.
    ///
    /// Called from one of this server's own handlers, it would wait for that handler too (and
    /// cancel it after the timeout): there, call [`close`](Self::close), or run `stop` in a
    /// new coroutine or thread.
    pub(crate) fn stop(&self, timeout: impl Into<Option<Duration>>) {
        self.close();
        let timeout = timeout.into().unwrap_or(self.shared.opts.stop_timeout);
        let shared = &self.shared;
        let pool = &shared.pool;
        if pool.join(timeout) {
            return;
        }
        let shut = shared.connections.shutdown_all();
        if shut > 0 {
            debug!(shared.logger, "stop: shutting down the connections still served";
                "server" => shared.name, "connections" => shut, "running" => pool.len());
            if pool.join(STOP_GRACE) {
                return;
            }
        }
        debug!(shared.logger, "stop: cancelling handlers"; "server" => shared.name,
            "running" => pool.len());
        if !pool.kill(KILL_TIMEOUT) {
            warn!(shared.logger, "handlers still running after cancel";
                "server" => shared.name, "running" => pool.len());
        }
    }

    /// Start the server if needed and block until it is closed — by `close()`, `stop()`,
    /// `shutdown()` or a fatal accept error — then `stop()` it with `stop_timeout`.
    /// A server that was started and then closed (e.g. by another thread just before this
    /// call) is not restarted: this returns at once; call `start()` first to restart it.
    /// While it waits it calls the `service_actions` hook every `poll_interval`.
    /// gevent: `BaseServer.serve_forever`; Python: `serve_forever(poll_interval)`.
    ///
    /// # Errors
    /// Starting failed (e.g. the port is in use), or the listening socket failed while
    /// serving (e.g. its descriptor was closed or shut down under the server:
    /// [`Error::Io`] with the accept error as its source). The server is closed and stopped
    /// in both cases.
    pub(crate) fn serve_forever(&self) -> Result<()> {
        let done = Arc::new(SyncFlag::new());
        let mut state = self.shared.state();
        if !state.started {
            if state.close_requested {
                // Closed from elsewhere after a start(): do not resurrect the server.
                drop(state);
                self.stop(None);
                return self.take_failure();
            }
            drop(state);
            self.start()?;
            state = self.shared.state();
        }
        state.serving = Some(done.clone());
        let stop_event = state.stop_event.clone();
        drop(state);
        // SIGINT/SIGTERM close the server; the wait below then ends and it is stopped.
        let _signals = self
            .shared
            .opts
            .handle_signals
            .then(|| self.catch_signals())
            .flatten();
        match &self.shared.hooks.service_actions {
            Some(actions) => {
                while !stop_event.wait_timeout(self.shared.opts.poll_interval) {
                    actions();
                }
            }
            None => stop_event.wait(),
        }
        self.stop(None);
        self.shared.state().serving = None;
        done.fire();
        self.take_failure()
    }

    /// Close this server on SIGINT/SIGTERM while the guard lives.
    fn catch_signals(&self) -> Option<SignalGuard> {
        let weak = Arc::downgrade(&self.shared);
        let on_signal = Arc::new(move |signal: libc::c_int| {
            if let Some(shared) = weak.upgrade() {
                info!(shared.logger, "signal received, stopping"; "server" => shared.name,
                    "signal" => signal);
                BaseServer { shared }.close();
            }
        });
        match SignalGuard::install(on_signal) {
            Ok(guard) => Some(guard),
            Err(err) => {
                warn!(self.shared.logger, "cannot install the SIGINT/SIGTERM handlers";
                    "server" => self.shared.name, "error" => %err);
                None
            }
        }
    }

    /// The accept loop's fatal error, if it closed the server, as `serve_forever`'s result.
    fn take_failure(&self) -> Result<()> {
        match self.shared.state().failure.take() {
            Some(err) => Err(Error::io(
                "the listening socket failed and the server was closed",
                err,
            )),
            None => Ok(()),
        }
    }

    /// Ask `serve_forever` to return and wait until it has (it stops the server on its way
    /// out). Without a running `serve_forever` this closes the server. Python:
    /// `socketserver.BaseServer.shutdown`.
    pub(crate) fn shutdown(&self) {
        let serving = self.shared.state().serving.clone();
        self.close();
        if let Some(done) = serving {
            done.wait();
        }
    }

    /// Accept and handle exactly one connection (or datagram), blocking the calling coroutine
    /// or thread until it is handled, waiting at most the server's `timeout`; if nothing came, call the
    /// `handle_timeout` hook. Returns true when a request was handled.
    /// Python: `socketserver.BaseServer.handle_request`.
    ///
    /// # Errors
    /// The server's accept loop is running ([`Error::State`]), binding failed, or accept
    /// failed.
    pub(crate) fn handle_request(&self) -> Result<bool> {
        let bound = {
            let mut state = self.shared.state();
            if state.accept_loop.is_some() {
                return Err(Error::State(
                    "handle_request() cannot run while the server is accepting (started)",
                ));
            }
            self.init_socket_locked(&mut state)?;
            state
                .bound
                .clone()
                .ok_or(Error::State("the server has no listening socket"))?
        };
        let flag = Arc::new(SyncFlag::new());
        let (b, f) = (bound.clone(), flag.clone());
        let mut buf = datagram_buffer(&self.shared);
        let reader = may::go!(move || {
            let got = b.do_read(&mut buf);
            f.fire();
            got
        });
        let arrived = match self.shared.opts.timeout {
            Some(timeout) => flag.wait_timeout(timeout),
            None => {
                flag.wait();
                true
            }
        };
        if !arrived {
            cancel(reader.coroutine());
        }
        let incoming = match reader.join() {
            // A connection that came just as the timeout passed is handled, not dropped.
            Ok(Ok(incoming)) => incoming,
            Ok(Err(err)) if arrived => return Err(Error::io("accept failed", err)),
            Err(_) if arrived => return Err(Error::State("accept was interrupted")),
            _ => {
                if let Some(hook) = &self.shared.hooks.handle_timeout {
                    hook();
                }
                return Ok(false);
            }
        };
        let address = match &incoming {
            Incoming::Stream(_, address) => address.clone(),
            Incoming::Datagram(_, addr, _) => Address::Inet(*addr),
        };
        if !self.shared.verify(&address) {
            return Ok(true);
        }
        let dispatch = self
            .shared
            .dispatch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // The handler (and a TLS handshake) get the server's handler stack, not the caller's.
        let shared = self.shared.clone();
        let mut builder = coroutine::Builder::new();
        if let Some(words) = self.shared.opts.stack_words {
            builder = builder.stack_size(words);
        }
        let worker = may::go!(builder, move || shared.handle(&dispatch, incoming, &bound))
            .map_err(|err| Error::io("spawning the request handler", err))?;
        worker.wait();
        Ok(true)
    }
}

/// Builder settings shared by every server kind (generated into each builder).
macro_rules! common_builder_methods {
    () => {
        /// How handlers run: [`Spawn::Default`](crate::Spawn::Default) (a coroutine per
        /// connection), a [`Pool`](crate::Pool) (accept stops while it is full), an integer
        /// (`Pool::new(n)`) or [`Spawn::Inline`](crate::Spawn::Inline).
        /// Default: `Spawn::Default`. gevent: `spawn=`.
        pub fn spawn(mut self, spawn: impl Into<crate::Spawn>) -> Self {
            self.common.spawn = spawn.into();
            self
        }

        /// The listen backlog. Default: 128. Setting it together with an already bound
        /// socket is an error at `build()`. gevent: `backlog=`.
        pub fn backlog(mut self, backlog: i32) -> Self {
            self.common.opts.backlog = Some(backlog);
            self
        }

        /// Set `SO_REUSEPORT` so several servers can share the port. Default: off
        /// (`SO_REUSEADDR` is always on, as in gevent).
        pub fn reuse_port(mut self, on: bool) -> Self {
            self.common.opts.reuse_port = on;
            self
        }

        /// Accepts in a row before the accept loop yields. Default: 100; must be at least 1.
        /// gevent: `BaseServer.max_accept`.
        pub fn max_accept(mut self, n: usize) -> Self {
            self.common.opts.max_accept = n;
            self
        }

        /// First pause after an accept error. Default: 10 ms. gevent: `min_delay`.
        pub fn min_delay(mut self, delay: std::time::Duration) -> Self {
            self.common.opts.min_delay = delay;
            self
        }

        /// Longest pause after repeated accept errors. Default: 1 s. gevent: `max_delay`.
        pub fn max_delay(mut self, delay: std::time::Duration) -> Self {
            self.common.opts.max_delay = delay;
            self
        }

        /// How long `stop()` and `serve_forever` wait for handlers before cancelling them.
        /// Default: 1 s. gevent: `stop_timeout`.
        pub fn stop_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.opts.stop_timeout = timeout;
            self
        }

        /// How often `serve_forever` calls `service_actions`. Default: 0.5 s.
        /// Python: `serve_forever(poll_interval)`.
        pub fn poll_interval(mut self, interval: std::time::Duration) -> Self {
            self.common.opts.poll_interval = interval;
            self
        }

        /// How long `handle_request()` waits for a request. Default: `None` (forever).
        /// Python: `socketserver.BaseServer.timeout`.
        pub fn timeout(mut self, timeout: impl Into<Option<std::time::Duration>>) -> Self {
            self.common.opts.timeout = timeout.into();
            self
        }

        /// Stack size of each handler coroutine, in bytes (rounded to machine words).
        /// Default: may's default (32 KiB; 128 KiB when TLS is on). Only default-sized
        /// stacks are recycled by may.
        pub fn stack_size(mut self, bytes: usize) -> Self {
            self.common.opts.stack_words = Some(bytes.div_ceil(std::mem::size_of::<usize>()));
            self
        }

        /// Where errors go (handler failures, accept errors). Default: standard error
        /// (INFO and up); `None` discards them.
        pub fn logger(mut self, logger: impl Into<Option<slog::Logger>>) -> Self {
            self.common.logger = Some(logger.into().unwrap_or_else(crate::log::discard_logger));
            self
        }

        /// Called with each client address before its connection is handled; `false`
        /// closes the connection unhandled. Python: `verify_request`.
        pub fn verify_request(
            mut self,
            hook: impl Fn(&crate::Address) -> bool + Send + Sync + 'static,
        ) -> Self {
            self.common.hooks.verify_request = Some(std::sync::Arc::new(hook));
            self
        }

        /// Called when a handler returns `Err` or panics; the server keeps serving.
        /// Default: log it at ERROR level. Python: `handle_error`.
        pub fn handle_error(
            mut self,
            hook: impl Fn(&crate::HandlerError, &crate::Address) + Send + Sync + 'static,
        ) -> Self {
            self.common.hooks.handle_error = Some(std::sync::Arc::new(hook));
            self
        }

        /// Called every `poll_interval` while `serve_forever` runs.
        /// Python: `service_actions`.
        pub fn service_actions(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
            self.common.hooks.service_actions = Some(std::sync::Arc::new(hook));
            self
        }

        /// Whether `serve_forever` stops the server gracefully on SIGINT and SIGTERM (and
        /// then returns `Ok(())`), restoring the previous signal handlers when it returns.
        /// Default: on. Turn it off when the program handles signals itself.
        pub fn handle_signals(mut self, on: bool) -> Self {
            self.common.opts.handle_signals = on;
            self
        }

        /// Called when `handle_request()` timed out. Python: `handle_timeout`.
        pub fn handle_timeout(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
            self.common.hooks.handle_timeout = Some(std::sync::Arc::new(hook));
            self
        }
    };
}
pub(crate) use common_builder_methods;

/// What dropping a server does: stop it (gevent: `__exit__` calls `stop()`). During a panic
/// or a cancel, only close it and cancel the handlers without blocking.
pub(crate) fn stop_on_drop(base: &BaseServer) {
    if std::thread::panicking() {
        base.close_inner(false);
        base.shared.connections.shutdown_all();
        base.shared.pool.cancel_all();
    } else if base.started() || !base.closed() || !base.shared.pool.is_empty() {
        base.stop(None);
    }
}
