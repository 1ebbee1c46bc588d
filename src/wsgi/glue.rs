//! The may_minihttp service: each request may_minihttp parsed is answered by the pywsgi engine
//! run in memory, and its response handed back to may_minihttp whole.
//!
//! Per request:
//!
//! 1. The request head is written back out as bytes (`METHOD target HTTP/1.x`, then every header
//!    field line as may_minihttp parsed it) and the body is read in full (Content-Length only; a
//!    request with `Transfer-Encoding` is refused with 501 before anything is read, see below).
//! 2. A [`WsgiHandler`] serves that one request from memory ([`MemConn`]): its strict head
//!    parser builds the [`Environ`](crate::pywsgi::Environ) (so every environ key, every limit
//!    and every check is pywsgi's), the application runs with pywsgi's `StartResponse`, errors
//!    and panics become pywsgi's 500, and the response is written into memory.
//! 3. That response is taken apart again: status, header lines (minus `Date` and
//!    `Content-Length`, which may_minihttp writes itself, and `Transfer-Encoding`), and the body
//!    (a chunked one decoded). A response that did not complete (an error after the head, a
//!    body shorter than its Content-Length) becomes a clean 500: nothing was sent yet.
//!
//! may_minihttp keeps a connection open until the client closes it, whatever the request says.
//! When pywsgi decides a connection must close (`Connection: close`, HTTP/1.0 without
//! keep-alive, any refused request), this service shuts the socket's read side down: may_minihttp
//! still writes the responses of its batch, then reads end-of-file and closes. Requests already
//! pipelined behind it in the same batch are answered `400` without reaching the application.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

use super::fd;
use super::server::{ConnState, Phase, Run};
use crate::pywsgi::{Connection, WsgiHandler};

/// The in-memory exchange of one request: what the engine reads, what it writes.
#[derive(Default)]
struct MemIo {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

/// The [`Connection`] the pywsgi engine serves a request on: reads the request from memory
/// (then end-of-file), writes the response to memory.
struct MemConn {
    io: Arc<Mutex<MemIo>>,
    run: Arc<Run>,
}

fn lock(io: &Mutex<MemIo>) -> MutexGuard<'_, MemIo> {
    io.lock().unwrap_or_else(|p| p.into_inner())
}

impl Read for MemConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut io = lock(&self.io);
        let start = io.pos.min(io.input.len());
        let n = buf.len().min(io.input.len() - start);
        buf[..n].copy_from_slice(&io.input[start..start + n]);
        io.pos = start + n;
        Ok(n)
    }
}

impl Write for MemConn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.io).output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Connection for MemConn {
    fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    fn set_write_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    fn server_closing(&self) -> bool {
        self.run.closing.load(Ordering::Acquire)
    }
}

/// The factory may_minihttp's accept loop asks for one [`Service`] per connection.
pub(super) struct Factory {
    pub(super) run: Arc<Run>,
}

impl HttpServiceFactory for Factory {
    type Service = Service;

    fn new_service(&self, id: usize) -> Service {
        // may_minihttp 0.1.11 passes the connection's file descriptor as `id` (unix).
        let fd = id as RawFd;
        let state = self.run.register(fd);
        Service {
            engine: None,
            run: Arc::clone(&self.run),
            fd,
            state,
            peer: None,
            first: true,
            closing: false,
            io: Arc::new(Mutex::new(MemIo::default())),
            scratch: Vec::new(),
            lines: String::new(),
            body: Vec::new(),
        }
    }
}

/// The pywsgi engine of one connection, kept from one request to the next (its buffers, its
/// `start_response` cache and its date cache are reused, as on a pywsgi connection).
struct Engine(WsgiHandler<'static>);

#[allow(unsafe_code)]
// SAFETY: the handler's `Rc`s (the link shared by its response writer and its body reader)
// all point inside the handler itself: none is ever cloned out of it, so moving the whole
// handler to another thread moves every owner of those `Rc`s together, as pywsgi itself does
// when a connection's coroutine migrates between may's workers. It is only ever used by the
// one coroutine that serves the connection. Its other parts (the `MemConn`, the borrowed
// configuration and application) are `Send + Sync`.
unsafe impl Send for Engine {}

/// One connection's service (lives on the connection's coroutine, as long as the connection).
pub(super) struct Service {
    /// Declared first, so dropped before `run`, which it borrows (see [`Service::engine`]).
    engine: Option<Engine>,
    run: Arc<Run>,
    /// The connection's socket: open for as long as this service exists (may_minihttp drops the
    /// service before the stream it serves).
    fd: RawFd,
    state: Arc<ConnState>,
    peer: Option<SocketAddr>,
    first: bool,
    /// The connection closes after the current batch: requests still arriving are refused.
    closing: bool,
    io: Arc<Mutex<MemIo>>,
    /// The request as the engine reads it (head, then body).
    scratch: Vec<u8>,
    /// The reason phrase and header lines of the response being answered: may_minihttp takes
    /// them as `&'static str` (see [`Service::call`]).
    lines: String,
    body: Vec<u8>,
}

impl Drop for Service {
    fn drop(&mut self) {
        // (a std mutex held for a map removal: fine while unwinding too)
        self.run.deregister(self.fd, &self.state);
    }
}

/// What the client gets.
struct Reply {
    code: u16,
    /// The reason phrase: a literal, or `lines[..reason_end]`.
    reason: Reason,
    /// `lines[reason_end..]`: the header lines, CRLF-separated (no final CRLF).
    has_headers: bool,
    close: bool,
}

enum Reason {
    Static(&'static str),
    InLines(usize),
}

impl Reply {
    /// A response of this layer's own: no body, `Connection: close`.
    fn refuse(code: u16, reason: &'static str) -> Reply {
        Reply {
            code,
            reason: Reason::Static(reason),
            has_headers: false,
            close: true,
        }
    }
}

impl HttpService for Service {
    fn call(&mut self, req: Request<'_, '_, '_>, rsp: &mut Response<'_>) -> io::Result<()> {
        // may_minihttp encodes the `Response` of the previous call before it parses the next
        // request and makes a new `Response` (each borrows the connection's one body buffer
        // mutably), so nothing refers to `lines` or `body` any more: they are free to reuse.
        self.lines.clear();
        self.body.clear();
        if self.first {
            self.first = false;
            // SAFETY: `fd` is this service's connection, open while the service exists.
            #[allow(unsafe_code)]
            unsafe {
                fd::set_nodelay(self.fd);
                self.peer = fd::peer_addr(self.fd);
            }
        }
        let reply = if self.closing {
            Reply::refuse(400, "Bad Request")
        } else {
            self.state.set(Phase::Body, &self.run);
            let reply = self.serve(req);
            self.state.set(Phase::Idle, &self.run);
            reply
        };
        let reason: &str = match reply.reason {
            Reason::Static(reason) => reason,
            Reason::InLines(end) => &self.lines[..end],
        };
        #[allow(unsafe_code)]
        // SAFETY: `lines` belongs to this service, which outlives the response (may_minihttp
        // drops the service after the connection loop), and it is not touched again before
        // the next `call`, which may_minihttp makes only after it has encoded (and dropped)
        // this response (see the top of this function). may_minihttp's version is pinned.
        let reason = unsafe { fd::until_encoded(reason) };
        rsp.status_code(usize::from(reply.code), reason);
        if reply.close {
            rsp.header("Connection: close");
        }
        if reply.has_headers {
            let end = match reply.reason {
                Reason::InLines(end) => end,
                Reason::Static(_) => 0,
            };
            #[allow(unsafe_code)]
            // SAFETY: as for the reason phrase above.
            let block = unsafe { fd::until_encoded(&self.lines[end..]) };
            // all lines as one "header": may_minihttp writes "\r\n" + it, and has room for 16
            rsp.header(block);
        }
        if !self.body.is_empty() {
            rsp.body_mut().extend_from_slice(&self.body);
        }
        if reply.close && !self.closing {
            self.closing = true;
            // may_minihttp writes this batch's responses, then reads end-of-file and closes
            #[allow(unsafe_code)]
            // SAFETY: `fd` is this service's connection, open while the service exists.
            unsafe {
                fd::shutdown(self.fd, Shutdown::Read)
            };
        }
        Ok(())
    }
}

impl Service {
    /// The connection's engine, made on its first request.
    fn engine(&mut self) -> &mut WsgiHandler<'static> {
        let (run, io, peer) = (&self.run, &self.io, self.peer);
        let Engine(handler) = self.engine.get_or_insert_with(|| {
            #[allow(unsafe_code)]
            // SAFETY: the `Run` is kept alive by `self.run` (an `Arc`: its target never moves)
            // for as long as this service exists, and `engine`, the only holder of this
            // reference (the handler keeps it private), is declared before `run` and so is
            // dropped before it.
            let shared: &'static Run = unsafe { &*Arc::as_ptr(run) };
            let conn = MemConn {
                io: Arc::clone(io),
                run: Arc::clone(run),
            };
            Engine(WsgiHandler::new(conn, peer, &shared.config, &*shared.app))
        });
        handler
    }

    /// This layer's refusal of a request (logged at INFO, as pywsgi logs its own).
    fn refuse(&self, code: u16, reason: &'static str, why: &'static str) -> Reply {
        let peer = self.peer.map(|p| p.ip().to_string());
        slog::info!(self.run.config.base.errors, "invalid request";
            "peer" => peer.as_deref().unwrap_or("-"), "status" => code, "reason" => why);
        Reply::refuse(code, reason)
    }

    /// Reads the request's body, runs the engine on it, takes its response apart.
    fn serve(&mut self, req: Request<'_, '_, '_>) -> Reply {
        let is_head = req.method() == "HEAD";
        self.scratch.clear();
        let buf = &mut self.scratch;
        buf.extend_from_slice(req.method().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(req.path().as_bytes());
        buf.extend_from_slice(if req.version() == 0 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        let mut length: Option<&[u8]> = None;
        let mut lengths = 0;
        for header in req.headers() {
            if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // may_minihttp reads Content-Length bodies only: a chunked body would be parsed
                // as the next request (request smuggling). Refuse before reading anything.
                return self.refuse(
                    501,
                    "Not Implemented",
                    "Transfer-Encoding (only Content-Length bodies)",
                );
            }
            if header.name.eq_ignore_ascii_case("content-length") {
                lengths += 1;
                length = Some(header.value);
            }
            buf.extend_from_slice(header.name.as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(header.value);
            buf.extend_from_slice(b"\r\n");
        }
        buf.extend_from_slice(b"\r\n");
        // may_minihttp frames the body by the first Content-Length and panics on a value that
        // `usize::from_str` refuses: only digits reach it, and only a single one.
        let length = match (lengths, length) {
            (0, _) | (_, None) => 0,
            (1, Some(value)) => match parse_length(value) {
                Some(n) if n > self.run.max_body => {
                    return self.refuse(
                        413,
                        "Content Too Large",
                        "request body larger than the maximum",
                    )
                }
                Some(n) => n,
                None => return self.refuse(400, "Bad Request", "invalid Content-Length"),
            },
            _ => return self.refuse(400, "Bad Request", "repeated Content-Length"),
        };
        if length > 0 {
            let head_len = buf.len();
            // (the body reader drains what is left when dropped; nothing is left here)
            let res = req.body().take(length).read_to_end(buf);
            let complete = (buf.len() - head_len) as u64 == length;
            if res.is_err() || !complete {
                // the client is gone (or broke the connection) in the middle of its body
                return self.refuse(
                    400,
                    "Bad Request",
                    "connection ended inside the request body",
                );
            }
        }
        self.state.set(Phase::App, &self.run);
        {
            let mut io = lock(&self.io);
            std::mem::swap(&mut io.input, &mut self.scratch);
            io.pos = 0;
            io.output.clear();
        }
        let keep_alive = self.engine().serve_buffered();
        let mut io = lock(&self.io);
        std::mem::swap(&mut io.input, &mut self.scratch);
        let reply = take_apart(&io.output, is_head, &mut self.lines, &mut self.body);
        io.output.clear();
        drop(io);
        match reply {
            Some(mut reply) => {
                reply.close |= !keep_alive;
                reply
            }
            None => {
                self.lines.clear();
                self.body.clear();
                slog::error!(self.run.config.base.errors,
                    "the response did not complete; answered 500 instead";
                    "peer" => self.peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "-".into()));
                Reply::refuse(500, "Internal Server Error")
            }
        }
    }
}

/// A Content-Length value pywsgi and may_minihttp both read the same way: 1 to 19 ASCII digits.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Splits the engine's response (`out`) into the reply, its reason phrase and header lines
/// (into `lines`) and its body (into `body`). `None`: the response is incomplete or not one
/// this server can send (an upgrade); the caller answers 500.
fn take_apart(out: &[u8], is_head: bool, lines: &mut String, body: &mut Vec<u8>) -> Option<Reply> {
    let mut at = 0;
    let (code, head_end) = loop {
        let rest = out.get(at..)?;
        let end = blank_line(rest)?;
        let code = status_code(rest)?;
        if (100..200).contains(&code) && code != 101 {
            // an interim response (100 Continue): may_minihttp cannot send one in its place
            at += end + 4;
            continue;
        }
        break (code, at + end);
    };
    if code == 101 {
        return None;
    }
    let head = std::str::from_utf8(&out[at..head_end]).ok()?;
    // (the engine ends every line with CRLF and allows no CR or LF inside one)
    let mut head_lines = head
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let status_line = head_lines.next()?;
    // "HTTP/1.1 NNN reason"
    let reason = status_line.get(13..).unwrap_or("");
    lines.push_str(reason);
    let reason_end = lines.len();
    let (mut length, mut chunked, mut close) = (None, false, false);
    for line in head_lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim_start();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().ok()?);
            continue;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
            continue;
        }
        if name.eq_ignore_ascii_case("date") {
            continue;
        }
        if name.eq_ignore_ascii_case("connection") {
            // (the reply's own `Connection: close` line replaces it)
            close |= value.eq_ignore_ascii_case("close");
            if close {
                continue;
            }
        }
        if lines.len() > reason_end {
            lines.push_str("\r\n");
        }
        lines.push_str(line);
    }
    let rest = &out[head_end + 4..];
    let bodiless = is_head || code == 204 || code == 304;
    if !bodiless {
        if chunked {
            crate::pywsgi::__private::decode_chunked(rest, rest.len().max(1), body)?;
        } else if let Some(length) = length {
            if rest.len() != length {
                return None;
            }
            body.extend_from_slice(rest);
        } else {
            // close-delimited (a streamed body to HTTP/1.0): everything after the head
            body.extend_from_slice(rest);
        }
    }
    Some(Reply {
        code,
        reason: Reason::InLines(reason_end),
        has_headers: lines.len() > reason_end,
        close,
    })
}

/// The status code of a response starting at `head` (`HTTP/1.1 NNN`).
fn status_code(head: &[u8]) -> Option<u16> {
    let digits = head.get(9..12)?;
    if !head.starts_with(b"HTTP/1.") || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Where the first `\r\n\r\n` of `head` starts.
fn blank_line(head: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = head.get(from..)?.iter().position(|&b| b == b'\n') {
        let at = from + pos;
        if at >= 3 && &head[at - 3..=at] == b"\r\n\r\n" {
            return Some(at - 3);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apart(out: &[u8], is_head: bool) -> Option<(u16, String, Vec<u8>, bool)> {
        let (mut lines, mut body) = (String::new(), Vec::new());
        let reply = take_apart(out, is_head, &mut lines, &mut body)?;
        Some((reply.code, lines, body, reply.close))
    }

    #[test]
    fn lengths() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"42"), Some(42));
        assert_eq!(parse_length(b"+5"), None);
        assert_eq!(parse_length(b"5 "), None);
        assert_eq!(parse_length(b""), None);
        assert_eq!(parse_length(b"99999999999999999999"), None);
        assert_eq!(
            parse_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
    }

    #[test]
    fn responses_taken_apart() {
        let out = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nDate: x\r\nContent-Length: 3\r\n\r\nabc";
        let (code, lines, body, close) = apart(out, false).unwrap();
        assert_eq!((code, body.as_slice(), close), (404, &b"abc"[..], false));
        assert_eq!(lines, "Not FoundContent-Type: text/html");
        // chunked, decoded
        let out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (code, lines, body, _) = apart(out, false).unwrap();
        assert_eq!(
            (code, lines.as_str(), body.as_slice()),
            (200, "OK", &b"abcde"[..])
        );
        // an unfinished chunked stream or a short body: none (the caller answers 500)
        assert!(apart(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
            false
        )
        .is_none());
        assert!(apart(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", false).is_none());
        // HEAD: the length is announced, no body follows
        let (_, _, body, _) = apart(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert!(body.is_empty());
        // interim 100 skipped; Connection: close noted and dropped (the reply adds its own)
        let out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let (code, lines, _, close) = apart(out, false).unwrap();
        assert_eq!((code, lines.as_str(), close), (400, "Bad Request", true));
        // upgrades cannot be served
        assert!(apart(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
            false
        )
        .is_none());
        assert!(apart(b"", false).is_none());
    }
}
