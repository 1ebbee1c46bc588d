//! `WsgiServer`: the pywsgi engine on a [`StreamServer`](crate::StreamServer)'s accept loop
//! (gevent: `gevent.pywsgi.WSGIServer`).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Shutdown};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use may::io::WaitIo;

use crate::address::Address;
use crate::base_server::BaseServer;
use crate::error::{Error, Result};
use crate::protocol::{StreamExtra, StreamProto};
use crate::sendfile::send_len;
use crate::settings::{common_builder_methods, Common};
use crate::shared::Shared;
use crate::socket::IntoListener;
use crate::stream::{PlainStream, Stream};

use super::app::Application;
use super::config::{AccessLog, WsgiConfig};
use super::conn::Connection;
use super::handler::{keepalive_left, serve_connection};
use super::park::{ParkCtx, Parking};
use super::sweep::{Clock, ConnState, SweptReader};

/// The live connections of a WSGI server, so that `close()`/`stop()` can end the idle
/// keep-alive ones at once instead of waiting for the keep-alive timeout (gevent leaves them
/// open: gevent issue #1866). An idle connection's read side is shut down, which the engine
/// sees as the client closing between requests; a connection in the middle of a request
/// finishes it (answered with `Connection: close`) and closes.
///
/// A connection registers once; between requests it only flips its own atomic state, so the
/// per-request cost is two compare-and-swaps and no shared lock. The sweeper (one coroutine
/// while the server has connections) enforces the read deadlines of plain connections
/// ([`super::sweep`]).
struct Connections {
    closing: AtomicBool,
    live: Mutex<Live>,
    /// The idle connections parked without a coroutine (`Spawn::Default` only).
    parking: Arc<Parking>,
    clock: Clock,
}

#[derive(Default)]
struct Live {
    map: HashMap<RawFd, Arc<ConnState>>,
    /// A sweeper coroutine runs (it ends when `map` is empty).
    sweeping: bool,
}

/// Connection states (`ConnState::phase`).
const BUSY: u8 = 0;
const IDLE: u8 = 1;
const CLOSED: u8 = 2;

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_closing(&self, closing: bool) {
        self.closing.store(closing, Ordering::SeqCst);
        if !closing {
            self.parking.set_closing(false);
        }
        if closing {
            for (fd, state) in self.lock().map.iter() {
                if state.phase.swap(CLOSED, Ordering::SeqCst) == IDLE {
                    #[allow(unsafe_code)]
                    // SAFETY: shutdown(2) does not close or invalidate the descriptor, and `fd`
                    // is open: its connection removes it from this map, under this lock,
                    // before the socket is closed.
                    unsafe {
                        libc::shutdown(*fd, libc::SHUT_RD);
                    }
                }
            }
            // after the sweep (and without its lock): each closed one leaves the map
            self.parking.set_closing(true);
        }
    }

    /// The sweeper: every tick, wakes the readers whose deadline has passed; ends when no
    /// connection is left (the next one starts it again).
    fn sweep(self: Arc<Self>) {
        loop {
            may::coroutine::sleep(self.clock.tick);
            let mut live = self.lock();
            if live.map.is_empty() {
                live.sweeping = false;
                return;
            }
            let now = self.clock.now();
            for state in live.map.values() {
                state.fire_if_due(now);
            }
        }
    }
}

/// A connection as the engine sees it: the stream plus its entry in [`Connections`].
struct Served {
    stream: Stream,
    connections: Arc<Connections>,
    state: Arc<ConnState>,
    /// Plain sockets read through [`SweptReader`] (TLS streams through may's reads).
    swept: Option<SweptReader>,
}

impl Served {
    // Kept out of the connection closure's frame: that frame stays on the stack, resident,
    // for the whole connection.
    #[inline(never)]
    fn new(stream: Stream, connections: &Arc<Connections>) -> Served {
        let waker = match (stream.is_tls(), stream.get_ref()) {
            (false, PlainStream::Tcp(s)) => Some(s.waker()),
            (false, PlainStream::Unix(s)) => Some(s.waker()),
            (true, _) => None,
        };
        let mut swept = waker.is_some().then(SweptReader::default);
        let state = Arc::new(ConnState::new(BUSY, waker));
        {
            let mut live = connections.lock();
            // checked under the lock: either we see `closing`, or the sweep sees us
            if connections.closing.load(Ordering::SeqCst) {
                state.phase.store(CLOSED, Ordering::SeqCst);
            }
            live.map.insert(stream.as_raw_fd(), state.clone());
            if swept.is_some() && !live.sweeping {
                let sweeper = connections.clone();
                let started =
                    crate::pool::greenlet::spawn_core(None, None, move |_| move || sweeper.sweep());
                live.sweeping = started.is_ok();
            }
            // No sweeper (no coroutine could be made): may's own read timers.
            if !live.sweeping {
                swept = None;
            }
        }
        Served {
            stream,
            connections: connections.clone(),
            state,
            swept,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Also during a cancel: a std mutex held for a moment, no may I/O.
        self.connections.lock().map.remove(&self.stream.as_raw_fd());
    }
}

impl io::Read for Served {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.swept {
            Some(reader) => reader.read(self.stream.get_ref(), &self.state, buf),
            None => self.stream.read(buf),
        }
    }
}

impl io::Write for Served {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if let Some(reader) = &mut self.swept {
            if let Some(res) = reader.write(self.stream.get_ref(), bufs) {
                return res;
            }
        }
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Connection for Served {
    fn set_read_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        match &mut self.swept {
            Some(reader) => {
                reader.timeout = dur;
                Ok(())
            }
            None => self.stream.set_read_timeout(dur),
        }
    }

    fn set_write_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(dur)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    fn set_idle(&mut self, idle: bool) -> bool {
        let phase = &self.state.phase;
        if idle {
            // fails only when the server closed us
            phase
                .compare_exchange(BUSY, IDLE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        } else {
            // a failure means the sweep closed us meanwhile: the read side is shut, what was
            // read is served, with `Connection: close`
            let _ = phase.compare_exchange(IDLE, BUSY, Ordering::SeqCst, Ordering::SeqCst);
            true
        }
    }

    fn server_closing(&self) -> bool {
        self.connections.closing.load(Ordering::Relaxed)
    }

    fn wait_input(&mut self) -> io::Result<Option<usize>> {
        match &mut self.swept {
            Some(reader) => reader.peek(self.stream.get_ref(), &self.state).map(Some),
            None => Connection::wait_input(&mut self.stream),
        }
    }

    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        if let Some(reader) = &mut self.swept {
            // may waits for room with the socket's event flag
            reader.forget();
        }
        Connection::send_file(&mut self.stream, file, offset, len)
    }

    fn proxy_addr(&self) -> Option<Address> {
        self.stream.proxy_addr().cloned()
    }
}

impl Connection for Stream {
    fn set_read_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        Stream::set_read_timeout(self, dur)
    }

    fn set_write_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        Stream::set_write_timeout(self, dur)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    fn wait_input(&mut self) -> io::Result<Option<usize>> {
        if self.is_tls() {
            return Ok(None);
        }
        let mut byte = [0u8; 1];
        match self.get_ref() {
            PlainStream::Tcp(stream) => stream.peek(&mut byte).map(Some),
            PlainStream::Unix(stream) => stream.peek(&mut byte).map(Some),
        }
    }

    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        send_len(offset, len, |offset, count| {
            self.sendfile(file, offset, count)
        })
    }

    fn proxy_addr(&self) -> Option<Address> {
        Stream::proxy_addr(self).cloned()
    }
}

/// A WSGI-style HTTP/1.1 server: every connection is served by a
/// [`WsgiHandler`](super::WsgiHandler) that calls the [`Application`] once per request.
/// gevent: `gevent.pywsgi.WSGIServer`.
///
/// [`WsgiServer::new`] gives a server with gevent's defaults (access log on stderr);
/// [`WsgiServer::builder`] sets everything else. Dropping a started server stops it;
/// [`handle`](Self::handle) gives a [`ServerHandle`](crate::ServerHandle) to stop it from
/// elsewhere.
///
/// ```
/// use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
/// use std::io::{Read, Write};
///
/// fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
///     if env.path_info() == "/" {
///         start_response.call("200 OK", &[("Content-Type", "text/html")])?;
///         return Ok(vec![b"<b>hello world</b>".to_vec()].into());
///     }
///     start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
///     Ok(vec![b"<h1>Not Found</h1>".to_vec()].into())
/// }
///
/// let server = WsgiServer::builder("127.0.0.1:0", application)
///     .access_log(None) // gevent: log=None
///     .build()?;
/// server.start()?;
///
/// let addr = server.local_addr().unwrap();
/// let mut client = std::net::TcpStream::connect(addr)?;
/// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply)?;
/// assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(reply.ends_with("\r\n\r\n<b>hello world</b>"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "WSGIServer")]
pub struct WsgiServer {
    base: BaseServer<StreamProto>,
    connections: Arc<Connections>,
}

/// Builder for a [`WsgiServer`], from [`WsgiServer::builder`].
///
/// Each connection runs on a coroutine with may's default stack (32 KiB; 128 KiB with TLS)
/// unless [`stack_size`](Self::stack_size) says otherwise. The engine itself uses about 4 KiB
/// of it in release builds and 16 KiB in debug builds; give applications with deep call
/// chains more (a coroutine stack overflow kills its connection).
#[must_use = "a builder does nothing until .build()"]
pub struct WsgiServerBuilder {
    common: Common,
    app: Arc<dyn Application>,
    config: WsgiConfig,
    error_log_set: bool,
    /// The protocol settings made one by one so far (a later `config()` would discard them).
    touched: Vec<&'static str>,
    /// `config()` came after settings it replaces: an error at `build()`.
    conflict: Option<String>,
    /// A `forwarded_allow_ips` list that did not parse: an error at `build()`.
    bad_list: Option<String>,
    #[cfg(feature = "tls")]
    tls: crate::tls::TlsBuilder,
    proxy: crate::proxy_protocol::ProxyBuilder,
}

/// Builder methods that set one [`WsgiConfig`] setting (documented there).
macro_rules! config_setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty);)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $arg: $ty) -> Self {
            self.config = self.config.$name($arg);
            self.touched.push(stringify!($name));
            self
        }
    )*};
}

impl fmt::Debug for WsgiServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsgiServerBuilder")
            .field("common", &self.common)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WsgiServer {
    /// A server on `listener` serving `application`, with every default (access log on
    /// stderr). It binds at `start()`/`serve_forever()`.
    /// gevent: `WSGIServer(listener, application)`.
    ///
    /// # Errors
    /// An unparsable address or an unusable socket.
    pub fn new(listener: impl IntoListener, application: impl Application) -> Result<WsgiServer> {
        WsgiServer::builder(listener, application).build()
    }

    /// Start configuring a server: spawn strategy, logs, limits, timeouts, TLS, environ.
    pub fn builder(
        listener: impl IntoListener,
        application: impl Application,
    ) -> WsgiServerBuilder {
        WsgiServerBuilder {
            common: Common::new(listener),
            app: Arc::new(application),
            config: WsgiConfig::new(),
            error_log_set: false,
            touched: Vec::new(),
            conflict: None,
            bad_list: None,
            #[cfg(feature = "tls")]
            tls: Default::default(),
            proxy: Default::default(),
        }
    }
}

crate::server_methods::lifecycle_methods!(WsgiServer);

impl WsgiServer {
    /// How many idle keep-alive connections wait without a coroutine right now.
    ///
    /// With the default spawn strategy (one coroutine per connection, no pool limit), a
    /// plain (not TLS) keep-alive connection idle for [`IDLE_RELEASE`](super::IDLE_RELEASE)
    /// gives its coroutine back and waits in the server's lot until its client sends the
    /// next request (a new handler in [`pool()`](Self::pool) then serves it), closes, or
    /// the keep-alive timeout passes; `stop()` and `close()` close them at once. Such a
    /// connection costs about 3.5 KiB resident instead of 12 KiB (two coroutine stack pages
    /// and the handler's state) and is not a member of `pool()`. With a bounded pool
    /// (`spawn=Pool(n)`) idle connections keep their greenlets and their slots, as in gevent;
    /// this is then always 0. Linux only (elsewhere always 0).
    pub fn parked_connections(&self) -> usize {
        self.connections.parking.len()
    }
}

impl WsgiServerBuilder {
    common_builder_methods!();
    #[cfg(feature = "tls")]
    crate::tls::tls_builder_methods!();
    crate::proxy_protocol::proxy_builder_methods!();

    /// Start from a whole protocol configuration (limits, timeouts, logs, environ) built
    /// elsewhere, e.g. shared by several servers. Default: [`WsgiConfig::new`]. It replaces
    /// every protocol setting, so it comes first: called after a protocol setting of this
    /// builder (`access_log`, `environ`, a timeout, ...) or a second time, `build()` fails with
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming what it would discard —
    /// nothing is overwritten silently.
    pub fn config(mut self, config: WsgiConfig) -> Self {
        if !self.touched.is_empty() && self.conflict.is_none() {
            self.conflict = Some(format!(
                "config() replaces the whole configuration and would discard {} set before \
                 it: call config() first",
                self.touched.join(", ")
            ));
        }
        self.touched.push("config");
        self.config = config;
        self
    }

    /// Where the access log goes: an [`AccessLog`] (a writer, a slog `Logger`, or off); `None`
    /// switches it off. Default: standard error. gevent: `log=`.
    pub fn access_log(mut self, log: impl Into<Option<AccessLog>>) -> Self {
        self.config = self.config.access_log(log.into().unwrap_or(AccessLog::Off));
        self.touched.push("access_log");
        self
    }

    /// Where application errors go (also `wsgi.errors`). Default: the logger given to
    /// `.logger(..)`, else standard error. gevent: `error_log=`.
    pub fn error_log(mut self, logger: slog::Logger) -> Self {
        self.config = self.config.error_log(logger);
        self.error_log_set = true;
        self.touched.push("error_log");
        self
    }

    /// An extra environ entry for every request (call it once per entry). gevent: `environ=`.
    pub fn environ(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config = self.config.environ(key, value);
        self.touched.push("environ");
        self
    }

    /// The peers whose `X-Forwarded-*` / `Forwarded` headers are believed: addresses, CIDR
    /// networks, `unix`, `*` (see [`IpAllowList`](crate::IpAllowList); a string that does not
    /// parse is an error at `build()`). Default: `127.0.0.1`, `::1` and Unix-socket peers, as
    /// gunicorn. The
    /// security model is in [`WsgiConfig::forwarded_allow_ips`].
    pub fn forwarded_allow_ips(mut self, peers: impl Into<crate::AllowFrom>) -> Self {
        match peers.into().into_list() {
            Ok(list) => self.config = self.config.forwarded_allow_ips(list),
            Err(err) => self.bad_list = Some(format!("forwarded_allow_ips: {err}")),
        }
        self.touched.push("forwarded_allow_ips");
        self
    }

    config_setters! {
        /// Which forwarded headers the proxies write. Default: `X-Forwarded-For` and
        /// `X-Forwarded-Proto`. See [`WsgiConfig::forwarded_header`].
        forwarded_header(header: super::ForwardedHeader);
        /// Whether the client address of trusted forwarded headers becomes `REMOTE_ADDR`,
        /// `REMOTE_PORT` and the access log's client. Default: off.
        /// See [`WsgiConfig::forwarded_remote_addr`].
        forwarded_remote_addr(on: bool);
        /// Deadline for a request head, from its first byte (slow-loris): 408 after it.
        /// Default: 10 s. See [`WsgiConfig::header_read_timeout`].
        header_read_timeout(timeout: impl Into<Option<Duration>>);
        /// How long an idle keep-alive connection may wait for its next request. Default:
        /// 75 s. See [`WsgiConfig::keepalive_timeout`].
        keepalive_timeout(timeout: impl Into<Option<Duration>>);
        /// Timeout of each read of a request body. Default: 30 s.
        /// See [`WsgiConfig::body_read_timeout`].
        body_read_timeout(timeout: impl Into<Option<Duration>>);
        /// Timeout of each write of a response. Default: 30 s.
        /// See [`WsgiConfig::write_timeout`].
        write_timeout(timeout: impl Into<Option<Duration>>);
        /// Longest request line (414 beyond). Default: 8192.
        /// See [`WsgiConfig::max_request_line`].
        max_request_line(bytes: usize);
        /// Largest request head (431 beyond). Default: 64 KiB.
        /// See [`WsgiConfig::max_header_block`].
        max_header_block(bytes: usize);
        /// Largest request body (413 beyond); `None`: no limit. Default: `None`.
        /// See [`WsgiConfig::max_body_size`].
        max_body_size(bytes: impl Into<Option<u64>>);
        /// Most unread body bytes discarded to keep a connection alive. Default: 64 KiB.
        /// See [`WsgiConfig::max_discard`].
        max_discard(bytes: u64);
        /// Initial size of each connection's read buffer. Default: 1 KiB.
        /// See [`WsgiConfig::read_buffer_size`].
        read_buffer_size(bytes: usize);
        /// Whether connections may stay open between requests. Default: on.
        /// See [`WsgiConfig::keep_alive`].
        keep_alive(enabled: bool);
        /// `SERVER_NAME`. Default: from the bound address. See [`WsgiConfig::server_name`].
        server_name(name: impl Into<String>);
        /// `SERVER_PORT`. Default: the bound port. See [`WsgiConfig::server_port`].
        server_port(port: impl Into<String>);
        /// `SERVER_SOFTWARE`. See [`WsgiConfig::server_software`].
        server_software(software: impl Into<String>);
        /// `wsgi.url_scheme`. Default: `http` (`https` with TLS).
        /// See [`WsgiConfig::url_scheme`].
        url_scheme(scheme: impl Into<String>);
    }

    /// Check the settings and create the server (it binds at `start()`).
    ///
    /// # Errors
    /// An unparsable address, `max_accept` of 0, a backlog together with a bound socket,
    /// `config()` after settings it would discard, or (with TLS) unreadable or invalid
    /// certificate files.
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    pub fn build(mut self) -> Result<WsgiServer> {
        if let Some(conflict) = self.conflict.take().or(self.bad_list.take()) {
            return Err(Error::InvalidConfig(conflict));
        }
        let mut config = self.config;
        if let (Some(logger), false) = (&self.common.logger, self.error_log_set) {
            config = config.error_log(logger.clone());
        }
        #[cfg(feature = "tls")]
        let tls = {
            let (tls, stack_words) = self.tls.finish(self.common.opts.stack_words)?;
            self.common.opts.stack_words = stack_words;
            if tls.is_some() && config.settings().url_scheme() == "http" {
                config = config.url_scheme("https");
            }
            tls
        };
        let proxy = self.proxy.finish(
            config
                .settings()
                .header_read_timeout()
                .unwrap_or(crate::proxy_protocol::PROXY_HEADER_TIMEOUT),
        )?;
        let cell = Arc::new(ConfigCell {
            template: config,
            server: Mutex::new(Weak::new()),
            resolved: Mutex::new(None),
        });
        if !cell.template.access_log.is_off() {
            // calibrate the access log's clock here rather than in the first request
            super::date::request_clock();
        }
        let app = self.app;
        let per_conn = cell.clone();
        // Idle connections leave their coroutines only where the pool does not count them
        // (gevent's Pool(n) counts connections, idle ones included).
        let parkable = matches!(self.common.spawn, crate::Spawn::Default);
        let settings = cell.template.settings();
        let clock = Clock::new(&[
            settings.header_read_timeout(),
            settings.keepalive_timeout(),
            settings.body_read_timeout(),
        ]);
        let connections = Arc::new(Connections {
            closing: AtomicBool::new(false),
            live: Mutex::new(Live::default()),
            clock,
            parking: Arc::new(Parking::new(
                resume_parked(cell.clone(), app.clone()),
                cell.template.base.errors.clone(),
            )),
        });
        let registry = connections.clone();
        let handler = move |stream: Stream, address: Address| {
            // One write per response: no Nagle delay between responses.
            let _ = stream.set_nodelay(true);
            let config = per_conn.get();
            let park = (parkable && !stream.is_tls()).then(|| ParkCtx {
                parking: registry.parking.clone(),
                fd: stream.as_raw_fd(),
            });
            let conn = Served::new(stream, &registry);
            serve_connection(
                Box::new(conn),
                address.as_inet(),
                &config,
                &*app,
                park,
                None,
            );
        };
        let extra = StreamExtra {
            #[cfg(feature = "tls")]
            tls,
            proxy,
            ..StreamExtra::default()
        };
        let handler: Arc<dyn crate::StreamHandler> = Arc::new(handler);
        let base = BaseServer::from_parts("WSGIServer", self.common, handler, extra)?;
        *cell.server.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&base.shared);
        let lifecycle = connections.clone();
        base.on_lifecycle(Arc::new(move |started| lifecycle.set_closing(!started)));
        Ok(WsgiServer { base, connections })
    }
}

/// How the lot gives a connection that became readable back to a handler: a new member of
/// the server's pool, as an accepted connection gets (the pool is unbounded: no wait).
fn resume_parked(cell: Arc<ConfigCell>, app: Arc<dyn Application>) -> super::park::Resume {
    Box::new(move |parking, parked| {
        let server = cell
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        // The server is gone: the connection closes.
        let Some(shared) = server else { return };
        let Some(permit) = shared.pool.try_acquire() else {
            return;
        };
        let config = cell.get();
        let app = app.clone();
        let park = Some(ParkCtx {
            parking: parking.clone(),
            fd: parked.fd,
        });
        let left = keepalive_left(parked.deadline);
        let spawned = shared
            .pool
            .spawn_with(permit, shared.opts.stack_words, move || {
                serve_connection(parked.conn, parked.peer, &config, &*app, park, Some(left));
            });
        if let Err(err) = spawned {
            slog::error!(shared.logger, "cannot spawn a handler for an idle connection";
                "server" => shared.name, "error" => %err);
        }
    })
}

/// The configuration, completed with SERVER_NAME and SERVER_PORT from the bound address
/// (gevent: `update_environ`), recomputed when the server is rebound elsewhere.
struct ConfigCell {
    template: WsgiConfig,
    server: Mutex<Weak<Shared<StreamProto>>>,
    resolved: Mutex<Option<(Option<Address>, Arc<WsgiConfig>)>>,
}

impl ConfigCell {
    #[inline(never)]
    fn get(&self) -> Arc<WsgiConfig> {
        let address = self
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade()
            .and_then(|shared| shared.address());
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((addr, config)) = resolved.as_ref() {
            if *addr == address {
                return config.clone();
            }
        }
        let config = Arc::new(update_environ(&self.template, address.as_ref()));
        *resolved = Some((address, config.clone()));
        config
    }
}

/// gevent `WSGIServer.update_environ`: SERVER_NAME is the host's name (`localhost` for
/// loopback, the machine's host name for a wildcard address), SERVER_PORT the bound port;
/// both empty for Unix sockets. Values the user set are kept.
pub(crate) fn update_environ(template: &WsgiConfig, address: Option<&Address>) -> WsgiConfig {
    let mut config = template.clone();
    let Some(inet) = address.and_then(Address::as_inet) else {
        return config;
    };
    if config.settings().server_name().is_empty() {
        let ip = inet.ip();
        let name = if ip.is_loopback() {
            "localhost".to_owned()
        } else if ip.is_unspecified() {
            host_name().unwrap_or_else(|| ip.to_string())
        } else {
            match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => v6.to_string(),
            }
        };
        config = config.server_name(name);
    }
    if config.settings().server_port().is_empty() {
        config = config.server_port(inet.port().to_string());
    }
    config
}

fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    #[allow(unsafe_code)]
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec())
        .ok()
        .filter(|s| !s.is_empty())
}
