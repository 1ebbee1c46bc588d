//! The header fields that frame a request (RFC 9112): Content-Length and Transfer-Encoding
//! (section 6), Host (section 3.2), Connection (persistence, upgrade) and Expect.

use super::super::syntax::{is_host, list_elements, name_is};
use super::{Framing, HeadError, HeaderEntry, Limits, RequestHead, Span, Version};

/// Records the header fields of a complete head (`bytes`, already copied into `head.buf`) as
/// spans, and applies the framing rules to them: the body's framing, keep-alive, `100-continue`,
/// upgrade, or the error that rejects the request.
pub(super) fn check_fields(
    head: &mut RequestHead,
    bytes: &[u8],
    headers: &[httparse::Header<'_>],
    limits: &Limits,
) -> Result<(), HeadError> {
    let head_bytes = bytes;
    let len = bytes.len();
    let base = bytes.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize).saturating_sub(base).min(len);
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
            9 if name_is(name.as_bytes(), b"forwarded") => head.forwarded = true,
            15 if name_is(name.as_bytes(), b"x-forwarded-for") => head.forwarded = true,
            17 if name_is(name.as_bytes(), b"x-forwarded-proto") => head.forwarded = true,
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
    // environ; see `EnvValues` in environ.rs.)

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
    Ok(())
}

// The bits of `check_fields`' `flags`.
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
