//! The HTTP client's error: what went wrong, with the URL or address it concerned.

use std::fmt;
use std::io;

use crate::error::BoxError;

/// Why a request failed. Bad bytes from an upstream are always one of these, never a panic.
///
/// `Display` names what failed and where; the cause (an `io::Error`, a TLS error) comes from
/// [`source()`](std::error::Error::source); `Debug` prints the whole chain on one line.
#[non_exhaustive]
pub enum Error {
    /// The URL could not be used (no `http://` or `https://`, no host, a bad port).
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A request header or method with bytes that cannot go on the wire (CR, LF, ...).
    InvalidRequest(String),
    /// `https://` without the `tls` feature.
    UnsupportedScheme(String),
    /// Name resolution or the TCP connect failed or timed out.
    Connect {
        /// `host:port`.
        target: String,
        /// The resolver's or the socket's error.
        source: io::Error,
    },
    /// The TLS handshake failed.
    Tls {
        /// `host:port`.
        target: String,
        /// native-tls's error.
        source: BoxError,
    },
    /// Sending the request or reading the response failed (a timeout, a reset).
    Io {
        /// What was being done, and where.
        context: String,
        /// The socket's error.
        source: io::Error,
    },
    /// The upstream's bytes are not a valid HTTP/1.x response: a bad status line or header, bad
    /// chunked framing, a bad or conflicting Content-Length, a close before the end.
    InvalidResponse {
        /// Where, e.g. `GET http://host/path`.
        context: String,
        /// What was wrong.
        reason: String,
    },
    /// The response head is larger than the client's `max_header_size`.
    HeadersTooLarge {
        /// Where.
        context: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is larger than the client's `max_body_size`.
    BodyTooLarge {
        /// Where.
        context: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// More redirects than the client's `max_redirects` allows.
    TooManyRedirects {
        /// The URL of the last redirect.
        url: String,
        /// The limit.
        max: u32,
    },
}

/// `Result` with the client's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when a connect, read or write timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Connect { source, .. } | Error::Io { source, .. }
            if matches!(source.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock))
    }

    /// True when no connection could be made (resolution, connect).
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. })
    }

    /// True when the upstream sent something that is not valid HTTP (including a head or body
    /// over the limits, and an early close).
    pub fn is_invalid_response(&self) -> bool {
        matches!(
            self,
            Error::InvalidResponse { .. }
                | Error::HeadersTooLarge { .. }
                | Error::BodyTooLarge { .. }
        )
    }

    pub(crate) fn invalid(context: &str, reason: impl Into<String>) -> Error {
        Error::InvalidResponse {
            context: context.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl { url, reason } => write!(f, "invalid url {url:?}: {reason}"),
            Error::InvalidRequest(msg) => write!(f, "invalid request: {msg}"),
            Error::UnsupportedScheme(url) => {
                write!(f, "{url}: https needs the `tls` feature of may_gevent")
            }
            Error::Connect { target, .. } => write!(f, "cannot connect to {target}"),
            Error::Tls { target, .. } => write!(f, "tls handshake with {target} failed"),
            Error::Io { context, .. } => write!(f, "{context}"),
            Error::InvalidResponse { context, reason } => {
                write!(f, "{context}: invalid response: {reason}")
            }
            Error::HeadersTooLarge { context, limit } => {
                write!(f, "{context}: response head larger than {limit} bytes")
            }
            Error::BodyTooLarge { context, limit } => {
                write!(f, "{context}: response body larger than {limit} bytes")
            }
            Error::TooManyRedirects { url, max } => {
                write!(f, "{url}: more than {max} redirects")
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_chain(f, self)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Tls { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// For `Read` on a response body: timeouts stay `TimedOut`, bad framing is `InvalidData`.
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::Io { source, .. } | Error::Connect { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, format!("{err:?}"))
    }
}
