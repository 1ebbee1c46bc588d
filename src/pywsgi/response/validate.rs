//! Validation of the arguments of `start_response`: the status, the header names and values
//! (no header injection, latin-1 only, RFC 9110 tokens), the headers only the server may set,
//! and what the application's Content-Length, Connection and Date headers mean for the server.

use std::fmt;
use std::io;

use super::super::syntax::{is_tchar, same_bytes};

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

/// The Connection header the application gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum AppConnection {
    #[default]
    None,
    /// Contains the `close` option.
    Close,
    /// Something else (kept verbatim when compatible).
    Other,
}

/// What the application's headers say that the server acts on.
#[derive(Debug, Default)]
pub(super) struct AppHeaders {
    /// The value(s) of the Connection header (sent by the server, not with the other headers).
    pub(super) connection_value: Vec<u8>,
    pub(super) connection: AppConnection,
    /// The declared Content-Length.
    pub(super) length: Option<u64>,
    /// Whether there is a Date header (the server then sends none).
    pub(super) date: bool,
}

impl AppHeaders {
    /// Validates one application header and appends it to `buf`, except Connection, kept aside
    /// (and a Content-Length a 1xx or 204 response must not have); notes what the server acts on.
    #[inline]
    fn push(
        &mut self,
        buf: &mut Vec<u8>,
        code: u16,
        name: &str,
        value: &str,
    ) -> Result<(), ResponseError> {
        validate_name(name)?;
        validate_text(value, "header value", || {
            ResponseError::InvalidHeaderValue(name.to_owned())
        })?;
        let special = matches!(name.len(), 4 | 10 | 14 | 17);
        if special {
            if name.eq_ignore_ascii_case("content-length") {
                if self.length.is_some() {
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
                self.length = Some(n);
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
                    self.connection = AppConnection::Close;
                } else if self.connection == AppConnection::None {
                    self.connection = AppConnection::Other;
                }
                if !self.connection_value.is_empty() {
                    self.connection_value.extend_from_slice(b", ");
                }
                push_latin1(&mut self.connection_value, value);
                return Ok(());
            } else if name.eq_ignore_ascii_case("date") {
                self.date = true;
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
}

/// The validated, serialised result of the last successful `start_response` of a connection. The
/// same arguments again (the usual case: an application answers with the same status and
/// headers) reuse it after a plain comparison.
#[derive(Debug, Default)]
pub(super) struct Validated {
    /// The status code.
    pub(super) code: u16,
    /// `HTTP/1.1 <status>\r\n` followed by the application's headers (but Connection), as sent.
    pub(super) head: Vec<u8>,
    pub(super) app: AppHeaders,
    /// `status \0 name \0 value \0 ...` of the arguments (when `key_valid`).
    key: Vec<u8>,
    key_valid: bool,
    /// The buffer of an earlier head, reused for the next one.
    scratch: Vec<u8>,
}

impl Validated {
    /// Validates the arguments of `start_response` (`upgrade_allowed`: a `101` may answer this
    /// request) and keeps their result. `Ok(true)`: a new result; `Ok(false)`: the same arguments
    /// as last time, whose result stays. Everything is checked before anything changes, so a
    /// failed call leaves the previous result in force.
    pub(super) fn validate(
        &mut self,
        status: &str,
        headers: &[(&str, &str)],
        upgrade_allowed: bool,
    ) -> Result<bool, ResponseError> {
        if self.key_valid && self.same_arguments(status, headers) {
            return Ok(false);
        }
        let code = parse_status(status, upgrade_allowed)?;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let size = headers
            .iter()
            .fold(status.len() + 11, |n, (k, v)| n + k.len() + v.len() + 4);
        buf.reserve(size);
        buf.extend_from_slice(b"HTTP/1.1 ");
        push_latin1(&mut buf, status);
        buf.extend_from_slice(b"\r\n");
        let mut app = AppHeaders::default();
        for &(name, value) in headers {
            if let Err(err) = app.push(&mut buf, code, name, value) {
                self.scratch = buf;
                return Err(err);
            }
        }
        // commit
        self.scratch = std::mem::replace(&mut self.head, buf);
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
        self.app = app;
        Ok(true)
    }

    /// Whether `status` and `headers` are exactly the arguments of the cached result (validated
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

    #[cfg(test)]
    pub(super) fn key_valid(&self) -> bool {
        self.key_valid
    }
}

/// The status code of a valid `status`; `upgrade_allowed`: a `101` may answer this request.
fn parse_status(status: &str, upgrade_allowed: bool) -> Result<u16, ResponseError> {
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
    if code == 101 && !upgrade_allowed {
        return Err(ResponseError::InvalidStatus(format!(
            "{status} (only for an HTTP/1.1 request asking for an upgrade)"
        )));
    }
    Ok(code)
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
pub(super) fn is_printable_ascii(bytes: &[u8]) -> bool {
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
