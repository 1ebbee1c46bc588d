//! [`WsgiConfig`]: every limit, timeout and server-wide environ value of the WSGI engine.
//!
//! Each default is a named constant below, so the numbers are documented once. gevent has no
//! timeouts at all (a client that never finishes its request holds a greenlet forever, gevent
//! issue #1866); here every wait on the network is bounded by default.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ip_allow::IpAllowList;

use super::forwarded::ForwardedHeader;

/// Longest accepted request line, in bytes, not counting its CRLF. A longer one gets `414 URI Too
/// Long` and the connection is closed.
///
/// gevent: `pywsgi.MAX_REQUEST_LINE` (8192).
pub const MAX_REQUEST_LINE: usize = 8192;

/// Largest accepted header section (every header line after the request line, up to and including
/// the blank line), in bytes. A larger one gets `431 Request Header Fields Too Large`.
///
/// gevent rejects single header lines over 65 536 bytes with a 400 (`http.client` limit).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Most header fields accepted in one request; one more gets `431 Request Header Fields Too
/// Large`. A fixed bound, not a setting: the parser starts with fewer header slots (on the heap)
/// and parses again with this many only for a request that has more.
///
/// gevent: `http.client._MAXHEADERS` (100), answered with a 400 there.
pub const MAX_HEADERS: usize = 100;

/// Longest chunk extension (the bytes after `;` on a chunk-size line) accepted in a chunked request
/// body; a longer one is a framing error (400).
///
/// gevent: `MAX_REQUEST_LINE` is reused for this (8192).
pub const MAX_CHUNK_EXTENSION: usize = 8192;

/// Longest single trailer line accepted after the last chunk of a chunked request body.
///
/// gevent: `MAX_REQUEST_LINE` is reused for this (8192).
pub const MAX_TRAILER_LINE: usize = 8192;

/// Largest trailer section (all trailer lines together) accepted after the last chunk.
pub const MAX_TRAILER_SECTION: usize = 16 * 1024;

/// Default [`WsgiConfig::header_read_timeout`]: the whole request head (request line and headers)
/// must arrive within this time once its first byte was received (for the first request of a
/// connection: once the connection was handed to the handler). A client trickling one byte a second
/// is cut off after this, with a `408 Request Timeout`.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default [`WsgiConfig::keepalive_timeout`]: how long an idle keep-alive connection waits for the
/// first byte of its next request before it is closed silently (nginx's `keepalive_timeout`
/// default).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);

/// Default [`WsgiConfig::body_read_timeout`]: the longest wait for the next bytes of a request body
/// (each read, not the whole body). On expiry the application's read fails with
/// `ErrorKind::TimedOut` and, if nothing was sent yet, the client gets `408 Request Timeout`.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`WsgiConfig::write_timeout`]: the longest a single write to the client may block (a
/// client that stops reading its responses). On expiry the connection is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`WsgiConfig::max_discard`]: when the application did not read the whole request body,
/// at most this many unread body bytes are read and thrown away so that the connection can serve
/// its next request. If more is left, the connection is closed instead (it is cheaper than reading
/// a large upload nobody wants, and it can never make a body be parsed as a request: gevent issue
/// #2075).
pub const MAX_DISCARD: u64 = 64 * 1024;

/// When a connection is closed with client input left unread (after an error response, or a body
/// too large to discard), the server half-closes it and keeps reading and dropping input for at
/// most this long, so that the client receives the last response instead of a reset (RFC 9112
/// section 9.6, "lingering close").
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Most bytes drained during a lingering close.
pub const LINGER_MAX_BYTES: usize = 256 * 1024;

/// Default [`WsgiConfig::read_buffer_size`]: initial size of the per-connection read buffer (a
/// typical request head fits). It grows on demand (doubling) up to what one request head may need
/// (`MAX_REQUEST_LINE` + `MAX_HEADER_BLOCK`), or 16 KiB while a body is read, and shrinks back
/// once it is empty and more than eight times this size, so idle keep-alive connections stay
/// small.
pub const READ_BUFFER_SIZE: usize = 1024;

/// How long a keep-alive connection waits for its next request before it gives its buffers
/// back (the read buffer, the copy of the last head and its header slots, the response and
/// access-log buffers): past this, it waits for input without holding a buffer, and the next
/// request allocates them again; connections busier than this never reallocate. On a
/// [`WsgiServer`](super::WsgiServer) with the default spawn strategy such a connection also
/// gives its coroutine back and waits in the server's lot (about 3.5 KiB resident instead of
/// 12 KiB: see [`WsgiServer::parked_connections`](super::WsgiServer::parked_connections));
/// elsewhere (a bounded pool, [`handle_connection`](super::handle_connection) called directly)
/// it waits on its coroutine, two stack pages. (TLS connections keep their buffers and their
/// coroutine: their records may hold input the socket no longer shows.)
pub const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// Default `SERVER_SOFTWARE` environ value.
///
/// gevent: `gevent/<major>.<minor> Python/<major>.<minor>`.
pub const SERVER_SOFTWARE: &str = concat!("may_gevent/", env!("CARGO_PKG_VERSION"));

/// Where the access log (one line per request, gevent's format) goes.
///
/// gevent: the `log` argument of `WSGIServer` (`'default'` = stderr, `None` = off, a
/// `logging.Logger` is wrapped in a `LoggingLogAdapter` at level INFO).
pub enum AccessLog {
    /// Each line is an INFO record of this logger (the line is the message, with no newline).
    Logger(slog::Logger),
    /// Each line, followed by `\n`, is written to this writer. The lock is held only while
    /// writing one line and never across a coroutine yield. A write error is ignored.
    Writer(Arc<Mutex<Box<dyn Write + Send>>>),
    /// No access log (and no formatting cost).
    Off,
}

impl AccessLog {
    /// Access log written to standard error (the default).
    pub fn stderr() -> AccessLog {
        AccessLog::writer(std::io::stderr())
    }

    /// Access log written to `writer`, one line at a time.
    pub fn writer<W: Write + Send + 'static>(writer: W) -> AccessLog {
        AccessLog::Writer(Arc::new(Mutex::new(Box::new(writer))))
    }

    /// Whether lines are produced at all.
    pub fn is_off(&self) -> bool {
        matches!(self, AccessLog::Off)
    }
}

impl Clone for AccessLog {
    fn clone(&self) -> AccessLog {
        match self {
            AccessLog::Logger(logger) => AccessLog::Logger(logger.clone()),
            AccessLog::Writer(writer) => AccessLog::Writer(Arc::clone(writer)),
            AccessLog::Off => AccessLog::Off,
        }
    }
}

impl Default for AccessLog {
    fn default() -> AccessLog {
        AccessLog::stderr()
    }
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessLog::Logger(_) => f.write_str("AccessLog::Logger"),
            AccessLog::Writer(_) => f.write_str("AccessLog::Writer"),
            AccessLog::Off => f.write_str("AccessLog::Off"),
        }
    }
}

/// The server-wide part of every environ (gevent: `WSGIServer.environ` / `base_env`), shared by all
/// requests through one `Arc`.
#[derive(Clone)]
pub(crate) struct BaseEnviron {
    pub(crate) server_name: String,
    pub(crate) server_port: String,
    pub(crate) server_software: String,
    pub(crate) url_scheme: String,
    pub(crate) gateway_interface: String,
    /// Extra string entries, in insertion order, keys unique.
    pub(crate) extra: Vec<(String, String)>,
    pub(crate) errors: slog::Logger,
}

impl BaseEnviron {
    /// The value of a server-wide key (extra entries first, as a user `environ` dict overrides
    /// gevent's `base_env`).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        if let Some((_, value)) = self.extra.iter().find(|(k, _)| k == key) {
            return Some(value);
        }
        match key {
            "SERVER_NAME" => Some(&self.server_name),
            "SERVER_PORT" => Some(&self.server_port),
            "SERVER_SOFTWARE" => Some(&self.server_software),
            "GATEWAY_INTERFACE" => Some(&self.gateway_interface),
            "wsgi.url_scheme" => Some(&self.url_scheme),
            _ => None,
        }
    }
}

/// Configuration of the WSGI protocol engine: limits, timeouts, logs and the server-wide environ.
///
/// Build it with [`WsgiConfig::new`] (or `Default`) and the by-value setters; every setter documents
/// its default. [`WsgiConfig::settings`] reads every setting back. `WsgiConfig` is cheap to clone
/// (the environ part is shared).
///
/// gevent: the keyword arguments of `WSGIServer` and the class attributes of `WSGIHandler`.
#[derive(Clone)]
pub struct WsgiConfig {
    pub(crate) header_read_timeout: Option<Duration>,
    pub(crate) keepalive_timeout: Option<Duration>,
    pub(crate) body_read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) max_request_line: usize,
    pub(crate) max_header_block: usize,
    pub(crate) max_body_size: Option<u64>,
    pub(crate) max_discard: u64,
    pub(crate) read_buffer_size: usize,
    pub(crate) keep_alive: bool,
    pub(crate) access_log: AccessLog,
    pub(crate) base: Arc<BaseEnviron>,
    pub(crate) forwarded_allow_ips: Arc<IpAllowList>,
    pub(crate) forwarded_header: ForwardedHeader,
    pub(crate) forwarded_remote_addr: bool,
}

impl Default for WsgiConfig {
    fn default() -> WsgiConfig {
        WsgiConfig::new()
    }
}

impl fmt::Debug for WsgiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsgiConfig")
            .field("header_read_timeout", &self.header_read_timeout)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("max_request_line", &self.max_request_line)
            .field("max_header_block", &self.max_header_block)
            .field("max_body_size", &self.max_body_size)
            .field("max_discard", &self.max_discard)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("keep_alive", &self.keep_alive)
            .field("access_log", &self.access_log)
            .field("server_name", &self.base.server_name)
            .field("server_port", &self.base.server_port)
            .field("server_software", &self.base.server_software)
            .field("url_scheme", &self.base.url_scheme)
            .field("extra_environ", &self.base.extra.len())
            .field(
                "forwarded_allow_ips",
                &format_args!("{}", self.forwarded_allow_ips),
            )
            .field("forwarded_header", &self.forwarded_header)
            .field("forwarded_remote_addr", &self.forwarded_remote_addr)
            .finish()
    }
}

impl WsgiConfig {
    /// A configuration with every default: the timeouts and limits of the constants in this module,
    /// access log on stderr, error log on stderr, `SERVER_NAME` and `SERVER_PORT` empty (the server
    /// fills them in from its address, gevent's `update_environ`), `wsgi.url_scheme` `http`.
    pub fn new() -> WsgiConfig {
        WsgiConfig {
            header_read_timeout: Some(HEADER_READ_TIMEOUT),
            keepalive_timeout: Some(KEEPALIVE_TIMEOUT),
            body_read_timeout: Some(BODY_READ_TIMEOUT),
            write_timeout: Some(WRITE_TIMEOUT),
            max_request_line: MAX_REQUEST_LINE,
            max_header_block: MAX_HEADER_BLOCK,
            max_body_size: None,
            max_discard: MAX_DISCARD,
            read_buffer_size: READ_BUFFER_SIZE,
            keep_alive: true,
            access_log: AccessLog::default(),
            base: Arc::new(BaseEnviron {
                server_name: String::new(),
                server_port: String::new(),
                server_software: SERVER_SOFTWARE.to_owned(),
                url_scheme: "http".to_owned(),
                gateway_interface: "CGI/1.1".to_owned(),
                extra: Vec::new(),
                errors: crate::log::default_logger(),
            }),
            forwarded_allow_ips: Arc::new(IpAllowList::localhost()),
            forwarded_header: ForwardedHeader::XForwardedFor,
            forwarded_remote_addr: false,
        }
    }

    /// Total time allowed for a request head once its first byte arrived (for a new connection:
    /// from the start). `None` waits forever (unsafe on the Internet).
    /// Default: [`HEADER_READ_TIMEOUT`] (10 s).
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> WsgiConfig {
        self.header_read_timeout = non_zero(timeout.into());
        self
    }

    /// How long an idle keep-alive connection waits for its next request. `None` waits forever.
    /// Default: [`KEEPALIVE_TIMEOUT`] (75 s).
    pub fn keepalive_timeout(mut self, timeout: impl Into<Option<Duration>>) -> WsgiConfig {
        self.keepalive_timeout = non_zero(timeout.into());
        self
    }

    /// Longest wait for more request-body bytes (per read). `None` waits forever.
    /// Default: [`BODY_READ_TIMEOUT`] (30 s).
    pub fn body_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> WsgiConfig {
        self.body_read_timeout = non_zero(timeout.into());
        self
    }

    /// Longest a single write to the client may block. `None` waits forever.
    /// Default: [`WRITE_TIMEOUT`] (30 s).
    pub fn write_timeout(mut self, timeout: impl Into<Option<Duration>>) -> WsgiConfig {
        self.write_timeout = non_zero(timeout.into());
        self
    }

    /// Longest request line (without CRLF); longer ones get a 414. Clamped to at least 16.
    /// Default: [`MAX_REQUEST_LINE`] (8192).
    pub fn max_request_line(mut self, bytes: usize) -> WsgiConfig {
        self.max_request_line = bytes.max(16);
        self
    }

    /// Largest header section; larger ones get a 431. Clamped to at least 64.
    /// Default: [`MAX_HEADER_BLOCK`] (64 KiB).
    pub fn max_header_block(mut self, bytes: usize) -> WsgiConfig {
        self.max_header_block = bytes.max(64);
        self
    }

    /// Largest accepted request body: a larger `Content-Length` gets `413 Content Too Large` before
    /// the application runs; a chunked body that grows past it fails the application's read (and
    /// gets a 413 if nothing was sent yet). `None`: unlimited. Default: `None` (as gevent).
    pub fn max_body_size(mut self, bytes: impl Into<Option<u64>>) -> WsgiConfig {
        self.max_body_size = bytes.into();
        self
    }

    /// Most unread request-body bytes discarded to keep a connection alive; beyond it the
    /// connection is closed after the response. Default: [`MAX_DISCARD`] (64 KiB).
    pub fn max_discard(mut self, bytes: u64) -> WsgiConfig {
        self.max_discard = bytes;
        self
    }

    /// Initial size of the per-connection read buffer (clamped to 256..=64 KiB).
    /// Default: [`READ_BUFFER_SIZE`] (1 KiB).
    pub fn read_buffer_size(mut self, bytes: usize) -> WsgiConfig {
        self.read_buffer_size = bytes.clamp(256, 64 * 1024);
        self
    }

    /// Whether connections may serve more than one request. `false` answers every request with
    /// `Connection: close`. Default: `true`.
    pub fn keep_alive(mut self, enabled: bool) -> WsgiConfig {
        self.keep_alive = enabled;
        self
    }

    /// Where access-log lines go. Default: [`AccessLog::stderr`].
    ///
    /// gevent: `WSGIServer(log=...)`.
    pub fn access_log(mut self, log: AccessLog) -> WsgiConfig {
        self.access_log = log;
        self
    }

    /// The error log: application errors (with the environ redacted), client protocol errors
    /// (INFO) and disconnects (DEBUG). It is also `wsgi.errors` ([`Environ::errors`]).
    /// Default: a logger writing to stderr.
    ///
    /// gevent: `WSGIServer(error_log=...)`.
    ///
    /// [`Environ::errors`]: super::Environ::errors
    pub fn error_log(mut self, logger: slog::Logger) -> WsgiConfig {
        Arc::make_mut(&mut self.base).errors = logger;
        self
    }

    /// `SERVER_NAME`. Default: empty (the server sets it from its address).
    pub fn server_name(mut self, name: impl Into<String>) -> WsgiConfig {
        Arc::make_mut(&mut self.base).server_name = name.into();
        self
    }

    /// `SERVER_PORT`. Default: empty (the server sets it from its address; empty for Unix sockets).
    pub fn server_port(mut self, port: impl Into<String>) -> WsgiConfig {
        Arc::make_mut(&mut self.base).server_port = port.into();
        self
    }

    /// `SERVER_SOFTWARE`. Default: [`SERVER_SOFTWARE`].
    pub fn server_software(mut self, software: impl Into<String>) -> WsgiConfig {
        Arc::make_mut(&mut self.base).server_software = software.into();
        self
    }

    /// `wsgi.url_scheme`, `"http"` or `"https"`. Default: `"http"` (the server sets `"https"` when
    /// it terminates TLS).
    pub fn url_scheme(mut self, scheme: impl Into<String>) -> WsgiConfig {
        Arc::make_mut(&mut self.base).url_scheme = scheme.into();
        self
    }

    /// Adds (or replaces) an extra string entry of every environ. The request's own keys
    /// (`REQUEST_METHOD`, `PATH_INFO`, `HTTP_*`...) take precedence over it; for `SERVER_NAME`,
    /// `SERVER_PORT`, `SERVER_SOFTWARE`, `GATEWAY_INTERFACE` and `wsgi.url_scheme` the extra entry
    /// wins, as a user `environ` dict does in gevent.
    ///
    /// gevent: `WSGIServer(environ={...})`.
    pub fn environ(mut self, key: impl Into<String>, value: impl Into<String>) -> WsgiConfig {
        let (key, value) = (key.into(), value.into());
        let base = Arc::make_mut(&mut self.base);
        match base.extra.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => base.extra.push((key, value)),
        }
        self
    }

    /// The peers whose forwarded headers are believed (gunicorn: `forwarded_allow_ips`; nginx:
    /// `set_real_ip_from`). Default: [`IpAllowList::localhost`] (`127.0.0.1`, `::1` and
    /// Unix-socket peers, as gunicorn); [`IpAllowList::none`] turns forwarded headers off.
    ///
    /// Security model: a request's forwarded headers are read only when the connection's peer
    /// (after a PROXY header, the address it gave) is in this list; from anyone else they
    /// change nothing and stay plain `HTTP_*` entries. From a trusted peer, the headers of
    /// [`forwarded_header`](Self::forwarded_header) are resolved like nginx's realip module with
    /// `real_ip_recursive on`: the address list is walked from the right (the entry the nearest
    /// proxy appended), skipping entries that are themselves in this list, and the first
    /// untrusted entry is the client — the leftmost entry, which the client wrote itself, counts
    /// only when every entry to its right is trusted. An entry that is not an IP address
    /// (garbage, `unknown`, an obfuscated name) ends the walk with no client. The scheme
    /// (`http` or `https`, anything else ignored) is the one reported for the client's hop and
    /// sets `wsgi.url_scheme`. The client's address is `may_gevent.forwarded_for` in the
    /// environ; it replaces `REMOTE_ADDR`/`REMOTE_PORT` (and the access log's client) only
    /// with [`forwarded_remote_addr`](Self::forwarded_remote_addr). List only your proxies,
    /// and make them overwrite (`X-Forwarded-Proto`) or append to (`X-Forwarded-For`) the
    /// headers a client sends: a header a proxy passes through unchanged is the client's.
    pub fn forwarded_allow_ips(mut self, peers: IpAllowList) -> WsgiConfig {
        self.forwarded_allow_ips = Arc::new(peers);
        self
    }

    /// Which forwarded headers the proxies write: [`ForwardedHeader::XForwardedFor`]
    /// (`X-Forwarded-For` and `X-Forwarded-Proto`, the default) or
    /// [`ForwardedHeader::Forwarded`] (RFC 7239). The other kind is never read.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> WsgiConfig {
        self.forwarded_header = header;
        self
    }

    /// Whether the client address resolved from the forwarded headers of a trusted peer (see
    /// [`forwarded_allow_ips`](Self::forwarded_allow_ips)) becomes `REMOTE_ADDR` and
    /// `REMOTE_PORT` (`0` when the header gave no port) and the access log's client. Default:
    /// off (as gunicorn: `REMOTE_ADDR` stays the socket peer; the address is in
    /// `may_gevent.forwarded_for`).
    pub fn forwarded_remote_addr(mut self, on: bool) -> WsgiConfig {
        self.forwarded_remote_addr = on;
        self
    }

    /// The current value of every setting: `config.settings().url_scheme()` (the methods of
    /// `WsgiConfig` itself are the by-value setters).
    pub fn settings(&self) -> WsgiSettings<'_> {
        WsgiSettings { config: self }
    }
}

/// Read access to every setting of a [`WsgiConfig`], from [`WsgiConfig::settings`]. Each getter
/// has the name of the setter it reads.
#[derive(Debug, Clone, Copy)]
pub struct WsgiSettings<'a> {
    config: &'a WsgiConfig,
}

impl<'a> WsgiSettings<'a> {
    /// See [`WsgiConfig::header_read_timeout`].
    pub fn header_read_timeout(&self) -> Option<Duration> {
        self.config.header_read_timeout
    }

    /// See [`WsgiConfig::keepalive_timeout`].
    pub fn keepalive_timeout(&self) -> Option<Duration> {
        self.config.keepalive_timeout
    }

    /// See [`WsgiConfig::body_read_timeout`].
    pub fn body_read_timeout(&self) -> Option<Duration> {
        self.config.body_read_timeout
    }

    /// See [`WsgiConfig::write_timeout`].
    pub fn write_timeout(&self) -> Option<Duration> {
        self.config.write_timeout
    }

    /// See [`WsgiConfig::max_request_line`].
    pub fn max_request_line(&self) -> usize {
        self.config.max_request_line
    }

    /// See [`WsgiConfig::max_header_block`].
    pub fn max_header_block(&self) -> usize {
        self.config.max_header_block
    }

    /// See [`WsgiConfig::max_body_size`].
    pub fn max_body_size(&self) -> Option<u64> {
        self.config.max_body_size
    }

    /// See [`WsgiConfig::max_discard`].
    pub fn max_discard(&self) -> u64 {
        self.config.max_discard
    }

    /// See [`WsgiConfig::read_buffer_size`].
    pub fn read_buffer_size(&self) -> usize {
        self.config.read_buffer_size
    }

    /// See [`WsgiConfig::keep_alive`].
    pub fn keep_alive(&self) -> bool {
        self.config.keep_alive
    }

    /// The access-log sink. See [`WsgiConfig::access_log`].
    pub fn access_log(&self) -> &'a AccessLog {
        &self.config.access_log
    }

    /// The error logger. See [`WsgiConfig::error_log`].
    pub fn error_log(&self) -> &'a slog::Logger {
        &self.config.base.errors
    }

    /// `SERVER_NAME`. See [`WsgiConfig::server_name`].
    pub fn server_name(&self) -> &'a str {
        &self.config.base.server_name
    }

    /// `SERVER_PORT`. See [`WsgiConfig::server_port`].
    pub fn server_port(&self) -> &'a str {
        &self.config.base.server_port
    }

    /// `SERVER_SOFTWARE`. See [`WsgiConfig::server_software`].
    pub fn server_software(&self) -> &'a str {
        &self.config.base.server_software
    }

    /// `wsgi.url_scheme`. See [`WsgiConfig::url_scheme`].
    pub fn url_scheme(&self) -> &'a str {
        &self.config.base.url_scheme
    }

    /// See [`WsgiConfig::forwarded_allow_ips`].
    pub fn forwarded_allow_ips(&self) -> &'a IpAllowList {
        &self.config.forwarded_allow_ips
    }

    /// See [`WsgiConfig::forwarded_header`].
    pub fn forwarded_header(&self) -> ForwardedHeader {
        self.config.forwarded_header
    }

    /// See [`WsgiConfig::forwarded_remote_addr`].
    pub fn forwarded_remote_addr(&self) -> bool {
        self.config.forwarded_remote_addr
    }

    /// The extra environ entries, in insertion order. See [`WsgiConfig::environ`].
    pub fn environ(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.config
            .base
            .extra
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

/// may rejects a zero timeout; treat it as "expire at once" by using the smallest non-zero one.
fn non_zero(timeout: Option<Duration>) -> Option<Duration> {
    timeout.map(|dur| dur.max(Duration::from_millis(1)))
}
