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

use std::cell::{Cell, OnceCell};

use super::config::MAX_HEADERS;

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
    fn new(start: usize, end: usize) -> Span {
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

/// What a header contributes to the environ's `HTTP_*` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvValue {
    /// Nothing: the name has an `_` (gevent #819: dropped, it could spoof a `-` header) or it is
    /// `Content-Type` / `Content-Length` (CONTENT_TYPE / CONTENT_LENGTH instead).
    Skip,
    /// A repeat of an earlier header; its value was joined into that one.
    Merged,
    /// The value is this span of the head (ASCII).
    Span(Span),
    /// The value is `RequestHead::owned[i]` (joined, or latin-1 decoded).
    Owned(u16),
}

/// One header field line.
#[derive(Debug, Clone)]
pub(crate) struct HeaderEntry {
    pub(crate) name: Span,
    pub(crate) value: Span,
    /// The environ value (for `HTTP_*` entries, and for the first Content-Type); computed on the
    /// first environ lookup that needs it ([`RequestHead::prepare`]).
    pub(crate) env: Cell<EnvValue>,
    /// Whether this header is an `HTTP_*` environ entry (valid once prepared).
    pub(crate) http: Cell<bool>,
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
    /// Whether the environ values of the headers were computed.
    prepared: Cell<bool>,
    /// Owned environ values (joined repeats, latin-1 decoded values), when there are any.
    owned: OnceCell<Vec<String>>,
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
    /// The parser's header slots (kept empty, only its allocation is reused): on the heap rather
    /// than a 100-entry array on the coroutine stack, whose touched pages would stay resident.
    store: Vec<httparse::Header<'static>>,
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

    /// The environ value of a header entry (`None` for skipped or merged entries).
    pub(crate) fn env_value(&self, entry: &HeaderEntry) -> Option<&str> {
        self.prepare();
        match entry.env.get() {
            EnvValue::Skip | EnvValue::Merged => None,
            EnvValue::Span(span) => Some(span.str(&self.buf)),
            EnvValue::Owned(i) => self.owned.get()?.get(i as usize).map(String::as_str),
        }
    }

    /// The entries that are `HTTP_*` environ keys with a value (repeats merged away).
    pub(crate) fn http_entries(&self) -> impl Iterator<Item = &HeaderEntry> {
        self.prepare();
        self.headers.iter().filter(|entry| {
            entry.http.get() && matches!(entry.env.get(), EnvValue::Span(_) | EnvValue::Owned(_))
        })
    }

    /// Computes the environ values of all headers, once per request, on the first lookup that
    /// needs one: the `HTTP_*` entries with gevent's joining rules (`,`, or `; ` for names
    /// containing COOKIE), names containing `_` dropped (gevent #819, they could spoof a `-`
    /// header), latin-1 decoding of non-ASCII values, and the absolute-form authority in place of
    /// Host (RFC 9112 3.2.2). A request whose application never looks at headers pays nothing.
    pub(crate) fn prepare(&self) {
        if self.prepared.get() {
            return;
        }
        self.prepared.set(true);
        let mut owned: Vec<String> = Vec::new();
        for (index, entry) in self.headers.iter().enumerate() {
            let name = entry.name.get(&self.buf);
            let value = entry.value.get(&self.buf);
            let special = name.eq_ignore_ascii_case(b"content-type")
                || name.eq_ignore_ascii_case(b"content-length");
            if name.contains(&b'_') || special {
                if self.content_type == Some(index as u16) {
                    entry.env.set(own_value(entry.value, value, &mut owned));
                }
                continue;
            }
            entry.http.set(true);
            let earlier = self.headers[..index].iter().find(|other| {
                other.http.get()
                    && matches!(other.env.get(), EnvValue::Span(_) | EnvValue::Owned(_))
                    && other.name.get(&self.buf).eq_ignore_ascii_case(name)
            });
            let Some(first) = earlier else {
                let mut env = own_value(entry.value, value, &mut owned);
                if let Some(authority) = self.authority {
                    if name.eq_ignore_ascii_case(b"host") {
                        env = EnvValue::Span(authority);
                    }
                }
                entry.env.set(env);
                continue;
            };
            entry.env.set(EnvValue::Merged);
            let text = latin1(value);
            let sep = if contains_ignore_case(name, b"cookie") {
                "; "
            } else {
                ","
            };
            match first.env.get() {
                EnvValue::Owned(i) => {
                    let joined = &mut owned[i as usize];
                    joined.push_str(sep);
                    joined.push_str(&text);
                }
                EnvValue::Span(span) => {
                    let earlier = span.str(&self.buf);
                    let mut joined = String::with_capacity(earlier.len() + sep.len() + text.len());
                    joined.push_str(earlier);
                    joined.push_str(sep);
                    joined.push_str(&text);
                    first.env.set(EnvValue::Owned(owned.len() as u16));
                    owned.push(joined);
                }
                EnvValue::Skip | EnvValue::Merged => {}
            }
        }
        if !owned.is_empty() {
            let _ = self.owned.set(owned);
        }
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.headers.clear();
        self.prepared.set(false);
        self.owned.take();
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
        self.query = Span::default();
    }
}

/// Bytes as text: ASCII as is, other bytes as latin-1 characters (WSGI's "bytes as latin-1 str").
pub(crate) fn latin1(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if bytes.is_ascii() {
        std::borrow::Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default())
    } else {
        std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

/// Why a request head is rejected; each maps to one canned response, then the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// 400, with the reason for the error log.
    BadRequest(&'static str),
    /// 414.
    UriTooLong,
    /// 431, with the reason.
    HeadersTooLarge(&'static str),
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
            HeadError::HeadersTooLarge(_) => 431,
            HeadError::VersionNotSupported => 505,
            HeadError::NotImplemented(_) => 501,
            HeadError::ContentTooLarge => 413,
        }
    }

    /// Reason for the error log.
    pub(crate) fn message(self) -> &'static str {
        match self {
            HeadError::BadRequest(msg)
            | HeadError::HeadersTooLarge(msg)
            | HeadError::NotImplemented(msg) => msg,
            HeadError::UriTooLong => "request line too long",
            HeadError::VersionNotSupported => "unsupported HTTP version",
            HeadError::ContentTooLarge => "request body larger than the maximum",
        }
    }
}

/// Limits applied while reading a head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_request_line: usize,
    pub(crate) max_header_block: usize,
    pub(crate) max_body: Option<u64>,
}

impl Limits {
    /// The most bytes a complete head can take (read-buffer growth bound).
    pub(crate) fn max_head(&self) -> usize {
        self.max_request_line + self.max_header_block + 4
    }
}

fn parser_config() -> httparse::ParserConfig {
    let mut config = httparse::ParserConfig::default();
    config
        .allow_multiple_spaces_in_request_line_delimiters(false)
        .allow_space_before_first_header_name(false)
        .ignore_invalid_headers_in_requests(false)
        .allow_spaces_after_header_name_in_responses(false)
        .allow_obsolete_multiline_headers_in_responses(false);
    config
}

/// Cheap test for a complete head: is there a `\n\r\n` or `\n\n` at or after `from`?
/// (`from` is how many bytes were already scanned; the scan backs up 2 bytes to catch a
/// terminator split across reads.)
pub(crate) fn may_be_complete(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(2);
    let tail = buf.get(start..).unwrap_or_default();
    let mut i = 0;
    while let Some(pos) = tail[i..].iter().position(|&b| b == b'\n') {
        let at = i + pos;
        match tail.get(at + 1) {
            Some(b'\n') => return true,
            Some(b'\r') if tail.get(at + 2) == Some(&b'\n') => return true,
            _ => {}
        }
        i = at + 1;
    }
    false
}

/// While an incomplete head is at most this long, the parser is re-run on every read to reject
/// garbage early (without waiting for a blank line that may never come).
const EARLY_PARSE_MAX: usize = 1024;

/// Checks the limits of an incomplete head (so that a client cannot make us buffer more than one
/// head's worth), and runs the parser over it to reject garbage early: on every read while the head
/// is short, and once when its request line is complete (`line_checked` remembers that).
pub(crate) fn check_partial(
    buf: &[u8],
    head: &mut RequestHead,
    limits: &Limits,
    line_checked: &mut bool,
) -> Result<(), HeadError> {
    check_limits(buf, limits)?;
    let mut run_parser = buf.len() <= EARLY_PARSE_MAX;
    if !*line_checked && buf[leading_empty_lines(buf)..].contains(&b'\n') {
        *line_checked = true;
        run_parser = true;
    }
    if run_parser {
        let mut slots = recycle(std::mem::take(&mut head.store));
        if slots.capacity() < INITIAL_SLOTS {
            slots.reserve_exact(INITIAL_SLOTS);
        }
        let mut req = httparse::Request::new(&mut []);
        let res = parser_config().parse_request_with_uninit_headers(
            &mut req,
            buf,
            slots.spare_capacity_mut(),
        );
        head.store = recycle(slots);
        match res {
            // not necessarily an error with fewer slots than the limit: the full parse decides
            Err(httparse::Error::TooManyHeaders) | Ok(_) => {}
            Err(err) => return Err(map_httparse_error(err, buf)),
        }
    }
    Ok(())
}

/// Header slots given to httparse at first; a request with more headers is parsed again with
/// [`MAX_HEADERS`] slots.
const INITIAL_SLOTS: usize = 24;

/// Re-types the (empty) slot vector for another borrow of the input. Collecting an empty
/// `vec::IntoIter` through `map` reuses its allocation (std's in-place collection), so this keeps
/// the capacity without copying anything; callers re-reserve if it ever did not.
fn recycle<'b>(slots: Vec<httparse::Header<'_>>) -> Vec<httparse::Header<'b>> {
    debug_assert!(slots.is_empty());
    slots.into_iter().map(|_| httparse::EMPTY_HEADER).collect()
}

/// The size limits of an incomplete head, without running the parser.
fn check_limits(buf: &[u8], limits: &Limits) -> Result<(), HeadError> {
    let start = leading_empty_lines(buf);
    let rest = &buf[start..];
    let scan = &rest[..rest.len().min(limits.max_request_line + 2)];
    match scan.iter().position(|&b| b == b'\n') {
        None if rest.len() > limits.max_request_line + 1 => Err(HeadError::UriTooLong),
        None => Ok(()),
        Some(pos) => {
            let line_len = if pos > 0 && rest[pos - 1] == b'\r' {
                pos - 1
            } else {
                pos
            };
            if line_len > limits.max_request_line {
                Err(HeadError::UriTooLong)
            } else if rest.len() - (pos + 1) > limits.max_header_block {
                Err(HeadError::HeadersTooLarge("header section too large"))
            } else {
                Ok(())
            }
        }
    }
}

fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match (buf.get(i), buf.get(i + 1)) {
            (Some(b'\r'), Some(b'\n')) => i += 2,
            (Some(b'\n'), _) => i += 1,
            _ => return i,
        }
    }
}

fn map_httparse_error(err: httparse::Error, buf: &[u8]) -> HeadError {
    match err {
        httparse::Error::Version => {
            // RFC 9110 15.6.6: 505 for a major version we do not support. A well-formed
            // "HTTP/x.y" that httparse refused (HTTP/2.0, HTTP/1.2, HTTP/0.9) gets a 505;
            // anything else is a malformed request line (400).
            let line = &buf[leading_empty_lines(buf)..];
            let end = line
                .iter()
                .position(|&b| b == b'\r' || b == b'\n')
                .unwrap_or(line.len());
            let mut parts = line[..end].splitn(3, |&b| b == b' ');
            let version = parts.nth(2).unwrap_or_default();
            if version.len() >= 6 && version.starts_with(b"HTTP/") && version[5].is_ascii_digit() {
                HeadError::VersionNotSupported
            } else {
                HeadError::BadRequest("invalid HTTP version")
            }
        }
        httparse::Error::TooManyHeaders => HeadError::HeadersTooLarge("too many header fields"),
        httparse::Error::HeaderName => HeadError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => HeadError::BadRequest("invalid header value"),
        httparse::Error::NewLine => HeadError::BadRequest("invalid line ending"),
        httparse::Error::Token | httparse::Error::Status => {
            HeadError::BadRequest("malformed request line")
        }
    }
}

/// Parses the head at the start of `buf` into `head`. `Ok(Some(n))`: the head is complete and is
/// `buf[..n]`; `Ok(None)`: more bytes are needed.
pub(crate) fn parse(
    buf: &[u8],
    head: &mut RequestHead,
    limits: &Limits,
) -> Result<Option<usize>, HeadError> {
    let mut slots = recycle(std::mem::take(&mut head.store));
    if slots.capacity() < INITIAL_SLOTS {
        slots.reserve_exact(INITIAL_SLOTS);
    }
    let mut res = parse_with(buf, head, limits, &mut slots);
    if res == Err(HeadError::HeadersTooLarge("too many header fields"))
        && slots.capacity() < MAX_HEADERS
    {
        slots.reserve_exact(MAX_HEADERS);
        res = parse_with(buf, head, limits, &mut slots);
    }
    head.store = recycle(slots);
    res
}

/// [`parse`] with the given (empty) slot vector; at most [`MAX_HEADERS`] of its capacity is used.
fn parse_with<'b>(
    buf: &'b [u8],
    head: &mut RequestHead,
    limits: &Limits,
    slots: &mut Vec<httparse::Header<'b>>,
) -> Result<Option<usize>, HeadError> {
    let spare = slots.spare_capacity_mut();
    let count = spare.len().min(MAX_HEADERS);
    let mut req = httparse::Request::new(&mut []);
    let len =
        match parser_config().parse_request_with_uninit_headers(&mut req, buf, &mut spare[..count])
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                check_limits(buf, limits)?;
                return Ok(None);
            }
            Err(err) => {
                // a too-long request line is reported as such even if the parser stopped earlier
                check_limits(buf, limits)?;
                return Err(map_httparse_error(err, buf));
            }
        };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::BadRequest("malformed request line"));
    };
    // the copy (and any allocation: malloc's frames are deep) before the frame of the checks
    head.reset();
    head.buf.extend_from_slice(&buf[..len]);
    head.headers.reserve(req.headers.len());
    check_head(buf, len, method, target, minor, req.headers, head, limits)
}

/// The checks of a complete head after httparse (its bytes already copied into `head.buf`), and
/// its spans and flags. A frame of its own, so that this function's many locals are not on the
/// stack while httparse runs (the deepest point of a request: the coroutine stack pages it
/// touches stay resident).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn check_head(
    buf: &[u8],
    len: usize,
    method: &str,
    target: &str,
    minor: u8,
    headers: &[httparse::Header<'_>],
    head: &mut RequestHead,
    limits: &Limits,
) -> Result<Option<usize>, HeadError> {
    let head_bytes = &buf[..len];

    // RFC 9112 2.2: "A recipient MAY recognize a single LF as a line terminator". We do not: every
    // LF must follow a CR, so that we never disagree with an intermediary on where a line ends.
    // httparse only lets LFs through as line ends (and every CR it accepted is followed by an
    // LF), so it is enough to look at the line ends: before each header name, at the end of the
    // head, and in the empty lines before the request line.
    // (the line ends before each header name are checked in the header loop below)
    if !head_bytes.ends_with(b"\r\n\r\n") {
        return Err(HeadError::BadRequest("bare LF line ending"));
    }
    let method_start = (method.as_ptr() as usize)
        .wrapping_sub(buf.as_ptr() as usize)
        .min(len);
    if method_start != 0 && !only_crlf_lines(&head_bytes[..method_start]) {
        return Err(HeadError::BadRequest("bare LF line ending"));
    }

    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize).saturating_sub(base).min(len);
    let target_start = offset(target.as_bytes());
    let target_end = target_start + target.len();
    // request line = method SP target SP HTTP/1.x
    let line_end = target_end + 9;
    if line_end - method_start > limits.max_request_line {
        return Err(HeadError::UriTooLong);
    }
    if len.saturating_sub(line_end + 2) > limits.max_header_block {
        return Err(HeadError::HeadersTooLarge("header section too large"));
    }

    head.method = Span::new(method_start, method_start + method.len());
    head.target = Span::new(target_start, target_end);
    head.version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    head.is_head = method == "HEAD";
    split_target(head, method.as_bytes(), target)?;

    let mut host_count = 0usize;
    let mut host_value: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    // the boolean findings of the header loop, as bits of one register-sized word (`F_*`)
    let mut flags = 0u32;

    for (index, header) in headers.iter().enumerate() {
        let name = header.name;
        let value = header.value;
        let name_start = offset(name.as_bytes());
        if name_start < 2
            || head_bytes[name_start - 2] != b'\r'
            || head_bytes[name_start - 1] != b'\n'
        {
            return Err(HeadError::BadRequest("bare LF line ending"));
        }
        let value_start = if value.is_empty() {
            name_start + name.len() + 1
        } else {
            offset(value)
        };
        let entry = HeaderEntry {
            name: Span::new(name_start, name_start + name.len()),
            value: Span::new(value_start, (value_start + value.len()).min(len)),
            env: Cell::new(EnvValue::Skip),
            http: Cell::new(false),
        };
        match name.len() {
            4 if name_is(name.as_bytes(), b"host") => {
                host_count += 1;
                host_value = Some(value);
            }
            6 if name_is(name.as_bytes(), b"expect") => {
                flags &= !F_EXPECT_CONTINUE;
                if value.eq_ignore_ascii_case(b"100-continue") {
                    flags |= F_EXPECT_CONTINUE;
                }
            }
            7 if name_is(name.as_bytes(), b"upgrade") => flags |= F_UPGRADE,
            10 if name_is(name.as_bytes(), b"connection") => {
                for token in list_elements(value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        flags |= F_CONN_CLOSE;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        flags |= F_CONN_KEEP_ALIVE;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        flags |= F_UPGRADE;
                    }
                }
            }
            12 if head.content_type.is_none() && name_is(name.as_bytes(), b"content-type") => {
                head.content_type = Some(index as u16);
            }
            14 if name_is(name.as_bytes(), b"content-length") => {
                // RFC 9112 6.3 (5): several Content-Length lines, or one that is not a plain
                // decimal number, make the length unknowable: 400, close.
                if content_length.is_some() {
                    return Err(HeadError::BadRequest("repeated Content-Length"));
                }
                content_length = Some(parse_content_length(value)?);
                head.content_length = Some(index as u16);
            }
            17 if name_is(name.as_bytes(), b"transfer-encoding") => {
                flags |= F_TE;
                for coding in list_elements(value) {
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        // RFC 9112 6.1: "A sender MUST NOT apply the chunked transfer coding more
                        // than once to a message body".
                        if flags & F_TE_CHUNKED != 0 {
                            return Err(HeadError::BadRequest("chunked applied more than once"));
                        }
                        flags |= F_TE_CHUNKED | F_TE_LAST_CHUNKED;
                    } else {
                        flags = (flags | F_TE_OTHER) & !F_TE_LAST_CHUNKED;
                    }
                }
            }
            _ => {}
        }
        head.headers.push(entry);
    }

    // RFC 9112 3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
    // request message that lacks a Host header field and to any request message that contains
    // more than one Host header field line or a Host header field with an invalid field value."
    if host_count > 1 {
        return Err(HeadError::BadRequest("repeated Host header"));
    }
    if host_count == 0 && head.version == Version::Http11 {
        return Err(HeadError::BadRequest("missing Host header"));
    }
    if let Some(host) = host_value {
        if !is_host(host) {
            return Err(HeadError::BadRequest("invalid Host header"));
        }
    }
    // (RFC 9112 3.2.2: for an absolute-form target the authority replaces the Host header in the
    // environ; see `RequestHead::prepare`.)

    head.framing = if flags & F_TE != 0 {
        // RFC 9112 6.1: "A server MUST NOT send a response containing Transfer-Encoding unless
        // the corresponding request indicates HTTP/1.1"; a 1.0 message with Transfer-Encoding is
        // treated as faulty: "the server MUST close the connection after responding". We reject.
        if head.version == Version::Http10 {
            return Err(HeadError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        // RFC 9112 6.1: "A server MAY reject a request that contains both Content-Length and
        // Transfer-Encoding or process such a request in accordance with the Transfer-Encoding
        // alone. Regardless, the server MUST close the connection after responding". We reject.
        if content_length.is_some() {
            return Err(HeadError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        // RFC 9112 6.3 (4): "If a Transfer-Encoding header field is present in a request and the
        // chunked transfer coding is not the final encoding, the message body length cannot be
        // determined reliably; the server MUST respond with the 400 (Bad Request) status code and
        // then close the connection."
        if flags & F_TE_LAST_CHUNKED == 0 {
            return Err(HeadError::BadRequest(
                "Transfer-Encoding does not end with chunked",
            ));
        }
        // RFC 9112 6.1: "A server that receives a request message with a transfer coding it does
        // not understand SHOULD respond with 501 (Not Implemented)."
        if flags & F_TE_OTHER != 0 {
            return Err(HeadError::NotImplemented("unsupported transfer coding"));
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    if head.is_head && head.framing != Framing::Empty {
        // gevent: "Unexpected Content-Length" (a HEAD request with a body)
        return Err(HeadError::BadRequest("request body on a HEAD request"));
    }
    if let (Framing::Length(n), Some(max)) = (head.framing, limits.max_body) {
        if n > max {
            return Err(HeadError::ContentTooLarge);
        }
    }

    let conn_close = flags & F_CONN_CLOSE != 0;
    head.keep_alive = match head.version {
        Version::Http11 => !conn_close,
        Version::Http10 => flags & F_CONN_KEEP_ALIVE != 0 && !conn_close,
    };
    // RFC 9110 10.1.1: "A server that receives a 100-continue expectation in an HTTP/1.0 request
    // MUST ignore that expectation."
    head.expect_continue = flags & F_EXPECT_CONTINUE != 0
        && head.version == Version::Http11
        && head.framing != Framing::Empty;
    head.upgrade = flags & F_UPGRADE != 0;
    Ok(Some(len))
}

// The bits of `check_head`'s `flags`.
/// A Transfer-Encoding header.
const F_TE: u32 = 1;
/// `chunked` among the transfer codings.
const F_TE_CHUNKED: u32 = 1 << 1;
/// `chunked` is the last transfer coding so far.
const F_TE_LAST_CHUNKED: u32 = 1 << 2;
/// A transfer coding other than `chunked`.
const F_TE_OTHER: u32 = 1 << 3;
/// `Connection: close`.
const F_CONN_CLOSE: u32 = 1 << 4;
/// `Connection: keep-alive`.
const F_CONN_KEEP_ALIVE: u32 = 1 << 5;
/// An `Upgrade` header or `Connection: upgrade`.
const F_UPGRADE: u32 = 1 << 6;
/// (The last) `Expect` header is `100-continue`.
const F_EXPECT_CONTINUE: u32 = 1 << 7;

/// A header's own environ value: its span when ASCII, else an owned latin-1 decoding.
fn own_value(span: Span, value: &[u8], owned: &mut Vec<String>) -> EnvValue {
    if value.is_ascii() {
        return EnvValue::Span(span);
    }
    owned.push(value.iter().map(|&b| char::from(b)).collect());
    EnvValue::Owned((owned.len() - 1) as u16)
}

/// `name` equals the lower-case `lower` ignoring ASCII case, for token names (httparse checked
/// them): OR-ing 0x20 lower-cases letters and maps no other token character to a letter or `-`.
/// Compared a word at a time: whole 8-byte words, then the last (overlapping) word; names of 4 to
/// 7 bytes as two overlapping 4-byte words.
#[inline(always)]
fn name_is(name: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if name.len() != n {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word8(name, i) | 0x2020_2020_2020_2020 != word8(lower, i) {
                return false;
            }
            i += 8;
        }
        word8(name, n - 8) | 0x2020_2020_2020_2020 == word8(lower, n - 8)
    } else if n >= 4 {
        word4(name, 0) | 0x2020_2020 == word4(lower, 0)
            && word4(name, n - 4) | 0x2020_2020 == word4(lower, n - 4)
    } else {
        name.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b)
    }
}

/// The 8 bytes of `bytes` at `at`, as one little-endian word (for word-at-a-time compares).
#[inline(always)]
pub(crate) fn word8(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The 4 bytes of `bytes` at `at`, as one little-endian word.
#[inline(always)]
pub(crate) fn word4(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// The non-empty elements of a comma-separated list (RFC 9110 5.6.1), trimmed of OWS.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 8.6: `Content-Length = 1*DIGIT`. No sign, no spaces (httparse trims the outer OWS),
/// no list, and it must fit in a u64.
fn parse_content_length(value: &[u8]) -> Result<u64, HeadError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::BadRequest("invalid Content-Length"));
    }
    let mut n: u64 = 0;
    for &digit in value {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(digit - b'0')))
            .ok_or(HeadError::BadRequest("invalid Content-Length"))?;
    }
    Ok(n)
}

/// Characters of `uri-host [ ":" port ]` (reg-name, IPv4, IP-literal), RFC 3986.
static HOST_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            );
        i += 1;
    }
    table
};

#[inline]
fn is_host(bytes: &[u8]) -> bool {
    // no early exit: one load and one AND per byte (hosts are short and almost always valid)
    bytes
        .iter()
        .fold(true, |ok, &b| ok & HOST_CHARS[b as usize])
}

/// The empty lines before the request line (httparse accepted them) are all `\r\n`, none a bare LF.
#[inline(never)]
fn only_crlf_lines(prefix: &[u8]) -> bool {
    prefix.chunks(2).all(|line| line == b"\r\n")
}

/// Splits the target (RFC 9112 3.2) into path, query and authority, or rejects it. `target_str`
/// is the target as httparse returned it (already valid UTF-8): an origin-form path is copied from
/// it into `path_decoded`, so that [`RequestHead::path_info`] never re-validates it.
#[inline(always)]
fn split_target(head: &mut RequestHead, method: &[u8], target_str: &str) -> Result<(), HeadError> {
    let start = head.target.start as usize;
    let target = head.target.get(&head.buf);
    if target.first() == Some(&b'/') {
        // origin-form, the common case: one pass over the whole target finds the query, checks
        // that every byte is ASCII and notes a `%` in the path
        let mut question = target.len();
        let mut percent = false;
        let mut high = 0u8;
        for (i, &b) in target.iter().enumerate() {
            high |= b;
            let in_path = question == target.len();
            if b == b'?' && in_path {
                question = i;
            }
            percent |= b == b'%' && in_path;
        }
        let query_start = (question + 1).min(target.len());
        if high >= 0x80 {
            return Err(HeadError::BadRequest(
                "non-ASCII byte in the request target",
            ));
        }
        head.path = Span::new(start, start + question);
        head.query = Span::new(start + query_start, start + target.len());
        if percent {
            let mut decoded = std::mem::take(&mut head.path_decoded);
            unquote_latin1(head.path.get(&head.buf), &mut decoded);
            head.path_decoded = decoded;
        } else {
            head.path_decoded
                .push_str(target_str.get(..question).unwrap_or_default());
        }
        head.path_decoded_valid = true;
        return Ok(());
    }
    split_other_target(head, method)
}

/// [`split_target`] for the rare forms: absolute, authority (CONNECT), asterisk (OPTIONS).
#[inline(never)]
fn split_other_target(head: &mut RequestHead, method: &[u8]) -> Result<(), HeadError> {
    let start = head.target.start as usize;
    let target = head.target.get(&head.buf);
    // httparse accepts UTF-8 here; RFC 3986 allows only ASCII, so anything else is a malformed
    // request line (RFC 9112 3.2: no autocorrection).
    if !target.is_ascii() {
        return Err(HeadError::BadRequest(
            "non-ASCII byte in the request target",
        ));
    }
    let (path_start, authority) = match target.first() {
        // origin-form
        Some(b'/') => (0, None),
        // asterisk-form
        Some(b'*') if target.len() == 1 && method == b"OPTIONS" => {
            head.path = head.target;
            return Ok(());
        }
        // authority-form
        _ if method == b"CONNECT" => {
            if target.is_empty() || !is_host(target) {
                return Err(HeadError::BadRequest("invalid CONNECT target"));
            }
            head.path = Span::new(start, start);
            head.query = Span::new(start, start);
            head.authority = Some(head.target);
            return Ok(());
        }
        // absolute-form: scheme "://" authority [path] ["?" query]
        Some(first) if first.is_ascii_alphabetic() => {
            let colon = target
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
                .filter(|&i| target[i] == b':' && target[i + 1..].starts_with(b"//"))
                .ok_or(HeadError::BadRequest("malformed request target"))?;
            let auth_start = colon + 3;
            let auth_len = target[auth_start..]
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(target.len() - auth_start);
            let authority = &target[auth_start..auth_start + auth_len];
            // RFC 9110 4.2.4: userinfo in an http(s) URI "SHOULD" be treated as an error.
            if authority.is_empty() || !is_host(authority) {
                return Err(HeadError::BadRequest("invalid authority in request target"));
            }
            (
                auth_start + auth_len,
                Some(Span::new(start + auth_start, start + auth_start + auth_len)),
            )
        }
        _ => return Err(HeadError::BadRequest("malformed request target")),
    };
    let rest = &target[path_start..];
    let mut question = None;
    let mut percent = false;
    for (i, &b) in rest.iter().enumerate() {
        if b == b'?' {
            question = Some(i);
            break;
        }
        percent |= b == b'%';
    }
    let (path_len, query) = match question {
        Some(q) => (
            q,
            Span::new(start + path_start + q + 1, start + target.len()),
        ),
        None => (
            rest.len(),
            Span::new(start + target.len(), start + target.len()),
        ),
    };
    head.path = Span::new(start + path_start, start + path_start + path_len);
    head.query = query;
    head.authority = authority;
    let path = head.path.get(&head.buf);
    if authority.is_some() && path.is_empty() {
        // an empty path in an http URI means "/" (RFC 9110 4.2.3)
        head.path_decoded.push('/');
        head.path_decoded_valid = true;
    } else if percent {
        let mut decoded = std::mem::take(&mut head.path_decoded);
        unquote_latin1(head.path.get(&head.buf), &mut decoded);
        head.path_decoded = decoded;
        head.path_decoded_valid = true;
    }
    Ok(())
}

/// Percent-decodes `raw` into `out`, each resulting byte as a latin-1 character (gevent's
/// `unquote_latin1`, i.e. Python's `unquote(path, 'latin-1')`). Malformed escapes stay as they
/// are.
pub(crate) fn unquote_latin1(raw: &[u8], out: &mut String) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                raw.get(i + 1).and_then(|&h| (h as char).to_digit(16)),
                raw.get(i + 2).and_then(|&l| (l as char).to_digit(16)),
            ) {
                out.push(char::from((hi * 16 + lo) as u8));
                i += 3;
                continue;
            }
        }
        out.push(char::from(b));
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_request_line: 8192,
        max_header_block: 64 * 1024,
        max_body: None,
    };

    fn ok(raw: &[u8]) -> RequestHead {
        let mut head = RequestHead::default();
        match parse(raw, &mut head, &LIMITS) {
            Ok(Some(n)) => assert_eq!(n, raw.len(), "whole head consumed"),
            other => panic!("{:?}: {:?}", String::from_utf8_lossy(raw), other),
        }
        head
    }

    fn err(raw: &[u8]) -> HeadError {
        let mut head = RequestHead::default();
        match parse(raw, &mut head, &LIMITS) {
            Err(err) => err,
            other => panic!("{:?} accepted: {:?}", String::from_utf8_lossy(raw), other),
        }
    }

    fn status(raw: &[u8]) -> u16 {
        err(raw).status()
    }

    fn env(head: &RequestHead, name: &str) -> Option<String> {
        head.http_entries()
            .find(|e| head.header_name(e).eq_ignore_ascii_case(name))
            .and_then(|e| head.env_value(e))
            .map(str::to_owned)
    }

    #[test]
    fn simple_get() {
        let head = ok(b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(head.method(), "GET");
        assert_eq!(head.target(), "/a/b?x=1&y=%20");
        assert_eq!(head.path_info(), "/a/b");
        assert_eq!(head.query_string(), "x=1&y=%20");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(head.framing, Framing::Empty);
        assert!(head.keep_alive);
        assert_eq!(head.request_line(), b"GET /a/b?x=1&y=%20 HTTP/1.1");
        assert_eq!(env(&head, "host").as_deref(), Some("example.com"));
    }

    #[test]
    fn partial_heads() {
        let mut head = RequestHead::default();
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: a"[..],
            b"GET",
            b"GET / HTTP/1.",
            b"\r\n",
        ] {
            assert_eq!(parse(raw, &mut head, &LIMITS), Ok(None), "{raw:?}");
        }
    }

    #[test]
    fn path_info_is_decoded_as_latin1() {
        let head = ok(b"GET /%D0%BF%D1%80?%D0%B2=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.path_info(), "/\u{d0}\u{bf}\u{d1}\u{80}");
        assert_eq!(head.query_string(), "%D0%B2=1");
        let head = ok(b"GET /env;p/a%20b%2Fc%zz%4 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.path_info(), "/env;p/a b/c%zz%4");
    }

    #[test]
    fn query_and_path_split() {
        // a `%` or `?` in the query does not touch PATH_INFO
        let head = ok(b"GET /a?b%20=c?d HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.path_info(), "/a");
        assert_eq!(head.query_string(), "b%20=c?d");
        let head = ok(b"GET /%41?%42 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.path_info(), "/A");
        assert_eq!(head.query_string(), "%42");
        let head = ok(b"GET /a/long/path/name? HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.path_info(), "/a/long/path/name");
        assert_eq!(head.query_string(), "");
        // non-ASCII in the query is refused as in the path
        assert_eq!(status(b"GET /a?\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        // the decoded path of one request does not leak into the next
        let mut head = RequestHead::default();
        let raw = b"GET /x%20y HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse(raw, &mut head, &LIMITS), Ok(Some(raw.len())));
        assert_eq!(head.path_info(), "/x y");
        let raw = b"GET /z HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(parse(raw, &mut head, &LIMITS), Ok(Some(raw.len())));
        assert_eq!(head.path_info(), "/z");
    }

    #[test]
    fn header_names_match_in_any_case_only_exactly() {
        for name in ["HOST", "hOsT", "Host"] {
            let raw = format!("GET / HTTP/1.1\r\n{name}: a\r\nhost: b\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 400, "{name}");
        }
        for name in ["Hosts", "Hos", "Xost", "Hostx"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{name}: b\r\n\r\n");
            ok(raw.as_bytes());
        }
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH: 5\r\n\r\n");
        assert_eq!(head.framing, Framing::Length(5));
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Lengthx: 5\r\n\r\n");
        assert_eq!(head.framing, Framing::Empty);
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\ntRANSFER-eNCODING: chunked\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nCONNECTION: close\r\n\r\n").keep_alive);
        let head = ok(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n");
        assert!(!head.expect_continue, "the last Expect decides");
    }

    #[test]
    fn leading_empty_lines_need_crlf() {
        ok(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(status(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    }

    #[test]
    fn absolute_form() {
        let head = ok(b"GET http://example.com:8080/p%20q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(head.path_info(), "/p q");
        assert_eq!(head.query_string(), "x=1");
        assert_eq!(head.target(), "http://example.com:8080/p%20q?x=1");
        assert_eq!(env(&head, "host").as_deref(), Some("example.com:8080"));
        let head = ok(b"GET https://h?x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.path_info(), "/");
        assert_eq!(head.query_string(), "x");
        assert_eq!(
            status(b"GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        assert_eq!(status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
        let head = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.path_info(), "*");
        let head = ok(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
        assert_eq!(head.path_info(), "");
    }

    #[test]
    fn http10_and_keep_alive() {
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, te\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\n\r\n").keep_alive);
    }

    #[test]
    fn body_framing() {
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(head.framing, Framing::Length(12));
        assert_eq!(
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing,
            Framing::Empty
        );
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
        let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n");
        assert_eq!(head.framing, Framing::Chunked);
    }

    #[test]
    fn smuggling_vectors_are_rejected() {
        // CL + TE
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400);
        // repeated / conflicting / malformed CL
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        for cl in [
            "1, 1",
            "+3",
            "-1",
            "abc",
            "0x10",
            "3 3",
            "1_0",
            "",
            "99999999999999999999999",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 400, "Content-Length {cl:?}");
        }
        // TE whose final coding is not chunked; chunked twice; unknown codings; TE on 1.0
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        // whitespace before the colon, obs-fold, bare CR, bare LF, NUL, bad name characters
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n"),
            400
        );
        assert_eq!(status(b"POST / HTTP/1.0\r\nContent-Type: multipart/related;\r\n type=\"text/xml\"\r\nContent-Length: 0\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\nHost: a\n\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), 400);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: a\r\nno-colon\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
        // Host rules
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
        ok(b"GET / HTTP/1.0\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
        ok(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
        // HEAD with a body
        assert_eq!(
            status(b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"),
            400
        );
    }

    #[test]
    fn request_line_errors() {
        assert_eq!(status(b"GET / HTTP %\r\n\r\n"), 400);
        assert_eq!(status(b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\r\n\r\n"), 400);
        assert_eq!(status(b"GET / FOO/1.1\r\n\r\n"), 400);
        assert_eq!(status(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(status(b"GET / HTTP/0.9\r\n\r\n"), 505);
        assert_eq!(
            status(b"Header: valueGET /path2?a=:123 HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            400
        );
        assert_eq!(status(b"<policy-file-request/>\0"), 400);
        // methods are any token (gevent accepts lower case too)
        assert_eq!(ok(b"get / HTTP/1.1\r\nHost: a\r\n\r\n").method(), "get");
        // leading empty lines are ignored (RFC 9112 2.2)
        assert_eq!(ok(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").method(), "GET");
    }

    #[test]
    fn limits() {
        let line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(8192));
        assert_eq!(status(line.as_bytes()), 414);
        let line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(8192 - 15));
        ok(line.as_bytes());
        // an incomplete long line is refused before it ends
        let long = format!("GET /{}", "x".repeat(9000));
        assert_eq!(status(long.as_bytes()), 414);
        let mut checked = false;
        assert_eq!(
            check_partial(
                long.as_bytes(),
                &mut RequestHead::default(),
                &LIMITS,
                &mut checked
            ),
            Err(HeadError::UriTooLong)
        );
        // 100 headers are fine, 101 are not
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..99 {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        ok(format!("{raw}\r\n").as_bytes());
        raw.push_str("X-last: v\r\n\r\n");
        assert_eq!(status(raw.as_bytes()), 431);
        // a header section over 64 KiB
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(64 * 1024)
        );
        assert_eq!(status(big.as_bytes()), 431);
        let partial = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(64 * 1024));
        assert_eq!(status(partial.as_bytes()), 431);
        // Content-Length over the maximum
        let limits = Limits {
            max_body: Some(10),
            ..LIMITS
        };
        let mut head = RequestHead::default();
        let res = parse(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
            &mut head,
            &limits,
        );
        assert_eq!(res, Err(HeadError::ContentTooLarge));
    }

    #[test]
    fn early_rejection_of_garbage() {
        let mut checked = false;
        assert!(check_partial(
            b"GET / HTTP/1.1\r\nHo",
            &mut RequestHead::default(),
            &LIMITS,
            &mut checked
        )
        .is_ok());
        assert!(checked);
        let mut checked = false;
        assert_eq!(
            check_partial(
                b"GET / HTTP/1.1 x\r\nHo",
                &mut RequestHead::default(),
                &LIMITS,
                &mut checked
            ),
            Err(HeadError::BadRequest("invalid line ending"))
        );
    }

    #[test]
    fn environ_joining_rules() {
        let head = ok(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nCookie: a=1\r\nx-a: 2\r\ncookie: b=2\r\nCookie2: c\r\nCOOKIE2: d\r\nx-auth_user: bob\r\nContent-Type: text/x\r\nContent-Length: 0\r\nX-L: caf\xe9\r\n\r\n");
        assert_eq!(env(&head, "x-a").as_deref(), Some("1,2"));
        assert_eq!(env(&head, "cookie").as_deref(), Some("a=1; b=2"));
        assert_eq!(env(&head, "cookie2").as_deref(), Some("c; d"));
        assert_eq!(env(&head, "x-auth_user"), None);
        assert_eq!(env(&head, "content-type"), None);
        assert_eq!(env(&head, "x-l").as_deref(), Some("caf\u{e9}"));
        assert_eq!(head.content_type, Some(8));
        head.prepare();
        let merged = head
            .headers
            .iter()
            .filter(|e| e.env.get() == EnvValue::Merged)
            .count();
        assert_eq!(merged, 3);
    }

    #[test]
    fn expect_and_upgrade() {
        let head =
            ok(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n");
        assert!(head.expect_continue);
        let head = ok(b"PUT / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
        assert!(!head.expect_continue);
        let head = ok(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
        assert!(!head.expect_continue, "no body, nothing to continue");
        assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n").upgrade);
        assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").upgrade);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").upgrade);
    }

    #[test]
    fn slot_store_is_reused() {
        let mut slots: Vec<httparse::Header<'static>> = Vec::with_capacity(24);
        let ptr = slots.as_ptr() as usize;
        let other: Vec<httparse::Header<'_>> = recycle(slots);
        slots = recycle(other);
        assert!(slots.capacity() >= 24);
        assert_eq!(
            slots.as_ptr() as usize,
            ptr,
            "in-place collection reuses the allocation"
        );
        let mut head = RequestHead::default();
        // more headers than the initial slots: parsed again with the full set
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..60 {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(
            parse(raw.as_bytes(), &mut head, &LIMITS),
            Ok(Some(raw.len()))
        );
        assert_eq!(head.headers.len(), 61);
        let mut checked = false;
        assert_eq!(
            check_partial(
                &raw.as_bytes()[..raw.len() - 2],
                &mut head,
                &LIMITS,
                &mut checked
            ),
            Ok(())
        );
    }

    #[test]
    fn completeness_scan() {
        assert!(may_be_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0));
        assert!(!may_be_complete(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        // a terminator split across reads is found when scanning from the previous end
        assert!(may_be_complete(raw, raw.len() - 1));
        assert!(may_be_complete(raw, raw.len() - 2));
        assert!(may_be_complete(b"GET /\n\n", 5));
    }
}
