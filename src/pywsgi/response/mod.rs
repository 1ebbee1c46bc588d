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
//!
//! - `validate.rs`: the arguments of `start_response`;
//! - `wire.rs`: the head as sent, and the server's canned responses;
//! - `encode.rs`: the body framing ([`Encoder`](encode::Encoder));
//! - `writer.rs`: [`StartResponse`] and [`Writer`], the callables the application gets.
//!
//! How far a response has got is one [`Phase`] in the shared link (the body reader needs it
//! too); the framing of its body is its encoder.

mod encode;
#[cfg(test)]
mod tests;
mod validate;
mod wire;
mod writer;

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::body::{AppError, Body, BodyKind};
use super::date::DateCache;
use super::head::{RequestHead, Version};
use super::io::{dead_error, Phase, Shared, WBUF_FLUSH_AT};

use self::encode::{Encoded, Encoder};
pub use self::validate::ResponseError;
use self::validate::Validated;
pub use self::writer::{StartResponse, Writer};
use crate::sendfile::COPY_CHUNK;

/// How a response failed after the application returned (or while it ran).
pub(crate) enum Failure {
    /// The application (or its body iterator) returned an error.
    App(AppError),
    /// The application broke the protocol (e.g. a body on a 304).
    Protocol(ResponseError),
    /// Writing to the client failed: the client is gone.
    Disconnect(io::Error),
}

/// What the response writer needs to know about the request it answers.
#[derive(Debug, Clone, Copy)]
struct Request {
    version: Version,
    is_head: bool,
    /// A `101 Switching Protocols` may answer it (an HTTP/1.1 upgrade request).
    upgrade_allowed: bool,
}

/// Per-connection response state; reset for each request by [`Response::begin`].
pub(crate) struct Response {
    link: Shared,
    pub(crate) date: DateCache,
    request: Request,
    /// The result of the last successful `start_response` (kept across requests: see
    /// [`Validated`]); the link's [`Phase`] says whether it belongs to this request.
    head: Validated,
    /// The framing of the body, once the head was sent.
    encoder: Encoder,
    /// Bytes of this response written to the connection (head included).
    bytes_sent: u64,
    /// The connection closes after this response.
    close: bool,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("code", &self.head.code)
            .field("phase", &self.phase())
            .field("encoder", &self.encoder)
            .field("bytes_sent", &self.bytes_sent)
            .field("close", &self.close)
            .finish()
    }
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
            request: Request {
                version: Version::Http11,
                is_head: false,
                upgrade_allowed: false,
            },
            head: Validated::default(),
            encoder: Encoder::NoBody,
            bytes_sent: 0,
            close: false,
        }
    }

    /// Resets the state for a new request.
    pub(crate) fn begin(&mut self, head: &RequestHead, keep_alive: bool) {
        self.request = Request {
            version: head.version,
            is_head: head.is_head,
            upgrade_allowed: head.upgrade && head.version == Version::Http11,
        };
        // (the validated status and headers stay: they are the `start` cache; the phase says
        // whether they belong to this request)
        self.bytes_sent = 0;
        self.close = !keep_alive;
        let mut link = self.link.borrow_mut();
        link.phase = link.phase.reset();
    }

    /// Resets for a canned response outside any request (no head was parsed).
    pub(crate) fn begin_reject(&mut self) {
        self.bytes_sent = 0;
        self.close = true;
        let mut link = self.link.borrow_mut();
        link.phase = link.phase.reset();
    }

    fn phase(&self) -> Phase {
        self.link.borrow().phase
    }

    /// Whether the head (or a canned response) was queued.
    pub(crate) fn head_sent(&self) -> bool {
        self.phase().head_sent()
    }

    /// The status code queued (0: none), for the access log.
    pub(crate) fn sent_code(&self) -> u16 {
        self.phase().code()
    }

    /// The status code of the last successful `start_response` of this request (0: none).
    fn status_code(&self) -> u16 {
        if self.phase().started() {
            self.head.code
        } else {
            0
        }
    }

    /// Bytes of this response written to the connection (head included).
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Whether the connection closes after this response.
    pub(crate) fn closes(&self) -> bool {
        self.close
    }

    /// Makes this the connection's last response.
    pub(crate) fn set_close(&mut self) {
        self.close = true;
    }

    /// `start_response(status, headers)`. Validates everything before changing any state, so a
    /// failed call leaves a previous successful one in force.
    pub(crate) fn start(
        &mut self,
        status: &str,
        headers: &[(&str, &str)],
    ) -> Result<(), ResponseError> {
        let mut link = self.link.borrow_mut();
        if link.phase.head_sent() {
            return Err(ResponseError::HeadersAlreadySent);
        }
        self.head
            .validate(status, headers, self.request.upgrade_allowed)?;
        link.phase = link.phase.start();
        Ok(())
    }

    /// Writes body bytes in the current framing (sending the head first if needed).
    /// `flush`: write them out now (streaming) rather than batching.
    pub(crate) fn write_data(&mut self, data: &[u8], flush: bool) -> Result<(), Failure> {
        let phase = self.phase();
        if !phase.started() {
            return Err(Failure::Protocol(ResponseError::NotStarted));
        }
        if !phase.head_sent() {
            let code = self.head.code;
            if !data.is_empty() && (code == 204 || code == 304) {
                return Err(Failure::Protocol(ResponseError::NoBodyAllowed(code)));
            }
            self.send_head(None);
        }
        let mut link = self.link.borrow_mut();
        if link.phase.is_dead() {
            return Err(Failure::Disconnect(dead_error()));
        }
        let (res, added) = match self.encoder.encode(&mut link, data) {
            Encoded::Queued(added, res) => (res, added),
            Encoded::NotAllowed => {
                return Err(Failure::Protocol(ResponseError::NoBodyAllowed(
                    self.head.code,
                )))
            }
            Encoded::TooLong {
                queued,
                declared,
                actual,
            } => {
                self.close = true;
                self.bytes_sent += queued;
                return Err(Failure::Protocol(ResponseError::LengthMismatch {
                    declared,
                    actual,
                }));
            }
        };
        self.bytes_sent += added;
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
        let mut link = self.link.borrow_mut();
        match self.encoder.finish(&mut link) {
            Ok(added) => {
                self.bytes_sent += added;
                Ok(())
            }
            Err((declared, actual)) => {
                self.close = true;
                Err(Failure::Protocol(ResponseError::LengthMismatch {
                    declared,
                    actual,
                }))
            }
        }
    }

    /// Sends the application's returned body (gevent: `process_result`), then ends it.
    pub(crate) fn send_body(&mut self, body: Body) -> Result<(), Failure> {
        let phase = self.phase();
        if !phase.started() {
            return Err(Failure::Protocol(ResponseError::NotStarted));
        }
        let (kind, _close_guard) = body.into_parts();
        let kind = match kind {
            BodyKind::Stream(iter) => return self.send_stream(iter),
            BodyKind::File { file, offset, len } => return self.send_file(&file, offset, len),
            buffered => buffered,
        };
        let (single, list): (&[u8], &[Vec<u8>]) = match &kind {
            BodyKind::Stream(_) | BodyKind::File { .. } | BodyKind::Empty => (&[], &[]),
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
        if !phase.head_sent() {
            let code = self.head.code;
            if total > 0 && (code == 204 || code == 304) {
                return Err(Failure::Protocol(ResponseError::NoBodyAllowed(code)));
            }
            if let Some(declared) = self.head.app.length {
                let checked = code >= 200 && code != 204 && code != 304;
                if checked && !self.request.is_head && declared != total {
                    return Err(Failure::Protocol(ResponseError::LengthMismatch {
                        declared,
                        actual: total,
                    }));
                }
            }
            self.send_head(Some(total));
            // fast path: a small buffered body right behind its head, in the same buffer
            if self.encoder == Encoder::length(total) && total < 4096 {
                let mut link = self.link.borrow_mut();
                if !link.phase.is_dead() {
                    if !single.is_empty() {
                        link.wbuf.extend_from_slice(single);
                    }
                    for part in list {
                        link.wbuf.extend_from_slice(part);
                    }
                    self.bytes_sent += total;
                    self.encoder = Encoder::Length {
                        remaining: 0,
                        declared: total,
                    };
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

    /// [`Response::send_body`] for a streamed body: each chunk written and flushed as it comes.
    fn send_stream(
        &mut self,
        iter: Box<dyn Iterator<Item = Result<Vec<u8>, AppError>>>,
    ) -> Result<(), Failure> {
        if self.request.is_head {
            // a HEAD response never has a body: do not even run the iterator
            if !self.head_sent() {
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
        if !self.head_sent() {
            // an empty stream: the length is known after all
            self.send_head(Some(0));
        }
        self.finish()
    }

    /// [`Response::send_body`] for a file body: `len` bytes of `file` from `offset`, with the
    /// connection's `send_file` right behind the head (Content-Length: `len`).
    fn send_file(&mut self, file: &File, offset: u64, len: u64) -> Result<(), Failure> {
        if !self.head_sent() {
            let code = self.head.code;
            if code == 304 {
                // the file is the representation a 200 would send: none on a 304
                self.send_head(None);
                return self.finish();
            }
            if len > 0 && code == 204 {
                return Err(Failure::Protocol(ResponseError::NoBodyAllowed(code)));
            }
            if let Some(declared) = self.head.app.length {
                let checked = code >= 200 && code != 204;
                if checked && !self.request.is_head && declared != len {
                    return Err(Failure::Protocol(ResponseError::LengthMismatch {
                        declared,
                        actual: len,
                    }));
                }
            }
            self.send_head(Some(len));
            match self.encoder {
                Encoder::HeadOnly | Encoder::NoBody => return self.finish(),
                Encoder::Length {
                    remaining,
                    declared,
                } if remaining == len => {
                    let res = self.link.borrow_mut().send_file(file, offset, len);
                    let sent = res.map_err(Failure::Disconnect)?;
                    self.bytes_sent += sent;
                    self.encoder = Encoder::Length {
                        remaining: len - sent,
                        declared,
                    };
                    // (a short file: finish() reports the mismatch and closes)
                    return self.finish();
                }
                _ => {}
            }
        }
        // the head went out before (through `write`), in whatever framing it chose
        self.copy_file(file, offset, len)
    }

    /// Sends a file body through the current framing, a bounded piece at a time.
    fn copy_file(&mut self, file: &File, offset: u64, len: u64) -> Result<(), Failure> {
        let chunk = usize::try_from(len).map_or(COPY_CHUNK, |len| len.min(COPY_CHUNK));
        let mut buf = vec![0u8; chunk];
        let mut sent = 0u64;
        while sent < len {
            let want = usize::try_from(len - sent).map_or(buf.len(), |left| left.min(buf.len()));
            let n = match file.read_at(&mut buf[..want], offset + sent) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(Failure::App(err.into())),
            };
            self.write_data(&buf[..n], false)?;
            sent += n as u64;
        }
        self.finish()
    }

    /// Flushes the output buffer.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.link.borrow_mut().flush()
    }
}
