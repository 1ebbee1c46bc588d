//! `start_response`, the `write` callable and response framing.
//!
//! The head is serialised into the connection's output buffer (`Link::wbuf`) together with a
//! buffered body, so a typical response leaves in one `write` syscall; pipelined responses are
//! batched in the same buffer and flushed before the next blocking read. Streamed bodies (iterators
//! and the `write` callable) are flushed as they are produced.
//!
//! Framing (RFC 9112 section 6.3, RFC 9110 sections 6.4.1 and 8.6):
//! - 1xx, 204 and 304 responses never carry a body, nor (1xx, 204) a Content-Length;
//! - a response to HEAD carries the headers a GET would get, Content-Length included when it is
//!   known, and never a body (gevent sends the body: fixed);
//! - otherwise an application Content-Length is used (and enforced: a body of another length
//!   closes the connection instead of desynchronising it), a buffered body gets a computed
//!   Content-Length, a streamed body is chunked on HTTP/1.1 and close-delimited on HTTP/1.0;
//! - `101 Switching Protocols` hands the raw connection to the application.

use std::fmt;
use std::io;

use super::body::{AppError, Body, BodyKind};
use super::date::{now_secs, DateCache};
use super::head::{RequestHead, Version};
use super::io::{Shared, WBUF_FLUSH_AT};
use super::syntax::{is_tchar, same_bytes};

/// An error in the application's use of `start_response` or `write`. The messages are gevent's
/// where gevent has one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// A CR or LF in the status (`"status"`), a header name (`"header name"`) or a header value
    /// (`"header value"`): header injection. Message: `carriage return or newline in <where>`.
    Newline(&'static str),
    /// A character above U+00FF in the status or a header (gevent: `UnicodeError("Non-latin1
    /// header")`).
    NonLatin1(String),
    /// A status that does not start with a 3-digit code followed by a space or its end, contains
    /// control characters, or is not allowed here (a 1xx other than 101, a 101 without an upgrade
    /// request).
    InvalidStatus(String),
    /// A header name that is not an RFC 9110 token.
    InvalidHeaderName(String),
    /// A control character (other than HTAB) in a header value.
    InvalidHeaderValue(String),
    /// A Content-Length that is not a number, given twice, or not zero on a 204/304 response.
    InvalidContentLength(String),
    /// A header only the server may set (`Transfer-Encoding`, a hop-by-hop header: PEP 3333).
    ForbiddenHeader(String),
    /// `start_response` called after the response head was sent.
    HeadersAlreadySent,
    /// A body on a response that cannot have one (gevent: `The 304 response must have no body`).
    NoBodyAllowed(u16),
    /// The application returned a body without calling `start_response`.
    NotStarted,
    /// The body is longer or shorter than the Content-Length the application declared.
    LengthMismatch {
        /// The declared Content-Length.
        declared: u64,
        /// The bytes the application produced (at least this many, when too long).
        actual: u64,
    },
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Newline(place) => write!(f, "carriage return or newline in {place}"),
            ResponseError::NonLatin1(what) => write!(f, "Non-latin1 header: {what:?}"),
            ResponseError::InvalidStatus(status) => write!(f, "invalid status: {status:?}"),
            ResponseError::InvalidHeaderName(name) => write!(f, "invalid header name: {name:?}"),
            ResponseError::InvalidHeaderValue(name) => {
                write!(f, "invalid character in the value of header {name:?}")
            }
            ResponseError::InvalidContentLength(msg) => f.write_str(msg),
            ResponseError::ForbiddenHeader(name) => {
                write!(
                    f,
                    "the application must not set the hop-by-hop header {name:?}"
                )
            }
            ResponseError::HeadersAlreadySent => {
                f.write_str("start_response called after the response head was sent")
            }
            ResponseError::NoBodyAllowed(code) => {
                write!(f, "The {code} response must have no body")
            }
            ResponseError::NotStarted => {
                f.write_str("The application did not call start_response()")
            }
            ResponseError::LengthMismatch { declared, actual } => write!(
                f,
                "response body length {actual} does not match its Content-Length {declared}"
            ),
        }
    }
}

impl std::error::Error for ResponseError {}

impl From<ResponseError> for io::Error {
    fn from(err: ResponseError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// How a response failed after the application returned (or while it ran).
pub(crate) enum Failure {
    /// The application (or its body iterator) returned an error.
    App(AppError),
    /// The application broke the protocol (e.g. a body on a 304).
    Protocol(ResponseError),
    /// Writing to the client failed: the client is gone.
    Disconnect(io::Error),
}

/// How the body of the current response is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Head not sent yet.
    Pending,
    /// 1xx/204/304: no body may be written.
    NoBody,
    /// Response to HEAD: body bytes are dropped.
    HeadOnly,
    /// Content-Length: this many bytes still to send.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Close-delimited (HTTP/1.0 with unknown length).
    Close,
    /// After a 101: raw bytes.
    Raw,
}

/// The Connection header the application gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppConnection {
    None,
    /// Contains the `close` option.
    Close,
    /// Something else (kept verbatim when compatible).
    Other,
}

/// Per-connection response state; reset for each request by [`Response::begin`].
pub(crate) struct Response {
    pub(crate) link: Shared,
    pub(crate) date: DateCache,
    version: Version,
    is_head: bool,
    keep_alive: bool,
    upgrade_allowed: bool,
    started: bool,
    code: u16,
    /// `HTTP/1.1 <status>\r\n` followed by the application's headers (but Connection), as sent
    /// (`headers[..headers_len]`); then, when `tail` says so, the rest of a plain head.
    headers: Vec<u8>,
    headers_len: usize,
    /// `Some((n, secs))`: `headers[headers_len..]` is the `Date` line of second `secs` and
    /// `Content-Length: n` and the blank line, i.e. `headers` is the whole head of a plain
    /// keep-alive HTTP/1.1 response with an `n`-byte buffered body: the next such response in
    /// the same second sends it as is. Reset when `start` commits new headers.
    tail: Option<(u64, u64)>,
    scratch: Vec<u8>,
    /// `status \0 name \0 value \0 ...` of the last successful `start` (when `key_valid`): the
    /// same arguments again (the usual case: an application answers with the same status and
    /// headers) reuse its validated, serialised result after a plain comparison.
    key: Vec<u8>,
    key_valid: bool,
    connection: Vec<u8>,
    app_connection: AppConnection,
    app_length: Option<u64>,
    app_date: bool,
    head_sent: bool,
    mode: Mode,
    /// Bytes of this response written to the connection (head included).
    pub(crate) bytes_sent: u64,
    /// The connection closes after this response.
    pub(crate) close: bool,
    /// The status code actually sent (0: none).
    pub(crate) sent_code: u16,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("code", &self.code)
            .field("started", &self.started)
            .field("head_sent", &self.head_sent)
            .field("mode", &self.mode)
            .field("bytes_sent", &self.bytes_sent)
            .field("close", &self.close)
            .finish()
    }
}

/// RFC 9110 reason phrases of the statuses the server itself sends.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn validate_name(name: &str) -> Result<(), ResponseError> {
    if !name.is_empty() && name.bytes().all(is_tchar) {
        return Ok(());
    }
    if name.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(ResponseError::Newline("header name"));
    }
    Err(ResponseError::InvalidHeaderName(name.to_owned()))
}

/// Whether every byte is printable ASCII (0x20..=0x7e), eight bytes at a time.
#[inline]
fn is_printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    #[inline]
    fn word_ok(chunk: &[u8]) -> bool {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // a byte below 0x20, or a byte above 0x7e (x + 1 per byte sets the high bit from 0x7f)
        let low = x.wrapping_sub(ONES * 0x20) & !x;
        let high = x.wrapping_add(ONES) | x;
        (low | high) & HIGH == 0
    }
    if bytes.len() < 8 {
        return bytes
            .iter()
            .fold(true, |ok, &b| ok & (b' '..0x7f).contains(&b));
    }
    let mut chunks = bytes.chunks_exact(8);
    if !chunks.all(word_ok) {
        return false;
    }
    // the tail, as the (overlapping) last eight bytes
    chunks.remainder().is_empty() || word_ok(&bytes[bytes.len() - 8..])
}

/// Checks that `text` can go on the wire as latin-1: no CR/LF (header injection), no other control
/// character but HTAB, no character above U+00FF.
#[inline]
fn validate_text(
    text: &str,
    newline: &'static str,
    invalid: impl Fn() -> ResponseError,
) -> Result<(), ResponseError> {
    // fast path: printable ASCII only
    if is_printable_ascii(text.as_bytes()) {
        return Ok(());
    }
    validate_text_slow(text, newline, invalid)
}

#[cold]
fn validate_text_slow(
    text: &str,
    newline: &'static str,
    invalid: impl Fn() -> ResponseError,
) -> Result<(), ResponseError> {
    if text.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(ResponseError::Newline(newline));
    }
    for ch in text.chars() {
        let code = u32::from(ch);
        if code > 0xff {
            return Err(ResponseError::NonLatin1(text.to_owned()));
        }
        if (code < 0x20 && ch != '\t') || (0x7f..0xa0).contains(&code) {
            return Err(invalid());
        }
    }
    Ok(())
}

/// Appends `text` (already validated) to `out` as latin-1.
fn push_latin1(out: &mut Vec<u8>, text: &str) {
    if text.is_ascii() {
        out.extend_from_slice(text.as_bytes());
    } else {
        out.extend(text.chars().map(|ch| u32::from(ch).min(0xff) as u8));
    }
}

/// Appends `Content-Length: <n>\r\n\r\n` (the last header line and the blank line).
#[inline]
fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.reserve(44);
    out.extend_from_slice(b"Content-Length: ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // byte-sized copies: no wide read of the narrow stores just made
    for &digit in &digits[i..] {
        out.push(digit);
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends `n` in lower-case hex; returns the number of digits.
fn push_hex(out: &mut Vec<u8>, mut n: usize) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    digits.len() - i
}

impl Response {
    /// [`Response::new`] on the heap, in a frame of its own (built once per connection: its
    /// temporaries stay off the caller's frame, see `handler::handle_connection`).
    #[inline(never)]
    pub(crate) fn boxed(link: Shared) -> Box<Response> {
        Box::new(Response::new(link))
    }

    pub(crate) fn new(link: Shared) -> Response {
        Response {
            link,
            date: DateCache::new(),
            version: Version::Http11,
            is_head: false,
            keep_alive: true,
            upgrade_allowed: false,
            started: false,
            code: 0,
            headers: Vec::new(),
            headers_len: 0,
            tail: None,
            scratch: Vec::new(),
            key: Vec::new(),
            key_valid: false,
            connection: Vec::new(),
            app_connection: AppConnection::None,
            app_length: None,
            app_date: false,
            head_sent: false,
            mode: Mode::Pending,
            bytes_sent: 0,
            close: false,
            sent_code: 0,
        }
    }

    /// Resets the state for a new request.
    pub(crate) fn begin(&mut self, head: &RequestHead, keep_alive: bool) {
        self.version = head.version;
        self.is_head = head.is_head;
        self.keep_alive = keep_alive;
        self.upgrade_allowed = head.upgrade && head.version == Version::Http11;
        // (status, headers and their flags stay: they are the `start` cache; `started` says
        // whether they belong to this request)
        self.started = false;
        self.head_sent = false;
        self.mode = Mode::Pending;
        self.bytes_sent = 0;
        self.close = !keep_alive;
        self.sent_code = 0;
        let mut link = self.link.borrow_mut();
        link.response_started = false;
        link.upgraded = false;
    }

    /// Resets for a canned response outside any request (no head was parsed).
    pub(crate) fn begin_reject(&mut self) {
        self.head_sent = false;
        self.bytes_sent = 0;
        self.sent_code = 0;
        self.close = true;
    }

    pub(crate) fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// `start_response(status, headers)`. Validates everything before changing any state, so a
    /// failed call leaves a previous successful one in force.
    pub(crate) fn start(
        &mut self,
        status: &str,
        headers: &[(&str, &str)],
    ) -> Result<(), ResponseError> {
        if self.head_sent {
            return Err(ResponseError::HeadersAlreadySent);
        }
        if self.key_valid && self.same_arguments(status, headers) {
            self.started = true;
            return Ok(());
        }
        let code = self.parse_status(status)?;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let size = headers
            .iter()
            .fold(status.len() + 11, |n, (k, v)| n + k.len() + v.len() + 4);
        buf.reserve(size);
        buf.extend_from_slice(b"HTTP/1.1 ");
        push_latin1(&mut buf, status);
        buf.extend_from_slice(b"\r\n");
        let mut connection = Vec::new();
        let mut app_connection = AppConnection::None;
        let mut app_length = None;
        let mut app_date = false;
        for &(name, value) in headers {
            let res = self.push_header(
                &mut buf,
                code,
                name,
                value,
                &mut connection,
                &mut app_connection,
                &mut app_length,
                &mut app_date,
            );
            if let Err(err) = res {
                self.scratch = buf;
                return Err(err);
            }
        }
        // commit
        self.scratch = std::mem::replace(&mut self.headers, buf);
        self.headers_len = self.headers.len();
        self.tail = None;
        // 1xx results depend on the request (101 needs an upgrade request): never cached
        self.key_valid = code >= 200;
        if self.key_valid {
            self.key.clear();
            self.key.extend_from_slice(status.as_bytes());
            self.key.push(0);
            for (name, value) in headers {
                self.key.extend_from_slice(name.as_bytes());
                self.key.push(0);
                self.key.extend_from_slice(value.as_bytes());
                self.key.push(0);
            }
        }
        self.code = code;
        self.connection = connection;
        self.app_connection = app_connection;
        self.app_length = app_length;
        self.app_date = app_date;
        self.started = true;
        Ok(())
    }

    /// Whether `status` and `headers` are exactly the arguments of the cached `start` (validated
    /// text never contains NUL, so NUL separates the parts unambiguously).
    fn same_arguments(&self, status: &str, headers: &[(&str, &str)]) -> bool {
        let key = self.key.as_slice();
        let mut pos = 0;
        let mut part = |text: &str| {
            let end = pos + text.len();
            let same = key
                .get(pos..end)
                .is_some_and(|cached| same_bytes(cached, text.as_bytes()))
                && key.get(end) == Some(&0);
            pos = end + 1;
            same
        };
        part(status)
            && headers
                .iter()
                .all(|&(name, value)| part(name) && part(value))
            && pos == key.len()
    }

    /// Validates one application header and appends it to `buf` (except Connection, kept aside).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn push_header(
        &self,
        buf: &mut Vec<u8>,
        code: u16,
        name: &str,
        value: &str,
        connection: &mut Vec<u8>,
        app_connection: &mut AppConnection,
        app_length: &mut Option<u64>,
        app_date: &mut bool,
    ) -> Result<(), ResponseError> {
        validate_name(name)?;
        validate_text(value, "header value", || {
            ResponseError::InvalidHeaderValue(name.to_owned())
        })?;
        let special = matches!(name.len(), 4 | 10 | 14 | 17);
        if special {
            if name.eq_ignore_ascii_case("content-length") {
                if app_length.is_some() {
                    return Err(ResponseError::InvalidContentLength(
                        "Content-Length given twice".to_owned(),
                    ));
                }
                let text = value.trim_matches([' ', '\t']);
                let n = (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| text.parse::<u64>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        ResponseError::InvalidContentLength(format!(
                            "invalid Content-Length: {value:?}"
                        ))
                    })?;
                if (code == 204 || code == 304) && n != 0 {
                    return Err(ResponseError::InvalidContentLength(format!(
                        "Invalid Content-Length for {code} response: '{value}' (must be absent or zero)"
                    )));
                }
                *app_length = Some(n);
                // RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in any
                // response with a status code of 1xx (Informational) or 204 (No Content)."
                if code == 204 || code < 200 {
                    return Ok(());
                }
            } else if name.eq_ignore_ascii_case("connection") {
                if value
                    .split(',')
                    .any(|t| t.trim_matches([' ', '\t']).eq_ignore_ascii_case("close"))
                {
                    *app_connection = AppConnection::Close;
                } else if *app_connection == AppConnection::None {
                    *app_connection = AppConnection::Other;
                }
                if !connection.is_empty() {
                    connection.extend_from_slice(b", ");
                }
                push_latin1(connection, value);
                return Ok(());
            } else if name.eq_ignore_ascii_case("date") {
                *app_date = true;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(ResponseError::ForbiddenHeader(name.to_owned()));
            }
        }
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b": ");
        push_latin1(buf, value);
        buf.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn parse_status(&self, status: &str) -> Result<u16, ResponseError> {
        // CR/LF first (gevent's message), then the reason phrase characters
        validate_text(status, "status", || {
            ResponseError::InvalidStatus(status.to_owned())
        })?;
        let bytes = status.as_bytes();
        let well_formed = bytes.len() >= 3
            && bytes[..3].iter().all(u8::is_ascii_digit)
            && (bytes.len() == 3 || bytes[3] == b' ');
        if !well_formed || bytes[0] == b'0' {
            return Err(ResponseError::InvalidStatus(status.to_owned()));
        }
        let code = u16::from(bytes[0] - b'0') * 100
            + u16::from(bytes[1] - b'0') * 10
            + u16::from(bytes[2] - b'0');
        if (100..200).contains(&code) && code != 101 {
            return Err(ResponseError::InvalidStatus(format!(
                "{status} (an informational status cannot be the final response)"
            )));
        }
        if code == 101 && !self.upgrade_allowed {
            return Err(ResponseError::InvalidStatus(format!(
                "{status} (only for an HTTP/1.1 request asking for an upgrade)"
            )));
        }
        Ok(code)
    }

    /// Serialises the head into the output buffer. `known_len`: the total body length, when the
    /// whole body is already known.
    fn send_head(&mut self, known_len: Option<u64>) {
        if let Some(n) = known_len {
            if self.send_cached_head(n) {
                return;
            }
        }
        let code = self.code;
        let mut length_header = None;
        let mut chunked = false;
        self.mode = if code == 101 {
            self.close = true;
            Mode::Raw
        } else if code < 200 || code == 204 || code == 304 {
            Mode::NoBody
        } else if let Some(n) = self.app_length {
            if self.is_head {
                Mode::HeadOnly
            } else {
                Mode::Length(n)
            }
        } else if let Some(n) = known_len {
            length_header = Some(n);
            if self.is_head {
                Mode::HeadOnly
            } else {
                Mode::Length(n)
            }
        } else if self.is_head {
            // unknown length: no framing header (RFC 9110 9.3.2 lets us omit what is only known
            // while generating the content)
            Mode::HeadOnly
        } else if self.version == Version::Http11 {
            chunked = true;
            Mode::Chunked
        } else {
            // RFC 9112 6.3 (8): the body ends when the connection closes.
            self.close = true;
            Mode::Close
        };
        if self.app_connection == AppConnection::Close {
            self.close = true;
        }
        let mut link = self.link.borrow_mut();
        // the server began stopping while this request ran: this is its last response
        if !self.close && link.stream.server_closing() {
            self.close = true;
        }
        let before = link.wbuf.len();
        let wbuf = &mut link.wbuf;
        let base = &self.headers[..self.headers_len];
        wbuf.reserve(base.len() + 96);
        wbuf.extend_from_slice(base);
        // (before the Date line is made: a tail keyed by an earlier second is only ever a miss)
        let secs = now_secs();
        if code == 101 {
            if !self.connection.is_empty() {
                wbuf.extend_from_slice(b"Connection: ");
                wbuf.extend_from_slice(&self.connection);
                wbuf.extend_from_slice(b"\r\n");
            }
        } else if self.close {
            if self.app_connection == AppConnection::Close {
                wbuf.extend_from_slice(b"Connection: ");
                wbuf.extend_from_slice(&self.connection);
                wbuf.extend_from_slice(b"\r\n");
            } else {
                wbuf.extend_from_slice(b"Connection: close\r\n");
            }
        } else if self.app_connection == AppConnection::Other {
            wbuf.extend_from_slice(b"Connection: ");
            wbuf.extend_from_slice(&self.connection);
            wbuf.extend_from_slice(b"\r\n");
        } else if self.version == Version::Http10 {
            wbuf.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        if !self.app_date {
            wbuf.extend_from_slice(self.date.http_date_line());
        }
        if let Some(n) = length_header {
            push_content_length(wbuf, n);
        } else if chunked {
            wbuf.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        } else {
            wbuf.extend_from_slice(b"\r\n");
        }
        let plain = self.mode == Mode::Length(length_header.unwrap_or(u64::MAX))
            && !self.close
            && self.version == Version::Http11
            && self.app_connection == AppConnection::None
            && !self.app_date;
        if let (true, Some(n)) = (plain, length_header) {
            // remember the whole head (see `tail`)
            self.headers.truncate(self.headers_len);
            let sent = &link.wbuf[before + self.headers_len..];
            self.headers.extend_from_slice(sent);
            self.tail = Some((n, secs));
        }
        self.bytes_sent += (link.wbuf.len() - before) as u64;
        link.response_started = true;
        if code == 101 {
            link.upgraded = true;
        }
        self.head_sent = true;
        self.sent_code = code;
    }

    /// Sends the remembered head (see `tail`) if this response is the same plain one in the same
    /// second; false if it must be built.
    #[inline]
    fn send_cached_head(&mut self, n: u64) -> bool {
        // status, application headers and their flags are those the tail was made with
        let Some((len, secs)) = self.tail else {
            return false;
        };
        if len != n || self.is_head || self.close || self.version != Version::Http11 {
            return false;
        }
        if now_secs() != secs {
            return false;
        }
        let mut link = self.link.borrow_mut();
        if link.stream.server_closing() {
            // the slow path makes this the last response
            return false;
        }
        link.wbuf.extend_from_slice(&self.headers);
        link.response_started = true;
        self.mode = Mode::Length(n);
        self.bytes_sent += self.headers.len() as u64;
        self.head_sent = true;
        self.sent_code = self.code;
        true
    }

    /// [`Response::send_cached_head`] and a small buffered body behind it under one borrow of the
    /// link; `Ok(false)` (nothing done) if the head must be built or the link is dead (the slow
    /// path then reports it).
    #[inline]
    fn send_cached_head_and_body(
        &mut self,
        n: u64,
        single: &[u8],
        list: &[Vec<u8>],
    ) -> Result<bool, Failure> {
        let Some((len, secs)) = self.tail else {
            return Ok(false);
        };
        if len != n || self.is_head || self.close || self.version != Version::Http11 {
            return Ok(false);
        }
        if now_secs() != secs {
            return Ok(false);
        }
        let mut link = self.link.borrow_mut();
        if link.stream.server_closing() || link.dead {
            return Ok(false);
        }
        link.wbuf.extend_from_slice(&self.headers);
        link.response_started = true;
        if !single.is_empty() {
            link.wbuf.extend_from_slice(single);
        }
        for part in list {
            link.wbuf.extend_from_slice(part);
        }
        self.mode = Mode::Length(0);
        self.bytes_sent += self.headers.len() as u64 + n;
        self.head_sent = true;
        self.sent_code = self.code;
        if link.wbuf.len() >= WBUF_FLUSH_AT {
            link.flush().map_err(Failure::Disconnect)?;
        }
        Ok(true)
    }

    /// Writes body bytes in the current framing (sending the head first if needed).
    /// `flush`: write them out now (streaming) rather than batching.
    pub(crate) fn write_data(&mut self, data: &[u8], flush: bool) -> Result<(), Failure> {
        if !self.started {
            return Err(Failure::Protocol(ResponseError::NotStarted));
        }
        if !self.head_sent {
            if !data.is_empty() && (self.code == 204 || self.code == 304) {
                return Err(Failure::Protocol(ResponseError::NoBodyAllowed(self.code)));
            }
            self.send_head(None);
        }
        let mut link = self.link.borrow_mut();
        if link.dead {
            return Err(Failure::Disconnect(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client connection is closed",
            )));
        }
        let (res, added) = match self.mode {
            Mode::Pending | Mode::HeadOnly => (Ok(()), 0),
            Mode::NoBody => {
                if !data.is_empty() {
                    return Err(Failure::Protocol(ResponseError::NoBodyAllowed(self.code)));
                }
                (Ok(()), 0)
            }
            Mode::Length(remaining) => {
                let take = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
                self.mode = Mode::Length(remaining - take as u64);
                let res = link.write_through(&data[..take]);
                if take < data.len() {
                    // never send more than declared: that would desynchronise the connection
                    self.close = true;
                    self.bytes_sent += take as u64;
                    let declared = self.app_length.unwrap_or(0);
                    return Err(Failure::Protocol(ResponseError::LengthMismatch {
                        declared,
                        actual: declared - remaining + data.len() as u64,
                    }));
                }
                (res, take)
            }
            Mode::Chunked => {
                if data.is_empty() {
                    (Ok(()), 0)
                } else {
                    let digits = push_hex(&mut link.wbuf, data.len());
                    link.wbuf.extend_from_slice(b"\r\n");
                    let res = link.write_through(data);
                    link.wbuf.extend_from_slice(b"\r\n");
                    (res, digits + 4 + data.len())
                }
            }
            Mode::Close | Mode::Raw => (link.write_through(data), data.len()),
        };
        self.bytes_sent += added as u64;
        let res = res.and_then(|()| {
            if flush || link.wbuf.len() >= WBUF_FLUSH_AT {
                link.flush()
            } else {
                Ok(())
            }
        });
        res.map_err(Failure::Disconnect)
    }

    /// Ends the body: the chunked terminator, or a check that a Content-Length was honoured.
    pub(crate) fn finish(&mut self) -> Result<(), Failure> {
        match self.mode {
            Mode::Chunked => {
                let mut link = self.link.borrow_mut();
                if !link.dead {
                    link.wbuf.extend_from_slice(b"0\r\n\r\n");
                    self.bytes_sent += 5;
                }
                Ok(())
            }
            Mode::Length(remaining) if remaining > 0 => {
                self.close = true;
                let declared = self.app_length.unwrap_or(0);
                Err(Failure::Protocol(ResponseError::LengthMismatch {
                    declared,
                    actual: declared - remaining,
                }))
            }
            _ => Ok(()),
        }
    }

    /// Sends the application's returned body (gevent: `process_result`), then ends it.
    pub(crate) fn send_body(&mut self, body: Body) -> Result<(), Failure> {
        if !self.started {
            return Err(Failure::Protocol(ResponseError::NotStarted));
        }
        let (kind, _close_guard) = body.into_parts();
        let kind = match kind {
            BodyKind::Stream(iter) => {
                if self.is_head {
                    // a HEAD response never has a body: do not even run the iterator
                    if !self.head_sent {
                        self.send_head(None);
                    }
                    drop(iter);
                    return Ok(());
                }
                for item in iter {
                    let chunk = item.map_err(Failure::App)?;
                    if chunk.is_empty() {
                        continue;
                    }
                    self.write_data(&chunk, true)?;
                }
                if !self.head_sent {
                    // an empty stream: the length is known after all
                    self.send_head(Some(0));
                }
                return self.finish();
            }
            buffered => buffered,
        };
        let (single, list): (&[u8], &[Vec<u8>]) = match &kind {
            BodyKind::Stream(_) | BodyKind::Empty => (&[], &[]),
            BodyKind::Static(bytes) => (bytes, &[]),
            BodyKind::Bytes(bytes) => (bytes, &[]),
            BodyKind::List(list) => (&[], list),
        };
        let listed = match list {
            // (the usual one-item list without the summing loop's set-up)
            [] => 0,
            [part] => part.len() as u64,
            _ => list.iter().map(|part| part.len() as u64).sum::<u64>(),
        };
        let total = single.len() as u64 + listed;
        if !self.head_sent {
            if total > 0 && (self.code == 204 || self.code == 304) {
                return Err(Failure::Protocol(ResponseError::NoBodyAllowed(self.code)));
            }
            if let Some(declared) = self.app_length {
                let checked = self.code >= 200 && self.code != 204 && self.code != 304;
                if checked && !self.is_head && declared != total {
                    return Err(Failure::Protocol(ResponseError::LengthMismatch {
                        declared,
                        actual: total,
                    }));
                }
            }
            if total < 4096 && self.send_cached_head_and_body(total, single, list)? {
                return Ok(());
            }
            self.send_head(Some(total));
            // fast path: a small buffered body right behind its head, in the same buffer
            if self.mode == Mode::Length(total) && total < 4096 {
                let mut link = self.link.borrow_mut();
                if !link.dead {
                    if !single.is_empty() {
                        link.wbuf.extend_from_slice(single);
                    }
                    for part in list {
                        link.wbuf.extend_from_slice(part);
                    }
                    self.bytes_sent += total;
                    self.mode = Mode::Length(0);
                    if link.wbuf.len() >= WBUF_FLUSH_AT {
                        link.flush().map_err(Failure::Disconnect)?;
                    }
                    return Ok(());
                }
            }
        }
        if !single.is_empty() {
            self.write_data(single, false)?;
        }
        for part in list {
            if !part.is_empty() {
                self.write_data(part, false)?;
            }
        }
        self.finish()
    }

    /// Queues a canned error response (`Connection: close`, empty body).
    pub(crate) fn send_error(&mut self, code: u16) {
        let mut link = self.link.borrow_mut();
        if link.dead {
            return;
        }
        let before = link.wbuf.len();
        let wbuf = &mut link.wbuf;
        wbuf.extend_from_slice(b"HTTP/1.1 ");
        wbuf.extend_from_slice(&[
            b'0' + (code / 100 % 10) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        wbuf.extend_from_slice(reason(code).as_bytes());
        wbuf.extend_from_slice(b"\r\nConnection: close\r\nContent-Length: 0\r\n");
        wbuf.extend_from_slice(self.date.http_date_line());
        wbuf.extend_from_slice(b"\r\n");
        self.bytes_sent += (link.wbuf.len() - before) as u64;
        link.response_started = true;
        self.head_sent = true;
        self.sent_code = code;
        self.close = true;
    }

    /// Queues gevent's `500 Internal Server Error` (text/plain, body `Internal Server Error`).
    pub(crate) fn send_internal_error(&mut self) {
        const BODY: &[u8] = b"Internal Server Error";
        let mut link = self.link.borrow_mut();
        if link.dead {
            return;
        }
        let before = link.wbuf.len();
        let wbuf = &mut link.wbuf;
        wbuf.extend_from_slice(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 21\r\n",
        );
        wbuf.extend_from_slice(self.date.http_date_line());
        wbuf.extend_from_slice(b"\r\n");
        if !self.is_head {
            wbuf.extend_from_slice(BODY);
        }
        self.bytes_sent += (link.wbuf.len() - before) as u64;
        link.response_started = true;
        self.head_sent = true;
        self.sent_code = 500;
        self.close = true;
    }

    /// Flushes the output buffer.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.link.borrow_mut().flush()
    }
}

/// The `start_response` callable handed to the application.
///
/// ```
/// # use may_gevent::pywsgi::{AppResult, Environ, StartResponse};
/// fn app(_env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
///     let mut write = start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
///     write.write(b"written at once; ")?; // gevent's write() callable
///     Ok("then the returned body".into())
/// }
/// # let _ = app;
/// ```
///
/// - [`StartResponse::call`] may be called again to replace the status and headers as long as the
///   head has not been sent (gevent's `exc_info` rule); afterwards it fails with
///   [`ResponseError::HeadersAlreadySent`].
/// - A CR or LF in the status, a header name or a header value is an error (no header injection);
///   so are other control characters and characters above U+00FF (headers are latin-1).
/// - The status must start with a 3-digit code (`"200"` alone is fine). 1xx statuses other than
///   `101` are refused; `101` only for an HTTP/1.1 request that asked for an upgrade.
/// - `Transfer-Encoding` is the server's business and refused. A Content-Length other than 0 on a
///   204 or 304 is refused with gevent's message.
///
/// gevent: `WSGIHandler.start_response`.
pub struct StartResponse<'a> {
    resp: &'a mut Response,
}

impl fmt::Debug for StartResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartResponse")
            .field(
                "status",
                &if self.resp.started { self.resp.code } else { 0 },
            )
            .field("headers_sent", &self.resp.head_sent)
            .finish()
    }
}

impl<'a> StartResponse<'a> {
    pub(crate) fn new(resp: &'a mut Response) -> StartResponse<'a> {
        StartResponse { resp }
    }

    /// Sets the response status and headers, and returns the `write` callable.
    ///
    /// # Errors
    ///
    /// A [`ResponseError`] for an invalid status or header, or when the head was already sent; a
    /// failed call changes nothing.
    pub fn call(
        &mut self,
        status: &str,
        headers: &[(&str, &str)],
    ) -> Result<Writer<'_>, ResponseError> {
        self.resp.start(status, headers)?;
        Ok(Writer {
            resp: &mut *self.resp,
        })
    }

    /// The `write` callable again (after a successful [`StartResponse::call`]).
    ///
    /// # Errors
    ///
    /// [`ResponseError::NotStarted`] before `call`.
    pub fn writer(&mut self) -> Result<Writer<'_>, ResponseError> {
        if !self.resp.started {
            return Err(ResponseError::NotStarted);
        }
        Ok(Writer {
            resp: &mut *self.resp,
        })
    }

    /// Whether the response head has been sent (then `call` can no longer change it).
    pub fn headers_sent(&self) -> bool {
        self.resp.head_sent
    }

    /// The status code set by the last successful `call` (0 before).
    pub fn status_code(&self) -> u16 {
        if self.resp.started {
            self.resp.code
        } else {
            0
        }
    }
}

/// The `write` callable returned by [`StartResponse::call`] (PEP 3333 "the write() callable").
///
/// The first write sends the head (a `write(b"")` sends only the head); each write goes out
/// immediately. Without an application Content-Length, a response using `write` is chunked on
/// HTTP/1.1 and close-delimited on HTTP/1.0. After a `101`, bytes are written raw.
pub struct Writer<'a> {
    resp: &'a mut Response,
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("headers_sent", &self.resp.head_sent)
            .finish()
    }
}

impl Writer<'_> {
    /// Writes `data` to the client now (all of it or an error).
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` wrapping a [`ResponseError`] for a body on a 204/304 response or
    /// more bytes than the declared Content-Length; the I/O error when the client is gone.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.resp
            .write_data(data, true)
            .map_err(|failure| match failure {
                Failure::Protocol(err) => err.into(),
                Failure::Disconnect(err) => err,
                Failure::App(err) => io::Error::other(err),
            })
    }
}

impl io::Write for Writer<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        Writer::write(self, data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.resp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::super::head::{self, Limits};
    use super::super::input::tests::mem_link;
    use super::*;

    fn limits() -> Limits {
        Limits::new(8192, 65536, None)
    }

    fn response_for(
        request: &[u8],
    ) -> (
        Response,
        std::sync::Arc<std::sync::Mutex<super::super::input::tests::MemState>>,
    ) {
        let mut rh = RequestHead::default();
        head::parse(request, &mut rh, &limits()).unwrap().unwrap();
        let (link, state) = mem_link(b"", 1);
        let mut resp = Response::new(link);
        resp.begin(&rh, rh.keep_alive);
        (resp, state)
    }

    fn wire(
        resp: &mut Response,
        state: &std::sync::Arc<std::sync::Mutex<super::super::input::tests::MemState>>,
    ) -> String {
        resp.flush().unwrap();
        let out = std::mem::take(&mut state.lock().unwrap().output);
        let text = String::from_utf8(out).unwrap();
        // blank out the date
        let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
        for line in &mut lines {
            if line.starts_with("Date: ") {
                *line = "Date: X".to_owned();
            }
        }
        lines.join("\r\n")
    }

    const GET11: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    const GET10: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
    const GET10KA: &[u8] = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    const HEAD11: &[u8] = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";

    #[test]
    fn buffered_body_gets_content_length() {
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[("Content-Type", "text/plain")])
            .unwrap();
        resp.send_body(vec![b"hello ".to_vec(), b"world".to_vec()].into())
            .ok()
            .unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 11\r\n\r\nhello world"
        );
        assert!(!resp.close);
        assert_eq!(resp.bytes_sent, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sat, 21 Nov 2026 15:00:31 GMT\r\nContent-Length: 11\r\n\r\nhello world".len() as u64);
    }

    #[test]
    fn remembered_head_is_reused_only_when_it_applies() {
        let (mut resp, st) = response_for(GET11);
        let headers = [("Content-Type", "text/plain")];
        let send = |resp: &mut Response, request: &[u8], body: &'static str| {
            let mut rh = RequestHead::default();
            head::parse(request, &mut rh, &limits()).unwrap().unwrap();
            resp.begin(&rh, rh.keep_alive);
            resp.start("200 OK", &headers).unwrap();
            resp.send_body(Body::from(body)).ok().unwrap();
        };
        let plain =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 2\r\n\r\nhi";
        send(&mut resp, GET11, "hi");
        assert_eq!(wire(&mut resp, &st), plain);
        assert!(resp.tail.is_some());
        // the same response again: the remembered head
        send(&mut resp, GET11, "hi");
        assert_eq!(wire(&mut resp, &st), plain);
        assert_eq!(resp.bytes_sent, (plain.len() + 28) as u64);
        // another length, HEAD, HTTP/1.0, other headers: built again
        send(&mut resp, GET11, "hey");
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
        );
        send(&mut resp, HEAD11, "hey");
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 3\r\n\r\n"
        );
        send(&mut resp, GET10KA, "hey");
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
        );
        send(&mut resp, GET10, "hey");
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
        );
        resp.begin(&RequestHead::default(), true);
        resp.start("404 Not Found", &headers).unwrap();
        assert!(resp.tail.is_none());
        resp.send_body(Body::from("hey")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
        );
        // a head remembered in an earlier second is built again
        resp.tail = resp.tail.map(|(n, secs)| (n, secs - 1));
        let now = now_secs();
        resp.begin(&RequestHead::default(), true);
        resp.start("404 Not Found", &headers).unwrap();
        resp.send_body(Body::from("hey")).ok().unwrap();
        assert!(resp.tail.is_some_and(|(n, secs)| n == 3 && secs >= now));
        wire(&mut resp, &st);
    }

    #[test]
    fn http10_connection_headers() {
        let (mut resp, st) = response_for(GET10);
        resp.start("200 OK", &[]).unwrap();
        resp.send_body(Body::from("hi")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert!(resp.close);
        let (mut resp, st) = response_for(GET10KA);
        resp.start("200 OK", &[]).unwrap();
        resp.send_body(Body::from("hi")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nDate: X\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert!(!resp.close);
        // streamed on 1.0: close-delimited, even if keep-alive was asked
        let (mut resp, st) = response_for(GET10KA);
        resp.start("200 OK", &[]).unwrap();
        resp.send_body(Body::stream(vec![b"a".to_vec(), b"b".to_vec()]))
            .ok()
            .unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\n\r\nab"
        );
        assert!(resp.close);
    }

    #[test]
    fn streamed_body_is_chunked() {
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[]).unwrap();
        resp.send_body(Body::stream(vec![
            b"this".to_vec(),
            Vec::new(),
            b"is".to_vec(),
            b"chunked".to_vec(),
        ]))
        .ok()
        .unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nthis\r\n2\r\nis\r\n7\r\nchunked\r\n0\r\n\r\n"
        );
        // an empty stream has a known length after all
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[]).unwrap();
        resp.send_body(Body::stream(vec![Vec::new(), Vec::new()]))
            .ok()
            .unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn head_responses_never_carry_a_body() {
        let (mut resp, st) = response_for(HEAD11);
        resp.start("200 OK", &[]).unwrap();
        resp.send_body(Body::from("hello")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Length: 5\r\n\r\n"
        );
        let (mut resp, st) = response_for(HEAD11);
        resp.start("200 OK", &[("Content-Length", "100")]).unwrap();
        resp.send_body(Body::empty()).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nDate: X\r\n\r\n"
        );
        let (mut resp, st) = response_for(HEAD11);
        resp.start("200 OK", &[]).unwrap();
        let ran = std::rc::Rc::new(std::cell::Cell::new(false));
        let ran2 = ran.clone();
        resp.send_body(Body::stream(std::iter::from_fn(move || {
            ran2.set(true);
            None::<Vec<u8>>
        })))
        .ok()
        .unwrap();
        assert_eq!(wire(&mut resp, &st), "HTTP/1.1 200 OK\r\nDate: X\r\n\r\n");
        assert!(!ran.get(), "the iterator of a HEAD response is not run");
        assert!(!resp.close);
    }

    #[test]
    fn no_body_statuses() {
        for status in ["204 No Content", "304 Not Modified"] {
            let (mut resp, st) = response_for(GET11);
            resp.start(status, &[]).unwrap();
            resp.send_body(Body::stream(vec![Vec::new(), Vec::new()]))
                .ok()
                .unwrap();
            assert_eq!(
                wire(&mut resp, &st),
                format!("HTTP/1.1 {status}\r\nDate: X\r\n\r\n")
            );
            let (mut resp, _) = response_for(GET11);
            resp.start(status, &[]).unwrap();
            let err = resp.send_body(Body::from("body")).err().unwrap();
            let code = &status[..3];
            assert!(
                matches!(err, Failure::Protocol(ref e) if e.to_string() == format!("The {code} response must have no body"))
            );
            let (mut resp, _) = response_for(GET11);
            let err = resp
                .start(status, &[("Content-Length", "100")])
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "Invalid Content-Length for {code} response: '100' (must be absent or zero)"
                )
            );
        }
        // 204 + Content-Length: 0 -> header dropped; 304 + Content-Length: 0 -> kept
        let (mut resp, st) = response_for(GET11);
        resp.start("204 No Content", &[("Content-Length", "0")])
            .unwrap();
        resp.send_body(Body::empty()).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 204 No Content\r\nDate: X\r\n\r\n"
        );
        let (mut resp, st) = response_for(GET11);
        resp.start("304 Not Modified", &[("Content-Length", "0")])
            .unwrap();
        resp.send_body(Body::empty()).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\nDate: X\r\n\r\n"
        );
    }

    #[test]
    fn header_injection_is_refused() {
        let (mut resp, _) = response_for(GET11);
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case<'_>; 3] = [
            (
                "200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                &[],
                "carriage return or newline in status",
            ),
            (
                "200 OK",
                &[("Test", "Hi\r\nConnection: close")],
                "carriage return or newline in header value",
            ),
            (
                "200 OK",
                &[("Test\r\n", "Hi")],
                "carriage return or newline in header name",
            ),
        ];
        for (status, headers, message) in cases {
            assert_eq!(
                resp.start(status, headers).unwrap_err().to_string(),
                message
            );
        }
        assert!(matches!(
            resp.start("200 OK", &[("X", "a\0b")]),
            Err(ResponseError::InvalidHeaderValue(_))
        ));
        assert!(matches!(
            resp.start("200 OK", &[("X Y", "a")]),
            Err(ResponseError::InvalidHeaderName(_))
        ));
        assert!(matches!(
            resp.start("200 OK", &[("", "a")]),
            Err(ResponseError::InvalidHeaderName(_))
        ));
        assert!(matches!(
            resp.start("200 OK", &[("X", "\u{1f4a3}")]),
            Err(ResponseError::NonLatin1(_))
        ));
        assert!(matches!(
            resp.start("200 OK", &[("Transfer-Encoding", "chunked")]),
            Err(ResponseError::ForbiddenHeader(_))
        ));
        assert!(matches!(
            resp.start("200 OK", &[("Content-Length", "abc")]),
            Err(ResponseError::InvalidContentLength(_))
        ));
        assert!(matches!(
            resp.start(
                "200 OK",
                &[("Content-Length", "1"), ("content-length", "1")]
            ),
            Err(ResponseError::InvalidContentLength(_))
        ));
        for bad in [
            "abc",
            "20",
            "2000 OK",
            "200OK",
            "099 X",
            "100 Continue",
            "101 Switching Protocols",
            "200 O\u{1}K",
        ] {
            assert!(
                matches!(resp.start(bad, &[]), Err(ResponseError::InvalidStatus(_))),
                "{bad}"
            );
        }
        assert!(!resp.started, "failed calls change nothing");
    }

    #[test]
    fn status_alone_and_latin1() {
        let (mut resp, st) = response_for(GET11);
        resp.start("200", &[("X-Name", "caf\u{e9}")]).unwrap();
        resp.send_body(Body::empty()).ok().unwrap();
        let out = {
            resp.flush().unwrap();
            std::mem::take(&mut st.lock().unwrap().output)
        };
        assert!(out.starts_with(b"HTTP/1.1 200\r\nX-Name: caf\xe9\r\n"));
    }

    #[test]
    fn start_response_replaces_until_sent() {
        let (mut resp, st) = response_for(GET11);
        resp.start("500 Oops", &[("X-A", "1")]).unwrap();
        resp.start("200 OK", &[("X-B", "2")]).unwrap();
        resp.write_data(b"", true).ok().unwrap();
        assert_eq!(
            resp.start("404 Not Found", &[]).unwrap_err(),
            ResponseError::HeadersAlreadySent
        );
        resp.send_body(Body::from("x")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nX-B: 2\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
        );
    }

    #[test]
    fn write_with_declared_length() {
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[("Content-Length", "8")]).unwrap();
        resp.write_data(b"abcde", true).ok().unwrap();
        resp.send_body(Body::from("end")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nDate: X\r\n\r\nabcdeend"
        );
        assert!(!resp.close);
        // too long: truncated and closed
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[("Content-Length", "3")]).unwrap();
        assert!(resp.write_data(b"abcde", true).is_err());
        assert!(resp.close);
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDate: X\r\n\r\nabc"
        );
        // too short: closed
        let (mut resp, _) = response_for(GET11);
        resp.start("200 OK", &[("Content-Length", "10")]).unwrap();
        resp.write_data(b"abc", true).ok().unwrap();
        assert!(resp.send_body(Body::empty()).is_err());
        assert!(resp.close);
        // a buffered body that contradicts its Content-Length is refused before anything is sent
        let (mut resp, _) = response_for(GET11);
        resp.start("200 OK", &[("Content-Length", "10")]).unwrap();
        assert!(resp.send_body(Body::from("abc")).is_err());
        assert!(!resp.head_sent());
    }

    #[test]
    fn connection_header_rules() {
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[("Connection", "close")]).unwrap();
        resp.send_body(Body::from("x")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\nContent-Length: 1\r\n\r\nx"
        );
        assert!(resp.close);
        let (mut resp, st) =
            response_for(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        resp.start("200 OK", &[("Connection", "keep-alive")])
            .unwrap();
        resp.send_body(Body::from("x")).ok().unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\nContent-Length: 1\r\n\r\nx"
        );
        assert!(resp.close);
    }

    #[test]
    fn upgrade() {
        let (mut resp, _) = response_for(GET11);
        assert!(resp.start("101 Switching Protocols", &[]).is_err());
        let (mut resp, st) = response_for(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        resp.start(
            "101 Switching Protocols",
            &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
        .unwrap();
        resp.write_data(b"", true).ok().unwrap();
        resp.send_body(vec![b"upgrading to".to_vec(), b"websocket".to_vec()].into())
            .ok()
            .unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nDate: X\r\n\r\nupgrading towebsocket"
        );
        assert!(resp.close);
        assert!(resp.link.borrow().upgraded);
    }

    #[test]
    fn start_response_cache() {
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[("Content-Type", "text/plain")])
            .unwrap();
        resp.send_body(Body::from("a")).ok().unwrap();
        let first = wire(&mut resp, &st);
        // same arguments: served from the cache, same bytes
        let mut rh = RequestHead::default();
        head::parse(GET11, &mut rh, &limits()).unwrap().unwrap();
        resp.begin(&rh, true);
        assert!(resp.key_valid);
        resp.start("200 OK", &[("Content-Type", "text/plain")])
            .unwrap();
        resp.send_body(Body::from("a")).ok().unwrap();
        assert_eq!(wire(&mut resp, &st), first);
        // any difference misses the cache (and errors are still reported)
        for (status, headers) in [
            ("200 OK", &[("Content-Type", "text/plai")][..]),
            ("200 OK", &[("Content-Type", "text/plain"), ("X", "y")][..]),
            ("200 OK", &[][..]),
            ("201 OK", &[("Content-Type", "text/plain")][..]),
            ("200 OK\0", &[("Content-Type", "text/plain")][..]),
        ] {
            resp.begin(&rh, true);
            let res = resp.start(status, headers);
            assert_eq!(
                res.is_ok(),
                !status.contains('\0'),
                "{status:?} {headers:?}"
            );
        }
        resp.begin(&rh, true);
        assert!(resp.start("200 OK", &[("X", "a\rb")]).is_err());
        resp.start("200 OK", &[("Content-Length", "1")]).unwrap();
        resp.begin(&rh, true);
        resp.start("200 OK", &[("Content-Length", "1")]).unwrap();
        assert_eq!(resp.app_length, Some(1));
        assert!(
            resp.send_body(Body::from("ab")).is_err(),
            "the cached Content-Length is enforced"
        );
    }

    #[test]
    fn printable_ascii_check() {
        assert!(is_printable_ascii(b""));
        assert!(is_printable_ascii(b" ~ ~ ~ ~ ~ ~ ~ ~ ~"));
        for bad in [0x00u8, 0x09, 0x0a, 0x0d, 0x1f, 0x7f, 0x80, 0xc3, 0xff] {
            for pos in 0..17 {
                let mut text = vec![b'a'; 17];
                text[pos] = bad;
                assert!(!is_printable_ascii(&text), "{bad:#x} at {pos}");
            }
        }
        let all: Vec<u8> = (0x20..0x7f).collect();
        assert!(is_printable_ascii(&all));
    }

    #[test]
    fn content_length_lines() {
        for n in [0u64, 7, 13, 100, 300_005, u64::MAX] {
            let mut line = b"x".to_vec();
            push_content_length(&mut line, n);
            assert_eq!(line, format!("xContent-Length: {n}\r\n\r\n").as_bytes());
        }
    }

    #[test]
    fn canned_responses() {
        let (mut resp, st) = response_for(GET11);
        resp.send_error(414);
        assert_eq!(wire(&mut resp, &st), "HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Length: 0\r\nDate: X\r\n\r\n");
        let (mut resp, st) = response_for(GET11);
        resp.send_internal_error();
        assert_eq!(
            wire(&mut resp, &st),
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 21\r\nDate: X\r\n\r\nInternal Server Error"
        );
        let (mut resp, st) = response_for(HEAD11);
        resp.send_internal_error();
        assert!(wire(&mut resp, &st).ends_with("Content-Length: 21\r\nDate: X\r\n\r\n"));
    }

    #[test]
    fn large_chunks_are_written_through() {
        let (mut resp, st) = response_for(GET11);
        resp.start("200 OK", &[]).unwrap();
        let big = vec![b'a'; 8192];
        resp.send_body(Body::stream(vec![big.clone(), big.clone(), big.clone()]))
            .ok()
            .unwrap();
        let text = wire(&mut resp, &st);
        let body_start = text.find("\r\n\r\n").unwrap() + 4;
        let expected: String = (0..3)
            .map(|_| format!("2000\r\n{}\r\n", "a".repeat(8192)))
            .collect::<String>()
            + "0\r\n\r\n";
        assert_eq!(&text[body_start..], expected);
        assert_eq!(
            resp.bytes_sent as usize,
            text.len() - "Date: X".len() + "Date: Sat, 21 Nov 2026 15:00:31 GMT".len()
        );
    }
}
