//! Reading the request head: httparse plus the checks httparse leaves to us (RFC 9112).
//!
//! httparse is run with a [`httparse::ParserConfig`] that has every leniency off: no multiple
//! spaces in the request line, no whitespace before a colon, no obs-fold, no invalid header lines
//! skipped. It already rejects bare CR, NUL and other control characters, invalid token characters
//! in the method and header names, and every version but `HTTP/1.0` and `HTTP/1.1`. It *accepts*
//! bare LF line endings, leading empty lines and non-ASCII (UTF-8) bytes in the target; this module
//! rejects bare LF and non-ASCII targets and implements the message-framing rules of RFC 9112
//! section 6 (Content-Length / Transfer-Encoding), the Host rules of section 3.2 and the limits.
//!
//! The parsed head is copied into a per-connection [`RequestHead`] (its buffers are reused from one
//! request to the next) as byte spans: environ keys are computed on lookup, not built as strings.
//!
//! - `fast.rs`: the plainest heads tokenized without httparse (a strict subset, split the same);
//! - `parse.rs`: driving httparse, the size limits, the checks of the request line;
//! - `framing.rs`: the header fields that frame the message (RFC 9112 section 6, Host, Connection,
//!   Expect);
//! - `target.rs`: the request target (RFC 9112 section 3.2) split into path, query and authority.

mod fast;
mod framing;
mod parse;
mod target;
#[cfg(test)]
mod tests;

pub(crate) use self::fast::compare_with_httparse as compare_fast_with_httparse;
pub(crate) use self::parse::{check_partial, may_be_complete, parse};

/// HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    #[default]
    Http11,
}

impl Version {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A byte range of [`RequestHead::buf`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    pub(super) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    #[inline]
    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    #[inline]
    pub(crate) fn str(self, buf: &[u8]) -> &str {
        std::str::from_utf8(self.get(buf)).unwrap_or_default()
    }
}

/// How the request body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Framing {
    /// No body.
    #[default]
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// One header field line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderEntry {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

/// A parsed request head. Reused across the requests of a connection.
#[derive(Debug, Default)]
pub(crate) struct RequestHead {
    /// The head's bytes (request line, header lines, blank line).
    pub(crate) buf: Vec<u8>,
    pub(crate) method: Span,
    /// The request target as received (RAW_URI).
    pub(crate) target: Span,
    /// The path part of the target, still percent-encoded.
    pub(crate) path: Span,
    /// The query part of the target (without `?`).
    pub(crate) query: Span,
    /// The authority of an absolute-form target; it replaces the Host header (RFC 9112 3.2.2).
    pub(crate) authority: Option<Span>,
    pub(crate) version: Version,
    pub(crate) headers: Vec<HeaderEntry>,
    /// PATH_INFO when it had to be percent-decoded (`path_decoded_valid`).
    pub(crate) path_decoded: String,
    pub(crate) path_decoded_valid: bool,
    pub(crate) framing: Framing,
    /// Index of the first Content-Type header.
    pub(crate) content_type: Option<u16>,
    /// Index of the Content-Length header.
    pub(crate) content_length: Option<u16>,
    /// Whether the client allows the connection to persist after this request.
    pub(crate) keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    pub(crate) expect_continue: bool,
    /// `Upgrade` header or `Connection: upgrade` (gevent: `_connection_upgrade_requested`).
    pub(crate) upgrade: bool,
    pub(crate) is_head: bool,
    /// An `X-Forwarded-For`, `X-Forwarded-Proto` or `Forwarded` field is present: only then
    /// are the forwarded headers resolved (a trusted peer's request without them costs
    /// nothing more).
    pub(crate) forwarded: bool,
    /// The parser's header slots (kept empty, only its allocation is reused): on the heap rather
    /// than a 100-entry array on the coroutine stack, whose touched pages would stay resident.
    pub(super) store: Vec<httparse::Header<'static>>,
}

impl RequestHead {
    pub(crate) fn method(&self) -> &str {
        self.method.str(&self.buf)
    }

    pub(crate) fn target(&self) -> &str {
        self.target.str(&self.buf)
    }

    /// PATH_INFO: the path, percent-decoded, each byte taken as a latin-1 character.
    pub(crate) fn path_info(&self) -> &str {
        if self.path_decoded_valid {
            &self.path_decoded
        } else {
            self.path.str(&self.buf)
        }
    }

    pub(crate) fn query_string(&self) -> &str {
        self.query.str(&self.buf)
    }

    /// The request line, for the access log (`GET / HTTP/1.1`).
    pub(crate) fn request_line(&self) -> &[u8] {
        let start = self.method.start as usize;
        let end = (self.target.end as usize + 9).min(self.buf.len());
        self.buf.get(start..end).unwrap_or_default()
    }

    pub(crate) fn header_name(&self, entry: &HeaderEntry) -> &str {
        entry.name.str(&self.buf)
    }

    /// Clears the head for the next request (the allocations stay).
    /// Gives every allocation back (an idle keep-alive connection); the head is empty after.
    pub(crate) fn release(&mut self) {
        self.reset();
        self.buf = Vec::new();
        self.headers = Vec::new();
        self.path_decoded = String::new();
        self.store = Vec::new();
    }

    pub(super) fn reset(&mut self) {
        self.buf.clear();
        self.headers.clear();
        self.path_decoded.clear();
        self.path_decoded_valid = false;
        self.authority = None;
        self.framing = Framing::Empty;
        self.content_type = None;
        self.content_length = None;
        self.keep_alive = false;
        self.expect_continue = false;
        self.upgrade = false;
        self.is_head = false;
        self.forwarded = false;
        self.query = Span::default();
    }
}

/// Why a request head is rejected; each maps to one canned response, then the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// 400, with the reason for the error log.
    BadRequest(&'static str),
    /// 414.
    UriTooLong,
    /// 431: the header section is over the limit.
    HeaderSectionTooLarge,
    /// 431: more header fields than [`MAX_HEADERS`](super::config::MAX_HEADERS).
    TooManyHeaders,
    /// 431: the read buffer filled up with an incomplete head.
    HeadTooLarge,
    /// 505: a well-formed `HTTP/x.y` other than 1.0 and 1.1.
    VersionNotSupported,
    /// 501: a transfer coding other than chunked.
    NotImplemented(&'static str),
    /// 413: Content-Length over the configured maximum.
    ContentTooLarge,
}

impl HeadError {
    /// Status code of the canned response.
    pub(crate) fn status(self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeaderSectionTooLarge
            | HeadError::TooManyHeaders
            | HeadError::HeadTooLarge => 431,
            HeadError::VersionNotSupported => 505,
            HeadError::NotImplemented(_) => 501,
            HeadError::ContentTooLarge => 413,
        }
    }

    /// Reason for the error log.
    pub(crate) fn message(self) -> &'static str {
        match self {
            HeadError::BadRequest(msg) | HeadError::NotImplemented(msg) => msg,
            HeadError::UriTooLong => "request line too long",
            HeadError::HeaderSectionTooLarge => "header section too large",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::HeadTooLarge => "request head too large",
            HeadError::VersionNotSupported => "unsupported HTTP version",
            HeadError::ContentTooLarge => "request body larger than the maximum",
        }
    }
}

/// Limits applied while reading a head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    max_request_line: usize,
    max_header_block: usize,
    max_body: Option<u64>,
}

impl Limits {
    /// Limits with these sizes; `max_body`: the largest accepted Content-Length (`None`: any).
    pub(crate) fn new(
        max_request_line: usize,
        max_header_block: usize,
        max_body: Option<u64>,
    ) -> Limits {
        Limits {
            max_request_line,
            max_header_block,
            max_body,
        }
    }

    /// The most bytes a complete head can take (read-buffer growth bound).
    pub(crate) fn max_head(&self) -> usize {
        self.max_request_line + self.max_header_block + 4
    }
}
