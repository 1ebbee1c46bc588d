//! An HTTP/1.1 client for handlers: every wait parks only the calling coroutine.
//!
//! What gevent programs get from `monkey.patch_all()` plus `urllib` or `requests`: a handler
//! fetches from another service, and while it waits, every other coroutine runs. Blocking
//! clients (ureq, reqwest's blocking client, anything on `std::net`) hold their may worker
//! thread instead; with the default two workers, two slow upstream calls stall the whole
//! server. This client runs on may sockets: names resolve on the thread pool
//! ([`Resolver`]), connects go through
//! [`create_connection`](crate::create_connection), reads and writes park the coroutine.
//!
//! ```
//! use may_gevent::client::Client;
//! use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
//!
//! fn app(_: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
//!     start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
//!     Ok(b"upstream says hi".into())
//! }
//! let upstream = WsgiServer::builder("127.0.0.1:0", app).access_log(None).build()?;
//! upstream.start()?;
//! let url = format!("http://{}/", upstream.local_addr().unwrap());
//!
//! let client = Client::new();
//! let response = client.get(&url)?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.header("content-type"), Some("text/plain"));
//! assert_eq!(response.text()?, "upstream says hi");
//! # upstream.stop(None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it does, strictly:
//! - HTTP/1.1 with keep-alive: idle connections are kept per `scheme://host:port` (at most
//!   [`POOL_PER_HOST`] each, for at most [`POOL_IDLE_TIMEOUT`]) once a response body has been
//!   read to its end; a connection that comes back from the pool stale is replaced once for a
//!   GET or HEAD;
//! - bodies framed by `Content-Length`, chunked coding, or the close of the connection (RFC
//!   9112 section 6.3); a response with both Transfer-Encoding and Content-Length, conflicting
//!   or malformed Content-Length values, bad chunked framing, a close before the announced end,
//!   a bad status line, a head over [`MAX_HEADER_SIZE`] or a body over [`MAX_BODY_SIZE`] are
//!   [`Error`]s that say what and where — never a panic, never a guess;
//! - redirects are not followed unless asked ([`ClientBuilder::max_redirects`]);
//! - timeouts on connect (resolution included), on each read and on each write;
//! - `https://` through native-tls with the `tls` feature (the system's roots, or your own
//!   [`native_tls::TlsConnector`]). OpenSSL's handshake needs a coroutine stack of about
//!   128 KiB: a handler that calls `https://` URLs runs in a server with a large enough
//!   `stack_size` (TLS servers already use [`TLS_STACK_SIZE`](crate::TLS_STACK_SIZE)).
//!
//! Not provided: HTTP/2, proxies, cookies, compression, request bodies streamed from a reader.
//!
//! Why not ureq 3 over a custom transport: its `Connector`/`Transport` and `Resolver` traits
//! live in `ureq::unversioned` ("does not (yet) follow semver", ureq issue #952), so every ureq
//! release could break the adapter, and its default resolver waits for a helper thread on a
//! `std::sync::mpsc` channel, which blocks the worker. A small strict client over the crate's
//! own [`Stream`](crate::Stream), httparse and the pywsgi chunked decoder has no such coupling.

mod error;
mod pool;
mod response;
mod url;

use std::fmt;
use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use error::{Error, Result};
pub use response::{Response, MAX_RESPONSE_HEADERS};

use crate::resolver::Resolver;
use pool::{Conn, Pool, PoolKey};
use response::{read_response, ReadLimits, Release};
use url::{Scheme, Url};

/// Connect timeout (name resolution included) unless set: 10 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of each read unless set: 30 s.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of each write unless set: 30 s.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response head (status line and headers) accepted unless set: 64 KiB.
pub const MAX_HEADER_SIZE: usize = 64 * 1024;
/// The largest response body accepted unless set: 64 MiB.
pub const MAX_BODY_SIZE: u64 = 64 * 1024 * 1024;
/// Idle keep-alive connections kept per `scheme://host:port` unless set.
pub const POOL_PER_HOST: usize = 8;
/// How long an idle keep-alive connection is kept unless set.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

const USER_AGENT: &str = concat!("may_gevent/", env!("CARGO_PKG_VERSION"));

struct Config {
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    max_header: usize,
    max_body: u64,
    max_redirects: u32,
    resolver: Resolver,
    #[cfg(feature = "tls")]
    tls: Option<native_tls::TlsConnector>,
}

struct Inner {
    config: Config,
    pool: Arc<Pool>,
    #[cfg(feature = "tls")]
    default_tls: OnceLock<std::result::Result<native_tls::TlsConnector, String>>,
}

/// An HTTP/1.1 client with a keep-alive pool. Cheap to clone (clones share the pool); `Send`
/// and `Sync`, for use from any number of coroutines.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner.config;
        f.debug_struct("Client")
            .field("connect_timeout", &c.connect_timeout)
            .field("read_timeout", &c.read_timeout)
            .field("write_timeout", &c.write_timeout)
            .field("max_redirects", &c.max_redirects)
            .field("idle_connections", &self.inner.pool.idle_count())
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

/// Settings of a [`Client`]; from [`Client::builder`].
pub struct ClientBuilder {
    config: Config,
    per_host: usize,
    idle_timeout: Duration,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("per_host", &self.per_host)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Timeout of resolving and connecting, together (`None`: the kernel's). Default: 10 s.
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.connect_timeout = timeout.into();
        self
    }

    /// Timeout of each read from the upstream (`None`: wait forever). Default: 30 s.
    pub fn read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.read_timeout = timeout.into();
        self
    }

    /// Timeout of each write to the upstream (`None`: wait forever). Default: 30 s.
    pub fn write_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.write_timeout = timeout.into();
        self
    }

    /// The largest response head accepted. Default: [`MAX_HEADER_SIZE`].
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.config.max_header = bytes.max(16);
        self
    }

    /// The largest response body accepted. Default: [`MAX_BODY_SIZE`].
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.config.max_body = bytes;
        self
    }

    /// Follow up to `max` redirects (301, 302, 303, 307, 308 with a `Location`). Default: 0,
    /// a redirect is returned as the response. 303, and 301/302 after a POST, continue with a
    /// GET without body, as browsers do.
    pub fn max_redirects(mut self, max: u32) -> Self {
        self.config.max_redirects = max;
        self
    }

    /// Idle keep-alive connections kept per `scheme://host:port` (0: no keep-alive).
    /// Default: [`POOL_PER_HOST`].
    pub fn pool_per_host(mut self, n: usize) -> Self {
        self.per_host = n;
        self
    }

    /// How long an idle connection is kept. Default: [`POOL_IDLE_TIMEOUT`].
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Resolve host names with `resolver`. Default: [`Resolver::new`].
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.config.resolver = resolver;
        self
    }

    /// Use this TLS connector for `https://` (e.g. with your own root certificate).
    /// Default: native-tls's, with the system's roots.
    #[cfg(feature = "tls")]
    pub fn tls_connector(mut self, connector: native_tls::TlsConnector) -> Self {
        self.config.tls = Some(connector);
        self
    }

    /// The client.
    pub fn build(self) -> Client {
        Client {
            inner: Arc::new(Inner {
                config: self.config,
                pool: Arc::new(Pool::new(self.per_host, self.idle_timeout)),
                #[cfg(feature = "tls")]
                default_tls: OnceLock::new(),
            }),
        }
    }
}

/// A request being put together; from [`Client::request`]. Send it with [`send`](Self::send).
#[derive(Debug)]
pub struct RequestBuilder {
    client: Client,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl RequestBuilder {
    /// Add a header field (`Host`, `Content-Length` and `Transfer-Encoding` are the client's).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The request body (sent with its `Content-Length`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Send the request and read the response head.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn send(self) -> Result<Response> {
        self.client
            .execute(&self.method, &self.url, &self.headers, self.body.as_deref())
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

impl Client {
    /// A client with the defaults (see the constants of this module).
    pub fn new() -> Client {
        Client::builder().build()
    }

    /// Settings for a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            config: Config {
                connect_timeout: Some(CONNECT_TIMEOUT),
                read_timeout: Some(READ_TIMEOUT),
                write_timeout: Some(WRITE_TIMEOUT),
                max_header: MAX_HEADER_SIZE,
                max_body: MAX_BODY_SIZE,
                max_redirects: 0,
                resolver: Resolver::new(),
                #[cfg(feature = "tls")]
                tls: None,
            },
            per_host: POOL_PER_HOST,
            idle_timeout: POOL_IDLE_TIMEOUT,
        }
    }

    /// The process-wide client that [`get`] uses, with the defaults.
    pub fn shared() -> &'static Client {
        static SHARED: OnceLock<Client> = OnceLock::new();
        SHARED.get_or_init(Client::new)
    }

    /// `GET url`.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn get(&self, url: &str) -> Result<Response> {
        self.execute("GET", url, &[], None)
    }

    /// A request with any method, to add headers and a body to.
    pub fn request(&self, method: &str, url: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            method: method.to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Idle keep-alive connections kept now, all hosts together.
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.idle_count()
    }

    fn execute(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        if !valid_token(method) {
            return Err(Error::InvalidRequest(format!("bad method {method:?}")));
        }
        for (name, value) in headers {
            if !valid_token(name) || !valid_value(value) {
                return Err(Error::InvalidRequest(format!("bad header {name:?}")));
            }
        }
        let mut url = Url::parse(url)?;
        let mut method = method.to_owned();
        let mut body = body;
        let mut redirects = 0;
        loop {
            let response = self.once(&method, &url, headers, body)?;
            let max = self.inner.config.max_redirects;
            let location = match response.status() {
                301 | 302 | 303 | 307 | 308 if max > 0 => response.header("location"),
                _ => None,
            };
            let Some(location) = location else {
                return Ok(response);
            };
            if redirects == max {
                return Err(Error::TooManyRedirects {
                    url: url.to_string(),
                    max,
                });
            }
            redirects += 1;
            let next = url.join(location)?;
            let status = response.status();
            if status == 303 || (matches!(status, 301 | 302) && method == "POST") {
                method = "GET".to_owned();
                body = None;
            }
            drop(response); // an unread body: that connection is closed
            url = next;
        }
    }

    /// One request on one connection (a pooled one, or a new one), without redirects.
    fn once(
        &self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let key = PoolKey {
            scheme: url.scheme,
            host: url.host.clone(),
            port: url.port,
        };
        let mut request = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\n",
            url.target,
            url.authority()
        );
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !has("user-agent") {
            request.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
        }
        for (name, value) in headers {
            if ["host", "content-length", "transfer-encoding"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                continue;
            }
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        } else if matches!(method, "POST" | "PUT" | "PATCH") {
            request.push_str("Content-Length: 0\r\n");
        }
        request.push_str("\r\n");
        let idempotent = matches!(method, "GET" | "HEAD" | "OPTIONS");
        let cfg = &self.inner.config;
        let limits = ReadLimits {
            max_header: cfg.max_header,
            max_body: cfg.max_body,
        };
        let shown = url.to_string();
        let mut pooled = self.inner.pool.take(&key);
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(conn) => conn,
                None => Conn::new(self.connect(url)?),
            };
            let sent = conn
                .stream
                .set_read_timeout(cfg.read_timeout)
                .and_then(|()| conn.stream.set_write_timeout(cfg.write_timeout))
                .and_then(|()| conn.stream.write_all(request.as_bytes()))
                .and_then(|()| body.map_or(Ok(()), |b| conn.stream.write_all(b)))
                .and_then(|()| conn.stream.flush());
            if let Err(err) = sent {
                if reused && idempotent {
                    continue; // the upstream closed an idle connection: once more, on a new one
                }
                return Err(Error::io(
                    format!("{method} {shown}: sending the request"),
                    err,
                ));
            }
            let release = Release {
                pool: self.inner.pool.clone(),
                key: key.clone(),
                reusable: true,
            };
            match read_response(conn, method, shown.clone(), &limits, release) {
                // a pooled connection the upstream closed meanwhile: once more, on a new one
                Err(Error::InvalidResponse { reason, .. })
                    if reused
                        && idempotent
                        && reason.starts_with("connection closed before any") =>
                {
                    continue
                }
                Err(Error::Io { source, .. })
                    if reused
                        && idempotent
                        && matches!(
                            source.kind(),
                            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                        ) =>
                {
                    continue
                }
                other => return other,
            }
        }
    }

    fn connect(&self, url: &Url) -> Result<crate::stream::Stream> {
        let cfg = &self.inner.config;
        let target = format!("{}:{}", url.host, url.port);
        let stream = cfg
            .resolver
            .create_connection((url.host.as_str(), url.port), cfg.connect_timeout, None)
            .map_err(|source| Error::Connect {
                target: target.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        match url.scheme {
            Scheme::Http => Ok(stream),
            #[cfg(feature = "tls")]
            Scheme::Https => self.handshake(stream, url, target),
            #[cfg(not(feature = "tls"))]
            Scheme::Https => Err(Error::UnsupportedScheme(url.to_string())),
        }
    }

    #[cfg(feature = "tls")]
    fn handshake(
        &self,
        stream: crate::stream::Stream,
        url: &Url,
        target: String,
    ) -> Result<crate::stream::Stream> {
        let connector = match &self.inner.config.tls {
            Some(connector) => connector,
            None => match self
                .inner
                .default_tls
                .get_or_init(|| native_tls::TlsConnector::new().map_err(|err| err.to_string()))
            {
                Ok(connector) => connector,
                Err(err) => {
                    return Err(Error::Tls {
                        target,
                        source: err.clone().into(),
                    })
                }
            },
        };
        let Ok(plain) = stream.into_plain() else {
            return Err(Error::Tls {
                target,
                source: "already a TLS stream".into(),
            });
        };
        // the handshake is bounded by the connect timeout on each read and write
        let timeout = self.inner.config.connect_timeout;
        let _ = plain.set_read_timeout(timeout);
        let _ = plain.set_write_timeout(timeout);
        match connector.connect(url.bare_host(), plain) {
            Ok(tls) => Ok(crate::stream::Stream::tls(tls)),
            Err(err) => Err(Error::Tls {
                target,
                source: Box::new(io_error_of(err)),
            }),
        }
    }
}

/// A handshake error as an owned error (the interrupted variant holds the stream).
#[cfg(feature = "tls")]
fn io_error_of(err: native_tls::HandshakeError<crate::stream::PlainStream>) -> std::io::Error {
    match err {
        native_tls::HandshakeError::Failure(err) => std::io::Error::other(err),
        native_tls::HandshakeError::WouldBlock(_) => {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "the tls handshake timed out")
        }
    }
}

/// `GET url` with the process-wide [`Client::shared`]. gevent programs: `urllib.request.urlopen(url)`.
///
/// # Errors
/// See [`Error`].
pub fn get(url: &str) -> Result<Response> {
    Client::shared().get(url)
}
