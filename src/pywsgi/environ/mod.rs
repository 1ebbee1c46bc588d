//! [`Environ`]: the WSGI environ of one request.
//!
//! It keeps the parsed request head (bytes and spans) and computes each key on lookup instead of
//! building some twenty strings per request. The `HTTP_*` values are worked out for all headers
//! together on the first lookup that needs one ([`EnvValues`]): most are spans of the head, and
//! only joined repeated headers and latin-1 decoded values get their own storage. A request whose
//! application never looks at a header pays nothing for them. (PATH_INFO is percent-decoded by
//! the parser, which has the target at hand.)

mod values;

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use super::config::BaseEnviron;
use super::head::RequestHead;
use super::input::Input;

#[cfg(test)]
pub(crate) use self::values::tests as values_tests;
pub(crate) use self::values::EnvValues;

/// `REMOTE_ADDR` and `REMOTE_PORT`, formatted once per connection without allocating.
#[derive(Clone, Copy)]
pub(crate) struct Remote {
    addr: Option<SocketAddr>,
    buf: [u8; 56],
    ip_len: u8,
    port_len: u8,
}

impl Remote {
    pub(crate) fn new(addr: Option<SocketAddr>) -> Remote {
        let mut remote = Remote {
            addr,
            buf: [0; 56],
            ip_len: 0,
            port_len: 0,
        };
        match addr {
            Some(SocketAddr::V4(v4)) => {
                // by hand: `core::fmt` would put a deep call chain on the coroutine stack
                let mut len = 0;
                for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        remote.buf[len] = b'.';
                        len += 1;
                    }
                    len += push_decimal(&mut remote.buf[len..], u32::from(octet));
                }
                remote.ip_len = len as u8;
                let port_len = push_decimal(&mut remote.buf[len..], u32::from(v4.port()));
                remote.port_len = port_len as u8;
            }
            Some(addr) => remote.format_other(addr),
            None => {}
        }
        remote
    }

    #[cold]
    #[inline(never)]
    fn format_other(&mut self, addr: SocketAddr) {
        let mut cursor = std::io::Cursor::new(&mut self.buf[..]);
        if write!(cursor, "{}", addr.ip()).is_ok() {
            self.ip_len = cursor.position() as u8;
            if write!(cursor, "{}", addr.port()).is_ok() {
                self.port_len = cursor.position() as u8 - self.ip_len;
            }
        }
    }

    pub(crate) fn ip(&self) -> Option<&str> {
        std::str::from_utf8(self.ip_bytes()?).ok()
    }

    /// [`ip`](Self::ip) as bytes (ASCII), without a UTF-8 check.
    pub(crate) fn ip_bytes(&self) -> Option<&[u8]> {
        self.addr?;
        Some(&self.buf[..self.ip_len as usize])
    }

    pub(crate) fn port(&self) -> Option<&str> {
        self.addr?;
        let start = self.ip_len as usize;
        std::str::from_utf8(&self.buf[start..start + self.port_len as usize]).ok()
    }
}

/// Writes `n` in decimal at the start of `out` (which has room for it); returns its length.
fn push_decimal(out: &mut [u8], n: u32) -> usize {
    let mut buf = [0u8; 20];
    let digits = super::syntax::decimal(u64::from(n), &mut buf);
    out[..digits.len()].copy_from_slice(digits);
    digits.len()
}

/// The keys that are not strings (they have typed accessors and are not in [`Environ::iter`]).
pub const NON_STRING_KEYS: [&str; 7] = [
    "wsgi.version",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
    "wsgi.input",
    "wsgi.errors",
    "wsgi.input_terminated",
];

/// Keys in `Debug` output whose values are shown (gevent: `WSGISecureEnviron.whitelist_keys`).
const SHOWN_KEYS: [&str; 3] = ["REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST"];

/// The environ of one request (PEP 3333), as gevent builds it.
///
/// String entries, looked up by their Python key with [`Environ::get`] (or the typed accessors):
///
/// | key | value |
/// |---|---|
/// | `REQUEST_METHOD` | the method, as sent (any token; case kept) |
/// | `SCRIPT_NAME` | `""` (gevent #1667) |
/// | `PATH_INFO` | the target's path, percent-decoded, each byte a latin-1 character; for an absolute-form target only its path (gevent keeps the whole URL: #140) |
/// | `QUERY_STRING` | the query, undecoded (`""` if none) |
/// | `RAW_URI` | the request target exactly as received |
/// | `CONTENT_TYPE`, `CONTENT_LENGTH` | when the request has them |
/// | `SERVER_PROTOCOL` | `HTTP/1.0` or `HTTP/1.1` |
/// | `SERVER_NAME`, `SERVER_PORT`, `SERVER_SOFTWARE`, `GATEWAY_INTERFACE` (`CGI/1.1`), `wsgi.url_scheme` | from the server ([`WsgiConfig`](super::WsgiConfig)) |
/// | `REMOTE_ADDR`, `REMOTE_PORT` | the client's IP and port (absent for Unix sockets); behind a PROXY protocol balancer the client's the header gave; with [`forwarded_remote_addr`](super::WsgiConfig::forwarded_remote_addr), `may_gevent.forwarded_for` and its port |
/// | `may_gevent.proxy_addr` | with the PROXY protocol on: the balancer's address (the socket peer, `IP:PORT`) |
/// | `may_gevent.forwarded_for` | the client's IP as a trusted proxy's forwarded headers give it (see [`forwarded_allow_ips`](super::WsgiConfig::forwarded_allow_ips)); `wsgi.url_scheme` is then the scheme they give |
/// | `HTTP_*` | one per header name: upper-cased, `-` turned into `_`; repeated headers joined with `,` (`; ` when the name contains COOKIE); names containing `_` dropped (gevent #819); Content-Type/Length not duplicated; for an absolute-form target `HTTP_HOST` is the target's authority (RFC 9112 3.2.2) |
///
/// plus the server's extra entries and whatever the application inserted. Non-string entries are
/// accessors: [`Environ::input`] (`wsgi.input`), [`Environ::errors`] (`wsgi.errors`),
/// [`Environ::version`], [`Environ::multithread`] (true: may runs coroutines on several threads,
/// where gevent says false), [`Environ::multiprocess`], [`Environ::run_once`],
/// [`Environ::input_terminated`]. PEP 3333's optional `wsgi.file_wrapper` is no entry: return
/// [`Body::file`](super::Body::file) (`environ['wsgi.file_wrapper'](f)`).
///
/// `Debug` redacts values like gevent's `WSGISecureEnviron`: only REMOTE_ADDR, REMOTE_PORT and
/// HTTP_HOST are shown.
pub struct Environ {
    state: Box<EnvState>,
}

/// Everything an environ holds, boxed once per connection and reused by each request (so that
/// handing it to the application and back moves one pointer).
pub(crate) struct EnvState {
    pub(crate) head: RequestHead,
    /// The environ values of `head`'s header fields.
    values: EnvValues,
    base: Arc<BaseEnviron>,
    remote: Remote,
    pub(crate) input: Input,
    /// Application changes: `Some` = inserted/replaced, `None` = removed.
    overrides: Vec<(String, Option<String>)>,
    /// `may_gevent.proxy_addr`: the proxy that sent the connection's PROXY header.
    proxy_addr: Option<Box<str>>,
    /// What this request's trusted forwarded headers said.
    forwarded: Forwarded,
}

/// What a request's trusted forwarded headers said (nothing for an untrusted peer).
#[derive(Clone, Copy, Default)]
pub(crate) struct Forwarded {
    /// `wsgi.url_scheme`.
    pub(crate) scheme: Option<&'static str>,
    /// `may_gevent.forwarded_for`, and `REMOTE_ADDR`/`REMOTE_PORT` when `replace_remote`.
    pub(crate) client: Option<Remote>,
    pub(crate) replace_remote: bool,
}

impl EnvState {
    /// The storage of a connection's environs (no request yet).
    pub(crate) fn new(base: Arc<BaseEnviron>, remote: Remote, input: Input) -> EnvState {
        EnvState {
            head: RequestHead::default(),
            values: EnvValues::default(),
            base,
            remote,
            input,
            overrides: Vec::new(),
            proxy_addr: None,
            forwarded: Forwarded::default(),
        }
    }

    /// The connection came through a proxy (a PROXY header) at `addr`.
    pub(crate) fn set_proxy_addr(&mut self, addr: &crate::Address) {
        self.proxy_addr = Some(addr.to_string().into_boxed_str());
    }

    /// What this request's forwarded headers said (after [`begin_request`](Self::begin_request)).
    pub(crate) fn set_forwarded(&mut self, forwarded: Forwarded) {
        self.forwarded = forwarded;
    }

    /// `REMOTE_ADDR`/`REMOTE_PORT` (and the access log's client): the peer, or the forwarded
    /// client when configured so.
    pub(crate) fn remote(&self) -> &Remote {
        match &self.forwarded {
            Forwarded {
                client: Some(client),
                replace_remote: true,
                ..
            } => client,
            _ => &self.remote,
        }
    }

    /// Gives the per-request allocations back while the connection is idle between requests:
    /// the head's copy and header slots, the header values, the application's overrides and
    /// the read buffer (which must be empty). They are made again by the next request.
    pub(crate) fn release_idle(&mut self) {
        self.head.release();
        self.values.release();
        self.overrides = Vec::new();
        self.input.rbuf_mut().release();
    }

    /// Makes ready for the request just parsed into `head`: its body, its header values, no
    /// application changes.
    pub(crate) fn begin_request(&mut self) {
        self.input
            .reset(self.head.framing, self.head.expect_continue);
        self.values.reset();
        self.overrides.clear();
        self.forwarded = Forwarded::default();
    }
}

impl Environ {
    pub(crate) fn from_state(state: Box<EnvState>) -> Environ {
        Environ { state }
    }

    pub(crate) fn into_state(self) -> Box<EnvState> {
        self.state
    }

    pub(crate) fn input_ref(&self) -> &Input {
        &self.state.input
    }

    pub(crate) fn head(&self) -> &RequestHead {
        &self.state.head
    }

    /// The client the access log shows.
    pub(crate) fn log_remote(&self) -> &Remote {
        self.state.remote()
    }

    /// The value of a string entry (`env['PATH_INFO']`), `None` if absent or not a string.
    pub fn get(&self, key: &str) -> Option<&str> {
        if !self.state.overrides.is_empty() {
            if let Some((_, value)) = self.state.overrides.iter().find(|(k, _)| k == key) {
                return value.as_deref();
            }
        }
        self.request_value(key).or_else(|| self.state.base.get(key))
    }

    /// Whether `key` is present: a string entry or one of [`NON_STRING_KEYS`].
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some() || NON_STRING_KEYS.contains(&key)
    }

    /// Sets a string entry (new, or replacing a server one: e.g. a middleware rewriting PATH_INFO).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = Some(value.into());
        match self.state.overrides.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.state.overrides.push((key, value)),
        }
    }

    /// Removes a string entry; returns whether it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        let present = self.get(key).is_some();
        if present {
            match self.state.overrides.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = None,
                None => self.state.overrides.push((key.to_owned(), None)),
            }
        }
        present
    }

    /// Every string entry, in gevent's order (server keys, request keys, `HTTP_*` in header order,
    /// `RAW_URI`, then application entries). Keys of `HTTP_*` entries are computed here.
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'_, str>, &str)> {
        let mut entries: Vec<(Cow<'_, str>, &str)> = Vec::with_capacity(24);
        const SERVER_KEYS: [&str; 4] = [
            "GATEWAY_INTERFACE",
            "SERVER_SOFTWARE",
            "SCRIPT_NAME",
            "wsgi.url_scheme",
        ];
        const BASE_FIELDS: [&str; 5] = [
            "SERVER_NAME",
            "SERVER_PORT",
            "SERVER_SOFTWARE",
            "GATEWAY_INTERFACE",
            "wsgi.url_scheme",
        ];
        for key in SERVER_KEYS {
            if let Some(value) = self.request_value(key).or_else(|| self.state.base.get(key)) {
                entries.push((Cow::Borrowed(key), value));
            }
        }
        for (key, value) in &self.state.base.extra {
            if !BASE_FIELDS.contains(&key.as_str()) && self.request_value(key).is_none() {
                entries.push((Cow::Borrowed(key.as_str()), value.as_str()));
            }
        }
        for key in [
            "SERVER_NAME",
            "SERVER_PORT",
            "REQUEST_METHOD",
            "PATH_INFO",
            "QUERY_STRING",
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
            "SERVER_PROTOCOL",
            "REMOTE_ADDR",
            "REMOTE_PORT",
            "may_gevent.proxy_addr",
            "may_gevent.forwarded_for",
        ] {
            if let Some(value) = self.request_value(key).or_else(|| self.state.base.get(key)) {
                entries.push((Cow::Borrowed(key), value));
            }
        }
        let head = &self.state.head;
        for (entry, value) in self.state.values.http_entries(head) {
            let key = http_key(head.header_name(entry));
            // a server extra of the same name is shadowed by the request's header
            entries.retain(|(k, _)| *k != key);
            entries.push((Cow::Owned(key), value));
        }
        entries.push((Cow::Borrowed("RAW_URI"), self.state.head.target()));
        if !self.state.overrides.is_empty() {
            entries.retain(|(key, _)| {
                !self
                    .state
                    .overrides
                    .iter()
                    .any(|(k, v)| k == key && v.is_none())
            });
            for (key, value) in &self.state.overrides {
                let Some(value) = value else { continue };
                match entries.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value,
                    None => entries.push((Cow::Borrowed(key.as_str()), value.as_str())),
                }
            }
        }
        entries.into_iter()
    }

    /// The number of entries, non-string ones included.
    pub fn len(&self) -> usize {
        self.iter().count() + NON_STRING_KEYS.len()
    }

    /// Always false: the non-string `wsgi.*` keys are always present.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A request-specific key (before server extras).
    fn request_value(&self, key: &str) -> Option<&str> {
        let head = &self.state.head;
        match key {
            "REQUEST_METHOD" => Some(head.method()),
            "SCRIPT_NAME" => Some(""),
            "PATH_INFO" => Some(head.path_info()),
            "QUERY_STRING" => Some(head.query_string()),
            "RAW_URI" => Some(head.target()),
            "SERVER_PROTOCOL" => Some(head.version.as_str()),
            "CONTENT_TYPE" => head
                .content_type
                .and_then(|i| self.state.values.value(head, i as usize)),
            "CONTENT_LENGTH" => head
                .content_length
                .and_then(|i| head.headers.get(i as usize))
                .map(|entry| entry.value.str(&head.buf)),
            "REMOTE_ADDR" => self.state.remote().ip(),
            "REMOTE_PORT" => self.state.remote().port(),
            "wsgi.url_scheme" => self.state.forwarded.scheme,
            "may_gevent.proxy_addr" => self.state.proxy_addr.as_deref(),
            "may_gevent.forwarded_for" => self.state.forwarded.client.as_ref()?.ip(),
            _ => {
                let name = key.strip_prefix("HTTP_")?;
                self.state
                    .values
                    .http_entries(head)
                    .find(|(entry, _)| {
                        http_name_matches(entry.name.get(&head.buf), name.as_bytes())
                    })
                    .map(|(_, value)| value)
            }
        }
    }

    /// `REQUEST_METHOD`.
    pub fn method(&self) -> &str {
        if self.state.overrides.is_empty() {
            return self.state.head.method();
        }
        self.get("REQUEST_METHOD").unwrap_or_default()
    }

    /// `PATH_INFO` (percent-decoded, latin-1 characters).
    pub fn path_info(&self) -> &str {
        if self.state.overrides.is_empty() {
            // what `get` finds without overrides, without its key comparisons
            return self.state.head.path_info();
        }
        self.get("PATH_INFO").unwrap_or_default()
    }

    /// `PATH_INFO` as the bytes the client encoded (each latin-1 character back to its byte),
    /// e.g. to decode it as UTF-8.
    pub fn path_info_bytes(&self) -> Cow<'_, [u8]> {
        let path = self.path_info();
        if path.is_ascii() {
            Cow::Borrowed(path.as_bytes())
        } else {
            Cow::Owned(
                path.chars()
                    .map(|ch| u32::from(ch).min(0xff) as u8)
                    .collect(),
            )
        }
    }

    /// `QUERY_STRING` (undecoded).
    pub fn query_string(&self) -> &str {
        if self.state.overrides.is_empty() {
            return self.state.head.query_string();
        }
        self.get("QUERY_STRING").unwrap_or_default()
    }

    /// `SCRIPT_NAME`.
    pub fn script_name(&self) -> &str {
        self.get("SCRIPT_NAME").unwrap_or_default()
    }

    /// `RAW_URI`: the request target exactly as received.
    pub fn raw_uri(&self) -> &str {
        self.get("RAW_URI").unwrap_or_default()
    }

    /// `SERVER_PROTOCOL`.
    pub fn server_protocol(&self) -> &str {
        self.get("SERVER_PROTOCOL").unwrap_or_default()
    }

    /// `SERVER_NAME`.
    pub fn server_name(&self) -> &str {
        self.get("SERVER_NAME").unwrap_or_default()
    }

    /// `SERVER_PORT`.
    pub fn server_port(&self) -> &str {
        self.get("SERVER_PORT").unwrap_or_default()
    }

    /// `wsgi.url_scheme`.
    pub fn url_scheme(&self) -> &str {
        self.get("wsgi.url_scheme").unwrap_or_default()
    }

    /// `CONTENT_TYPE`, if the request has one.
    pub fn content_type(&self) -> Option<&str> {
        self.get("CONTENT_TYPE")
    }

    /// `CONTENT_LENGTH`, if the request has one.
    pub fn content_length(&self) -> Option<&str> {
        self.get("CONTENT_LENGTH")
    }

    /// `REMOTE_ADDR` (absent for Unix sockets).
    pub fn remote_addr(&self) -> Option<&str> {
        self.get("REMOTE_ADDR")
    }

    /// `REMOTE_PORT` (absent for Unix sockets).
    pub fn remote_port(&self) -> Option<&str> {
        self.get("REMOTE_PORT")
    }

    /// The client's socket address, when it has one (behind a PROXY protocol balancer, the
    /// address its header gave; never the forwarded headers' client).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.state.remote.addr
    }

    /// The environ value of header `name` (any case): `header("x-foo")` is `HTTP_X_FOO`, with
    /// `Content-Type` and `Content-Length` mapped to their CGI keys. Names with `_` are never found.
    pub fn header(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.content_type();
        }
        if name.eq_ignore_ascii_case("content-length") {
            return self.content_length();
        }
        if name.contains('_') {
            return None;
        }
        if self.state.overrides.is_empty() {
            let head = &self.state.head;
            return self
                .state
                .values
                .http_entries(head)
                .find(|(entry, _)| {
                    entry
                        .name
                        .get(&head.buf)
                        .eq_ignore_ascii_case(name.as_bytes())
                })
                .map(|(_, value)| value);
        }
        self.get(&http_key(name))
    }

    /// Every header field line as received (names as sent, values as bytes), including the ones
    /// the environ drops.
    pub fn raw_headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.state.head.headers.iter().map(|entry| {
            (
                self.state.head.header_name(entry),
                entry.value.get(&self.state.head.buf),
            )
        })
    }

    /// `wsgi.input`: the request body.
    pub fn input(&mut self) -> &mut Input {
        &mut self.state.input
    }

    /// `wsgi.errors`: the server's error logger.
    pub fn errors(&self) -> &slog::Logger {
        &self.state.base.errors
    }

    /// `wsgi.version`: `(1, 0)`.
    pub fn version(&self) -> (u32, u32) {
        (1, 0)
    }

    /// `wsgi.multithread`: true (may runs application calls on several OS threads).
    pub fn multithread(&self) -> bool {
        true
    }

    /// `wsgi.multiprocess`: false.
    pub fn multiprocess(&self) -> bool {
        false
    }

    /// `wsgi.run_once`: false.
    pub fn run_once(&self) -> bool {
        false
    }

    /// `wsgi.input_terminated`: true, except for upgrade requests (`Connection: upgrade` or an
    /// `Upgrade` header), whose input may continue as a raw stream (gevent #1308).
    pub fn input_terminated(&self) -> bool {
        !self.state.head.upgrade
    }
}

/// `HTTP_` + upper-cased name with `-` → `_`.
fn http_key(name: &str) -> String {
    let mut key = String::with_capacity(5 + name.len());
    key.push_str("HTTP_");
    key.extend(name.chars().map(|ch| {
        if ch == '-' {
            '_'
        } else {
            ch.to_ascii_uppercase()
        }
    }));
    key
}

/// Whether header `name` maps to the key suffix `key` (upper case, `_` for `-`).
fn http_name_matches(name: &[u8], key: &[u8]) -> bool {
    name.len() == key.len()
        && name.iter().zip(key).all(|(&n, &k)| {
            let n = if n == b'-' {
                b'_'
            } else {
                n.to_ascii_uppercase()
            };
            n == k
        })
}

impl fmt::Debug for Environ {
    /// gevent's `WSGISecureEnviron` repr: `{'REMOTE_ADDR': '127.0.0.1', 'REMOTE_PORT': '48088',
    /// 'HTTP_HOST': 'localhost', (hidden keys: 17)}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        let mut shown = 0;
        for key in SHOWN_KEYS {
            if let Some(value) = self.get(key) {
                write!(f, "'{key}': '{value}', ")?;
                shown += 1;
            }
        }
        write!(f, "(hidden keys: {})}}", self.len() - shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_address_text() {
        let remote = Remote::new(Some("10.200.3.45:65535".parse().unwrap()));
        assert_eq!(remote.ip(), Some("10.200.3.45"));
        assert_eq!(remote.port(), Some("65535"));
        let remote = Remote::new(Some("0.0.0.0:0".parse().unwrap()));
        assert_eq!((remote.ip(), remote.port()), (Some("0.0.0.0"), Some("0")));
        let remote = Remote::new(Some("[::1]:8080".parse().unwrap()));
        assert_eq!((remote.ip(), remote.port()), (Some("::1"), Some("8080")));
        let remote = Remote::new(None);
        assert_eq!((remote.ip(), remote.port()), (None, None));
    }
}
