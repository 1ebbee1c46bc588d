//! Driving httparse over the read buffer: completeness, the size limits, the checks of the
//! request line, and the copy of a complete head into the connection's [`RequestHead`].

use super::super::config::MAX_HEADERS;
use super::{fast, framing, target, HeadError, Limits, RequestHead, Span, Version};

pub(super) fn parser_config() -> httparse::ParserConfig {
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
pub(super) fn recycle<'b>(slots: Vec<httparse::Header<'_>>) -> Vec<httparse::Header<'b>> {
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
                Err(HeadError::HeaderSectionTooLarge)
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
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
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
    if res == Err(HeadError::TooManyHeaders) && slots.capacity() < MAX_HEADERS {
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
    if let Some(tokens) = fast::tokenize(buf, slots, MAX_HEADERS) {
        head.reset();
        head.buf.extend_from_slice(&buf[..tokens.len]);
        head.headers.reserve(slots.len());
        let request = Request {
            buf,
            len: tokens.len,
            method: tokens.method,
            target: tokens.target,
            minor: tokens.minor,
            headers: slots,
        };
        let res = check_head(&request, head, limits);
        slots.clear();
        return res;
    }
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
    let request = Request {
        buf,
        len,
        method,
        target,
        minor,
        headers: req.headers,
    };
    check_head(&request, head, limits)
}

/// A complete request head as httparse returned it: slices of the read buffer `buf`, whose first
/// `len` bytes are the head.
struct Request<'b> {
    buf: &'b [u8],
    len: usize,
    method: &'b str,
    target: &'b str,
    minor: u8,
    headers: &'b [httparse::Header<'b>],
}

/// The checks of a complete head after httparse (its bytes already copied into `head.buf`), and
/// its spans and flags. A frame of its own, so that this function's many locals are not on the
/// stack while httparse runs (the deepest point of a request: the coroutine stack pages it
/// touches stay resident).
#[inline(never)]
fn check_head(
    request: &Request<'_>,
    head: &mut RequestHead,
    limits: &Limits,
) -> Result<Option<usize>, HeadError> {
    let Request {
        buf,
        len,
        method,
        target,
        minor,
        headers,
    } = *request;
    let head_bytes = &buf[..len];

    // RFC 9112 2.2: "A recipient MAY recognize a single LF as a line terminator". We do not: every
    // LF must follow a CR, so that we never disagree with an intermediary on where a line ends.
    // httparse only lets LFs through as line ends (and every CR it accepted is followed by an
    // LF), so it is enough to look at the line ends: before each header name, at the end of the
    // head, and in the empty lines before the request line.
    // (the line ends before each header name are checked with the header fields)
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
        return Err(HeadError::HeaderSectionTooLarge);
    }

    head.method = Span::new(method_start, method_start + method.len());
    head.target = Span::new(target_start, target_end);
    head.version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    head.is_head = method == "HEAD";
    target::split(head, method.as_bytes(), target)?;
    framing::check_fields(head, head_bytes, headers, limits)?;
    Ok(Some(len))
}

/// The empty lines before the request line (httparse accepted them) are all `\r\n`, none a bare LF.
#[inline(never)]
fn only_crlf_lines(prefix: &[u8]) -> bool {
    prefix.chunks(2).all(|line| line == b"\r\n")
}
