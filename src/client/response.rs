//! Reading a response: the head (bounded, parsed by httparse), then the body framed by
//! Content-Length, chunked coding or the close of the connection (RFC 9112 section 6.3).

use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use super::error::{Error, Result};
use super::pool::{Conn, Pool, PoolKey};
use crate::pywsgi::chunked::ChunkedDecoder;

/// The most header fields a response may have.
pub const MAX_RESPONSE_HEADERS: usize = 100;

/// Interim (1xx) responses skipped before the final one, at most.
const MAX_INTERIM_RESPONSES: usize = 8;

/// How the body ends.
#[derive(Debug)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304, `Content-Length: 0`), or it has been read.
    Done,
    /// `remaining` more bytes.
    Length { remaining: u64, total: u64 },
    /// Chunked coding.
    Chunked(Box<ChunkedDecoder>),
    /// Until the upstream closes the connection.
    Close,
}

/// Where the connection goes when the body is finished.
pub(crate) struct Release {
    pub(crate) pool: Arc<Pool>,
    pub(crate) key: PoolKey,
    /// Keep-alive was agreed (HTTP/1.1 without `Connection: close`).
    pub(crate) reusable: bool,
}

/// An HTTP response: status, headers and the body as a [`Read`]er.
///
/// The body is read from the connection as it is consumed; once all of it is read, the
/// connection goes back to the client's pool for the next request to the same host (when the
/// upstream allows keep-alive). Dropping a response before the end of its body closes the
/// connection. Reading the body past the client's `max_body_size`, or a malformed body, fails
/// with an `io::Error` (`InvalidData`; `TimedOut` for a read timeout) that wraps the client's
/// [`Error`](super::Error).
pub struct Response {
    status: u16,
    reason: String,
    version: u8,
    headers: Vec<(String, String)>,
    url: String,
    context: String,
    conn: Option<Conn>,
    framing: Framing,
    max_body: u64,
    delivered: u64,
    release: Option<Release>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .finish_non_exhaustive()
    }
}

fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// Whether a comma-separated header list contains `token` (case-insensitive).
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The parsed head: status, reason, minor version, headers, and its length in the buffer.
type Head = (u16, String, u8, Vec<(String, String)>, usize);

/// Parse a complete head from `buf`, `None` if more bytes are needed.
fn parse_head(buf: &[u8], context: &str) -> Result<Option<Head>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Status) | Err(httparse::Error::Version) => {
            let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
            let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
            return Err(Error::invalid(
                context,
                format!("bad status line {shown:?}"),
            ));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::invalid(
                context,
                format!("more than {MAX_RESPONSE_HEADERS} header fields"),
            ))
        }
        Err(err) => return Err(Error::invalid(context, format!("bad head: {err}"))),
    };
    let status = resp.code.unwrap_or(0);
    if !(100..=999).contains(&status) {
        return Err(Error::invalid(context, format!("bad status code {status}")));
    }
    let headers = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    Ok(Some((
        status,
        resp.reason.unwrap_or("").to_owned(),
        resp.version.unwrap_or(1),
        headers,
        len,
    )))
}

/// The body framing of a response to `method` (RFC 9112 section 6.3), strict: conflicting or
/// malformed length information is an error, not a guess.
fn framing(
    method: &str,
    status: u16,
    headers: &[(String, String)],
    context: &str,
) -> Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        return Ok(Framing::Done);
    }
    let te: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let cl: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    if !te.is_empty() {
        // RFC 9112 6.3 (3): a message with both "ought to be handled as an error"
        if !cl.is_empty() {
            return Err(Error::invalid(
                context,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        return match te.last() {
            Some(last) if last.eq_ignore_ascii_case("chunked") => {
                if te
                    .iter()
                    .filter(|t| t.eq_ignore_ascii_case("chunked"))
                    .count()
                    > 1
                {
                    return Err(Error::invalid(context, "chunked applied twice"));
                }
                Ok(Framing::Chunked(Box::default()))
            }
            // RFC 9112 6.3 (4, response): not chunked last: read until close
            _ => Ok(Framing::Close),
        };
    }
    if let Some(first) = cl.first() {
        if cl.iter().any(|v| v != first) {
            return Err(Error::invalid(context, "conflicting Content-Length values"));
        }
        if first.is_empty() || first.len() > 19 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid(
                context,
                format!("bad Content-Length {first:?}"),
            ));
        }
        let total: u64 = first
            .parse()
            .map_err(|_| Error::invalid(context, "bad Content-Length"))?;
        return Ok(if total == 0 {
            Framing::Done
        } else {
            Framing::Length {
                remaining: total,
                total,
            }
        });
    }
    Ok(Framing::Close)
}

pub(crate) struct ReadLimits {
    pub(crate) max_header: usize,
    pub(crate) max_body: u64,
}

/// Read one response (skipping interim 1xx ones) from `conn`.
pub(crate) fn read_response(
    mut conn: Conn,
    method: &str,
    url: String,
    limits: &ReadLimits,
    release: Release,
) -> Result<Response> {
    let context = format!("{method} {url}");
    let mut interim = 0;
    loop {
        let head = loop {
            if let Some(head) = parse_head(conn.buffered(), &context)? {
                break head;
            }
            if conn.buffered().len() >= limits.max_header {
                return Err(Error::HeadersTooLarge {
                    context,
                    limit: limits.max_header,
                });
            }
            let n = conn
                .fill(limits.max_header - conn.buffered().len())
                .map_err(|err| Error::io(format!("{context}: reading the response head"), err))?;
            if n == 0 {
                let reason = if conn.buffered().is_empty() {
                    "connection closed before any response".to_owned()
                } else {
                    format!(
                        "connection closed inside the response head ({} bytes)",
                        conn.buffered().len()
                    )
                };
                return Err(Error::invalid(&context, reason));
            }
        };
        let (status, reason, version, headers, len) = head;
        conn.consume(len);
        if (100..200).contains(&status) && status != 101 {
            // an interim response (100 Continue, 103 Early Hints): the real one follows
            interim += 1;
            if interim > MAX_INTERIM_RESPONSES {
                return Err(Error::invalid(
                    &context,
                    format!("more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"),
                ));
            }
            continue;
        }
        let framing = framing(method, status, &headers, &context)?;
        let reusable = release.reusable
            && version == 1
            && status != 101
            && !has_token(&headers, "connection", "close")
            && !matches!(framing, Framing::Close);
        let mut response = Response {
            status,
            reason,
            version,
            headers,
            url,
            context,
            conn: Some(conn),
            framing,
            max_body: limits.max_body,
            delivered: 0,
            release: Some(Release {
                reusable,
                ..release
            }),
        };
        response.finish_if_done();
        return Ok(response);
    }
}

impl Response {
    /// The status code, e.g. 200.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase as the upstream sent it (may be empty).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The status line's status and reason, e.g. `"404 Not Found"` (for `start_response`).
    pub fn status_line(&self) -> String {
        if self.reason.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {}", self.status, self.reason)
        }
    }

    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    pub fn http_version(&self) -> &'static str {
        if self.version == 0 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// Every header field, in order, names as sent, values trimmed (non-UTF-8 bytes replaced).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The URL this response came from (after redirects, if the client follows them).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body length announced by `Content-Length`, if any.
    pub fn content_length(&self) -> Option<u64> {
        header_value(&self.headers, "content-length").and_then(|v| v.parse().ok())
    }

    /// Read the whole body (at most the client's `max_body_size`).
    ///
    /// # Errors
    /// A read error or timeout, malformed framing, an early close, or a body over the limit.
    pub fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.read_body(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Read the whole body as text (invalid UTF-8 replaced).
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes).
    pub fn text(self) -> Result<String> {
        let bytes = self.bytes()?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        })
    }

    fn early_close(&self) -> Error {
        let reason = match &self.framing {
            Framing::Length { remaining, total } => format!(
                "connection closed after {} of {total} body bytes",
                total - remaining
            ),
            _ => "connection closed inside the chunked body".to_owned(),
        };
        Error::invalid(&self.context, reason)
    }

    /// Give the connection back (keep-alive) or drop it, once the body is complete.
    fn finish_if_done(&mut self) {
        if !matches!(self.framing, Framing::Done) {
            return;
        }
        let (Some(conn), Some(release)) = (self.conn.take(), self.release.take()) else {
            return;
        };
        // bytes after the end of the response are a protocol error: never reuse that connection
        if release.reusable && conn.buffered().is_empty() {
            release.pool.put(release.key, conn);
        }
    }

    fn count(&mut self, n: usize) -> Result<usize> {
        self.delivered += n as u64;
        if self.delivered > self.max_body {
            self.conn = None;
            self.framing = Framing::Done;
            return Err(Error::BodyTooLarge {
                context: self.context.clone(),
                limit: self.max_body,
            });
        }
        Ok(n)
    }

    fn read_body(&mut self, out: &mut [u8]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(0);
            };
            match &mut self.framing {
                Framing::Done => {
                    self.finish_if_done();
                    return Ok(0);
                }
                Framing::Length { remaining, .. } => {
                    if conn.buffered().is_empty() {
                        let want = (*remaining).min(64 * 1024) as usize;
                        let n = conn.fill(want).map_err(|err| {
                            Error::io(format!("{}: reading the body", self.context), err)
                        })?;
                        if n == 0 {
                            let err = self.early_close();
                            self.conn = None;
                            return Err(err);
                        }
                    }
                    let take = conn
                        .buffered()
                        .len()
                        .min(out.len())
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    out[..take].copy_from_slice(&conn.buffered()[..take]);
                    conn.consume(take);
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        self.framing = Framing::Done;
                        self.finish_if_done();
                    }
                    return self.count(take);
                }
                Framing::Chunked(decoder) => {
                    let used = decoder.decode_framing(conn.buffered()).map_err(|err| {
                        Error::invalid(&self.context, format!("bad chunked body: {err}"))
                    });
                    let used = match used {
                        Ok(used) => used,
                        Err(err) => {
                            self.conn = None;
                            return Err(err);
                        }
                    };
                    conn.consume(used);
                    if decoder.is_done() {
                        self.framing = Framing::Done;
                        self.finish_if_done();
                        return Ok(0);
                    }
                    let want = decoder.data_remaining();
                    if want > 0 && !conn.buffered().is_empty() {
                        let take = conn
                            .buffered()
                            .len()
                            .min(out.len())
                            .min(usize::try_from(want).unwrap_or(usize::MAX));
                        out[..take].copy_from_slice(&conn.buffered()[..take]);
                        conn.consume(take);
                        decoder.consume_data(take);
                        return self.count(take);
                    }
                    let n = conn.fill(64 * 1024).map_err(|err| {
                        Error::io(format!("{}: reading the body", self.context), err)
                    })?;
                    if n == 0 {
                        let err = self.early_close();
                        self.conn = None;
                        return Err(err);
                    }
                }
                Framing::Close => {
                    if conn.buffered().is_empty() {
                        let n = conn.fill(64 * 1024).map_err(|err| {
                            Error::io(format!("{}: reading the body", self.context), err)
                        })?;
                        if n == 0 {
                            self.framing = Framing::Done;
                            self.conn = None;
                            return Ok(0);
                        }
                    }
                    let take = conn.buffered().len().min(out.len());
                    out[..take].copy_from_slice(&conn.buffered()[..take]);
                    conn.consume(take);
                    return self.count(take);
                }
            }
        }
    }
}

impl Read for Response {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_body(buf).map_err(io::Error::from)
    }
}
