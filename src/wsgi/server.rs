//! [`WsgiServer`]: the lifecycle around may_minihttp's accept loop, and the registry of its
//! connections (which may_minihttp itself does not keep).

use std::collections::HashMap;
use std::fmt;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use may::coroutine::JoinHandle;
use may::sync::SyncFlag;
use may_minihttp::HttpServiceFactory;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::fd;
use super::glue::Factory;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::handle::{Control, ServerHandle};
use crate::pywsgi::{AccessLog, Application, WsgiConfig, BODY_READ_TIMEOUT, KEEPALIVE_TIMEOUT};
use crate::signals::SignalGuard;
use crate::{STOP_GRACE, STOP_TIMEOUT};

/// Default largest request body this server buffers (413 beyond): 10 MiB. Every body is read
/// whole into memory before the application runs, so there is always a limit here (pywsgi,
/// which streams bodies, has none by default).
pub const MAX_BODY: u64 = 10 * 1024 * 1024;

/// What a connection is doing, for `stop()` and the timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Phase {
    /// Between requests (or inside a request head may_minihttp has not finished parsing).
    Idle = 0,
    /// Reading a request body.
    Body = 1,
    /// Running the application.
    App = 2,
}

/// One connection's phase and since when (milliseconds since the run's start).
#[derive(Debug)]
pub(super) struct ConnState {
    phase: AtomicU8,
    since: AtomicU64,
}

impl ConnState {
    pub(super) fn set(&self, phase: Phase, run: &Run) {
        self.since.store(run.now_ms(), Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Release);
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            1 => Phase::Body,
            2 => Phase::App,
            _ => Phase::Idle,
        }
    }
}

/// One `start()` of a server: what its connections share.
pub(super) struct Run {
    pub(super) config: Arc<WsgiConfig>,
    pub(super) app: Arc<dyn Application>,
    pub(super) max_body: u64,
    /// Set by `close()`/`stop()`: requests still served get `Connection: close`.
    pub(super) closing: AtomicBool,
    /// The open connections by socket. An entry exists exactly while the connection's service
    /// does, and the service is dropped before its socket is closed: a descriptor found here
    /// (under the lock) is open and is that connection's.
    conns: Mutex<HashMap<RawFd, Arc<ConnState>>>,
    epoch: Instant,
    clock: AtomicU64,
}

impl Run {
    fn conns(&self) -> MutexGuard<'_, HashMap<RawFd, Arc<ConnState>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run's clock in milliseconds, as last advanced by the reaper (every tick): cheap to
    /// read on every request, precise to a tick, which is all the timeouts need.
    fn now_ms(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    pub(super) fn register(&self, fd: RawFd) -> Arc<ConnState> {
        let state = Arc::new(ConnState {
            phase: AtomicU8::new(Phase::Idle as u8),
            since: AtomicU64::new(self.now_ms()),
        });
        self.conns().insert(fd, Arc::clone(&state));
        state
    }

    pub(super) fn deregister(&self, fd: RawFd, state: &Arc<ConnState>) {
        let mut conns = self.conns();
        if conns.get(&fd).is_some_and(|s| Arc::ptr_eq(s, state)) {
            conns.remove(&fd);
        }
    }

    /// Shuts down `how` on the connections `pick` selects; returns how many are open.
    fn shut(&self, how: Shutdown, pick: impl Fn(&ConnState, u64) -> bool) -> usize {
        let now = self.now_ms();
        let conns = self.conns();
        for (&fd, state) in conns.iter() {
            if pick(state, now) {
                #[allow(unsafe_code)]
                // SAFETY: the entry is present and the lock is held, so the connection's
                // service is alive and its socket open (see `Run::conns`).
                unsafe {
                    fd::shutdown(fd, how)
                };
            }
        }
        conns.len()
    }

    /// The number of open connections.
    pub(super) fn open(&self) -> usize {
        self.conns().len()
    }
}

/// The settings of a [`WsgiServer`] besides its protocol configuration.
#[derive(Debug, Clone)]
struct Settings {
    max_body: u64,
    idle_timeout: Option<Duration>,
    body_read_timeout: Option<Duration>,
    stop_timeout: Duration,
    handle_signals: bool,
}

#[derive(Default)]
struct State {
    run: Option<Arc<Run>>,
    accept: Option<JoinHandle<()>>,
    reaper: Option<(JoinHandle<()>, Arc<SyncFlag>)>,
    local: Option<SocketAddr>,
    started: bool,
    /// Fired by `close()`: `serve_forever` stops the server and returns.
    stop_event: Option<Arc<SyncFlag>>,
    serving: Option<Arc<SyncFlag>>,
}

struct Inner {
    requested: SocketAddr,
    template: WsgiConfig,
    app: Arc<dyn Application>,
    settings: Settings,
    state: Mutex<State>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("wsgi::WsgiServer")
            .field("address", &state.local.unwrap_or(self.requested))
            .field("started", &state.started)
            .field(
                "connections",
                &state.run.as_ref().map_or(0, |run| run.open()),
            )
            .finish()
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn logger(&self) -> &slog::Logger {
        &self.template.base.errors
    }

    fn start(&self) -> Result<()> {
        let mut state = self.state();
        if state.started {
            return Ok(());
        }
        let local = probe_bind(state.local.unwrap_or(self.requested))?;
        let config = crate::pywsgi::update_environ(&self.template, Some(&Address::Inet(local)));
        let run = Arc::new(Run {
            config: Arc::new(config),
            app: Arc::clone(&self.app),
            max_body: self.settings.max_body,
            closing: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            clock: AtomicU64::new(0),
        });
        let accept = Factory {
            run: Arc::clone(&run),
        }
        .start(local)
        .map_err(|source| Error::Bind {
            address: local.to_string(),
            source,
        })?;
        let reaper = spawn_reaper(&run, &self.settings);
        if let Some((_, previous)) = state.reaper.take() {
            // a previous run that was closed but not stopped: its connections lose their
            // timeouts rather than keep a reaper running for ever
            previous.fire();
        }
        state.run = Some(run);
        state.accept = Some(accept);
        state.reaper = reaper;
        state.local = Some(local);
        state.started = true;
        state.stop_event = Some(Arc::new(SyncFlag::new()));
        slog::debug!(self.logger(), "started"; "server" => "wsgi::WSGIServer", "address" => %local);
        Ok(())
    }

    fn close(&self) {
        let (accept, event) = {
            let mut state = self.state();
            state.started = false;
            if let Some(run) = &state.run {
                run.closing.store(true, Ordering::Release);
            }
            (state.accept.take(), state.stop_event.clone())
        };
        if let Some(accept) = accept {
            // may_minihttp's accept loop owns the listener: cancelling it closes the socket
            crate::pool::cancel(accept.coroutine());
            accept.wait();
        }
        if let Some(event) = event {
            event.fire();
        }
    }

    fn stop(&self, timeout: Option<Duration>) {
        self.close();
        let (run, reaper) = {
            let mut state = self.state();
            (state.run.clone(), state.reaper.take())
        };
        if let Some(run) = run {
            let timeout = timeout.unwrap_or(self.settings.stop_timeout);
            let deadline = Instant::now() + timeout;
            // idle connections: end-of-file after what they still have to write; busy ones
            // answer their request with `Connection: close` and then close the same way
            while run.shut(Shutdown::Read, |c, _| c.phase() == Phase::Idle) > 0
                && Instant::now() < deadline
            {
                may::coroutine::sleep(Duration::from_millis(5));
            }
            let grace = Instant::now() + STOP_GRACE;
            while run.shut(Shutdown::Both, |_, _| true) > 0 && Instant::now() < grace {
                may::coroutine::sleep(Duration::from_millis(5));
            }
            let left = run.open();
            if left > 0 {
                slog::warn!(self.logger(),
                    "connections still open after stop (may_minihttp's connection coroutines \
                     cannot be cancelled: an application call that does not return keeps its \
                     connection)";
                    "server" => "wsgi::WSGIServer", "connections" => left);
            }
        }
        if let Some((reaper, flag)) = reaper {
            flag.fire();
            reaper.wait();
        }
    }

    fn serve_forever(self: &Arc<Self>) -> Result<()> {
        let done = Arc::new(SyncFlag::new());
        let _signals = self
            .settings
            .handle_signals
            .then(|| self.catch_signals())
            .flatten();
        self.start()?;
        let event = {
            let mut state = self.state();
            state.serving = Some(Arc::clone(&done));
            state.stop_event.clone()
        };
        if let Some(event) = event {
            event.wait();
        }
        self.stop(None);
        self.state().serving = None;
        done.fire();
        Ok(())
    }

    fn catch_signals(self: &Arc<Self>) -> Option<SignalGuard> {
        let weak = Arc::downgrade(self);
        let on_signal = Arc::new(move |signal: libc::c_int| {
            if let Some(inner) = weak.upgrade() {
                slog::info!(inner.logger(), "signal received, stopping";
                    "server" => "wsgi::WSGIServer", "signal" => signal);
                inner.close();
            }
        });
        match SignalGuard::install(on_signal) {
            Ok(guard) => Some(guard),
            Err(err) => {
                slog::warn!(self.logger(), "cannot install the SIGINT/SIGTERM handlers";
                    "server" => "wsgi::WSGIServer", "error" => %err);
                None
            }
        }
    }

    fn shutdown(&self) {
        let serving = self.state().serving.clone();
        self.close();
        if let Some(done) = serving {
            done.wait();
        }
    }
}

impl Control for Inner {
    fn stop(&self, timeout: Option<Duration>) {
        Inner::stop(self, timeout);
    }
    fn close(&self) {
        Inner::close(self);
    }
    fn shutdown(&self) {
        Inner::shutdown(self);
    }
    fn started(&self) -> bool {
        self.state().started
    }
    fn closed(&self) -> bool {
        !self.state().started
    }
    fn address(&self) -> Option<Address> {
        Some(Address::Inet(self.state().local.unwrap_or(self.requested)))
    }
}

/// Binds `addr` once without `SO_REUSEPORT` and releases it: may_minihttp binds with
/// `SO_REUSEPORT`, which would silently share a port already in use by another such socket.
/// Returns the address to give may_minihttp (port 0 resolved to a free port).
fn probe_bind(addr: SocketAddr) -> Result<SocketAddr> {
    let bind_err = |source| Error::Bind {
        address: addr.to_string(),
        source,
    };
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_err)?;
    sock.set_reuse_address(true).map_err(bind_err)?;
    sock.bind(&SockAddr::from(addr)).map_err(bind_err)?;
    let local = sock.local_addr().map_err(bind_err)?;
    local.as_socket().ok_or_else(|| Error::InvalidAddress {
        input: addr.to_string(),
        reason: "not an IP address",
    })
}

/// The coroutine that ends connections idle for longer than `idle_timeout` and bodies read for
/// longer than `body_read_timeout` (may_minihttp has no timeouts of its own).
fn spawn_reaper(run: &Arc<Run>, settings: &Settings) -> Option<(JoinHandle<()>, Arc<SyncFlag>)> {
    let idle = settings.idle_timeout.map(|t| t.as_millis() as u64);
    let body = settings.body_read_timeout.map(|t| t.as_millis() as u64);
    let shortest = [idle, body].into_iter().flatten().min()?;
    let tick = Duration::from_millis((shortest / 4).clamp(10, 1000));
    let flag = Arc::new(SyncFlag::new());
    let (run, stop) = (Arc::clone(run), Arc::clone(&flag));
    let handle = may::go!(move || {
        while !stop.wait_timeout(tick) {
            let now = run.epoch.elapsed().as_millis() as u64;
            run.clock.store(now, Ordering::Relaxed);
            run.shut(Shutdown::Both, |conn, now| {
                let age = now.saturating_sub(conn.since.load(Ordering::Relaxed));
                match conn.phase() {
                    Phase::Idle => idle.is_some_and(|limit| age > limit),
                    Phase::Body => body.is_some_and(|limit| age > limit),
                    Phase::App => false,
                }
            });
        }
    });
    Some((handle, flag))
}

/// gevent's `gevent.wsgi.WSGIServer`: the fast, fully buffered WSGI server, on may_minihttp's
/// engine, serving the same [`Application`] as [`pywsgi::WsgiServer`](crate::pywsgi::WsgiServer).
/// See the [module documentation](super) for what it does differently and when to pick it.
///
/// ```
/// use may_gevent::pywsgi::{AppResult, Environ, StartResponse};
/// use may_gevent::wsgi::WsgiServer;
/// use std::io::{Read, Write};
///
/// fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
///     start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
///     Ok(format!("hello {}", env.path_info()).into())
/// }
///
/// let server = WsgiServer::builder("127.0.0.1:0", application).access_log(None).build()?;
/// server.start()?;
/// let mut client = std::net::TcpStream::connect(server.local_addr().unwrap())?;
/// client.write_all(b"GET /there HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert!(reply.starts_with("HTTP/1.1 200 Ok\r\n"));
/// assert!(reply.ends_with("\r\n\r\nhello /there"));
/// server.stop(None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "WSGIServer")]
pub struct WsgiServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for WsgiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Drop for WsgiServer {
    fn drop(&mut self) {
        if self.inner.state().run.is_some() {
            self.inner.stop(Some(Duration::ZERO));
        }
    }
}

impl WsgiServer {
    /// A server on `address` serving `application`, with every default. It binds at
    /// `start()`/`serve_forever()`. gevent: `gevent.wsgi.WSGIServer(listener, application)`.
    ///
    /// # Errors
    /// An address that does not resolve.
    pub fn new(address: impl ToSocketAddrs, application: impl Application) -> Result<WsgiServer> {
        WsgiServer::builder(address, application).build()
    }

    /// Start configuring a server: logs, environ, limits, timeouts.
    pub fn builder(
        address: impl ToSocketAddrs,
        application: impl Application,
    ) -> WsgiServerBuilder {
        let resolved = address
            .to_socket_addrs()
            .map_err(|err| err.to_string())
            .and_then(|mut addrs| addrs.next().ok_or_else(|| "no address".to_owned()));
        WsgiServerBuilder {
            address: resolved,
            app: Arc::new(application),
            config: WsgiConfig::new(),
            settings: Settings {
                max_body: MAX_BODY,
                idle_timeout: Some(KEEPALIVE_TIMEOUT),
                body_read_timeout: Some(BODY_READ_TIMEOUT),
                stop_timeout: STOP_TIMEOUT,
                handle_signals: true,
            },
        }
    }

    /// Bind and start serving in the background; returns at once. Calling it on a started
    /// server does nothing. gevent: `BaseServer.start`.
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound — also when another socket listens on
    /// the port with `SO_REUSEPORT` (see the module docs, "Binding").
    pub fn start(&self) -> Result<()> {
        self.inner.start()
    }

    /// Resolve the address now without serving: port 0 becomes a free port, which
    /// [`address`](Self::address) then reports (gevent: `BaseServer.init_socket`). The port is
    /// checked free but not held: may_minihttp binds it at `start()` (see the module docs,
    /// "Binding").
    ///
    /// # Errors
    /// [`Error::Bind`] when the address cannot be bound (e.g. the port is in use).
    pub fn init_socket(&self) -> Result<()> {
        let mut state = self.inner.state();
        if !state.started {
            state.local = Some(probe_bind(state.local.unwrap_or(self.inner.requested))?);
        }
        Ok(())
    }

    /// Start if needed and block until the server is closed (`close()`, `stop()`, a
    /// [`ServerHandle`], SIGINT or SIGTERM), then `stop()` it with `stop_timeout` and return.
    /// gevent: `BaseServer.serve_forever`.
    ///
    /// # Errors
    /// Starting failed (e.g. the port is in use).
    pub fn serve_forever(&self) -> Result<()> {
        self.inner.serve_forever()
    }

    /// Stop the server: close it (new connects are refused), end idle keep-alive connections,
    /// let requests being served finish (they are answered with `Connection: close`) for up to
    /// `timeout` (`None`: `stop_timeout`, default 1 s), then shut down the sockets of the
    /// connections still open and wait up to [`STOP_GRACE`] more. An application call that
    /// never returns cannot be cancelled (may_minihttp's connection coroutines are detached):
    /// such connections are logged at WARN and left alone. gevent: `BaseServer.stop(timeout)`.
    pub fn stop(&self, timeout: impl Into<Option<Duration>>) {
        self.inner.stop(timeout.into());
    }

    /// Stop accepting and close the listening socket. Connections already open keep being
    /// served (their next response says `Connection: close`). Makes `serve_forever` return.
    /// gevent: `BaseServer.close`.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Ask `serve_forever` to return and wait until it has.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// True between `start()` and `close()`/`stop()`.
    pub fn started(&self) -> bool {
        self.inner.state().started
    }

    /// True when the server has no listening socket.
    pub fn closed(&self) -> bool {
        !self.started()
    }

    /// A cloneable handle to stop or close the server from anywhere.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(self.inner.clone())
    }

    /// The address the server listens on (the configured one before the first `start()`).
    pub fn address(&self) -> Option<Address> {
        Control::address(&*self.inner)
    }

    /// The IP address and port the server listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.address().and_then(|address| address.as_inet())
    }

    /// The bound port (the configured one before the first `start()`).
    pub fn server_port(&self) -> Option<u16> {
        self.local_addr().map(|addr| addr.port())
    }

    /// The number of connections open now.
    pub fn connections(&self) -> usize {
        self.inner.state().run.as_ref().map_or(0, |run| run.open())
    }
}

/// Builder for a [`WsgiServer`], from [`WsgiServer::builder`].
#[must_use = "a builder does nothing until .build()"]
pub struct WsgiServerBuilder {
    address: std::result::Result<SocketAddr, String>,
    app: Arc<dyn Application>,
    config: WsgiConfig,
    settings: Settings,
}

impl fmt::Debug for WsgiServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("wsgi::WsgiServerBuilder")
            .field("address", &self.address)
            .field("config", &self.config)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl WsgiServerBuilder {
    /// The protocol configuration (the environ's server entries, logs, head limits), as for
    /// pywsgi. Only these of its settings apply here: `access_log`, `error_log`,
    /// `server_name`, `server_port`, `server_software`, `url_scheme`, `environ`,
    /// `max_request_line`, `max_header_block`, `keep_alive`, and the forwarded-header trust
    /// (`forwarded_allow_ips`, `forwarded_remote_addr`; the peer is the TCP client, there is no
    /// PROXY protocol here). The timeouts do not (see
    /// [`idle_timeout`](Self::idle_timeout) and [`body_read_timeout`](Self::body_read_timeout)),
    /// nor `max_body_size` (see [`max_body_size`](Self::max_body_size)). Call it before the
    /// other setters, which change the configuration it sets.
    pub fn config(mut self, config: WsgiConfig) -> Self {
        self.config = config;
        self
    }

    /// Where the access log goes; `None` switches it off. Default: standard error.
    pub fn access_log(mut self, log: impl Into<Option<AccessLog>>) -> Self {
        self.config = self.config.access_log(log.into().unwrap_or(AccessLog::Off));
        self
    }

    /// Where application errors go (also `wsgi.errors`). Default: standard error.
    pub fn error_log(mut self, logger: slog::Logger) -> Self {
        self.config = self.config.error_log(logger);
        self
    }

    /// An extra environ entry for every request.
    pub fn environ(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config = self.config.environ(key, value);
        self
    }

    /// Largest request body, read whole into memory before the application runs; a larger
    /// Content-Length is answered `413` and the connection closed, before anything of the body
    /// is read. Default: [`MAX_BODY`] (10 MiB).
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.settings.max_body = bytes;
        self
    }

    /// How long a connection may go without a request being served — waiting for its next
    /// request, or sending a request head may_minihttp has not got whole yet — before its
    /// socket is shut down (checked four times per timeout: precise to a quarter of it, at
    /// most 1 s). `None`: forever. Default: 75 s (pywsgi's keep-alive timeout). may_minihttp has
    /// no timeouts; this server enforces this one from outside, so a client trickling a head
    /// is cut off after it too (pywsgi: a 10 s header timeout and a 408).
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.settings.idle_timeout = timeout.into();
        self
    }

    /// How long reading one request body may take in all before the connection is shut down
    /// (pywsgi: per read). `None`: forever. Default: 30 s.
    pub fn body_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.settings.body_read_timeout = timeout.into();
        self
    }

    /// The default timeout of `stop()` (and of the stop at the end of `serve_forever`).
    /// Default: [`STOP_TIMEOUT`] (1 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.settings.stop_timeout = timeout;
        self
    }

    /// Whether `serve_forever` stops the server on SIGINT and SIGTERM. Default: on.
    pub fn handle_signals(mut self, enabled: bool) -> Self {
        self.settings.handle_signals = enabled;
        self
    }

    /// Create the server (it binds at `start()`).
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] when the address did not resolve.
    pub fn build(self) -> Result<WsgiServer> {
        let requested = self.address.map_err(|err| Error::InvalidAddress {
            input: err,
            reason: "cannot resolve the address",
        })?;
        // (the body is in memory: what the application leaves unread is discarded from there)
        let template = self
            .config
            .max_body_size(self.settings.max_body)
            .max_discard(self.settings.max_body);
        Ok(WsgiServer {
            inner: Arc::new(Inner {
                requested,
                template,
                app: self.app,
                settings: self.settings,
                state: Mutex::new(State::default()),
            }),
        })
    }
}
