//! [`Input`]: the request body as the application reads it (`environ['wsgi.input']`).

use std::fmt;
use std::io::{self, BufRead, Read};
use std::time::Duration;

use super::chunked::{ChunkError, ChunkedDecoder};
use super::conn::is_timeout;
use super::head::Framing;
use super::io::{ReadBuf, Shared};

/// Read-buffer size used while a large body is being read (the buffer shrinks back afterwards).
const BODY_BUFFER: usize = 16 * 1024;

/// Reads at least this large bypass the read buffer when it is empty.
const DIRECT_READ: usize = 4096;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why reading the body failed. Sticky: every later read fails the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputError {
    /// Malformed chunked framing (400).
    Framing(ChunkError),
    /// The body grew past the configured maximum (413).
    TooLarge,
    /// The body read timeout expired (408).
    TimedOut,
    /// The client closed the connection before the end of the body.
    Eof {
        /// Whether the body was chunked (for the message).
        chunked: bool,
        /// Body bytes received before the end.
        position: u64,
    },
    /// Another I/O error (the connection is unusable).
    Io(io::ErrorKind),
}

impl InputError {
    /// The status to answer with if nothing was sent yet (`None`: the client is gone).
    pub(crate) fn status(self) -> Option<u16> {
        match self {
            InputError::Framing(_) | InputError::Eof { .. } => Some(400),
            InputError::TooLarge => Some(413),
            InputError::TimedOut => Some(408),
            InputError::Io(_) => None,
        }
    }

    pub(crate) fn to_io(self) -> io::Error {
        match self {
            InputError::Framing(err) => io::Error::new(io::ErrorKind::InvalidData, err),
            InputError::TooLarge => io::Error::new(
                io::ErrorKind::InvalidData,
                "request body larger than the configured maximum",
            ),
            InputError::TimedOut => io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out reading the request body",
            ),
            InputError::Eof { chunked: true, .. } => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected end of file while parsing chunked data",
            ),
            InputError::Eof {
                chunked: false,
                position,
            } => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("unexpected end of file while reading request at position {position}"),
            ),
            InputError::Io(kind) => io::Error::new(kind, "error reading the request body"),
        }
    }
}

#[derive(Debug)]
enum Body {
    /// Nothing (left) to read.
    Done,
    /// `remaining` bytes of a Content-Length body.
    Length { remaining: u64 },
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// After a `101 Switching Protocols`: the raw connection, no framing.
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continue {
    /// The client sent `Expect: 100-continue`; nothing sent yet.
    Expected,
    /// Sent, not expected, or no longer allowed.
    Settled,
}

/// The request body (`wsgi.input`): `Read` and `BufRead` over the Content-Length or chunked body.
///
/// - Reads return `Ok(0)` at the end of the body and never read past it, so a pipelined next
///   request is left alone.
/// - The first read (of any size, `read(&mut [])` included) sends `HTTP/1.1 100 Continue` when the
///   client asked for it with `Expect: 100-continue` (any case), the request is HTTP/1.1 and no
///   final response was started. If the application never reads, no `100` is sent (gevent #2075).
/// - A body cut short, malformed chunked framing, an expired [body read
///   timeout](super::WsgiConfig::body_read_timeout) or a body over the [maximum
///   size](super::WsgiConfig::max_body_size) is an `io::Error` (and the same error on every later
///   read). If the application lets it escape and nothing was sent yet, the client gets 400, 400,
///   408 or 413; the connection is closed in all cases.
/// - Lines: use `BufRead` (`read_line`, `read_until`, `lines()`), or [`Input::readline`].
/// - After a `101 Switching Protocols` response, reads continue past the end of the request body
///   with the raw bytes of the connection (already-buffered ones first).
///
/// gevent: `pywsgi.Input`.
pub struct Input {
    link: Shared,
    rbuf: ReadBuf,
    body: Body,
    chunked: bool,
    expect: Continue,
    timeout: Option<Duration>,
    default_timeout: Option<Duration>,
    max_body: Option<u64>,
    /// Body bytes handed out or discarded so far.
    received: u64,
    error: Option<InputError>,
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("body", &self.body)
            .field("received", &self.received)
            .field("buffered", &self.rbuf.len())
            .field("error", &self.error)
            .finish()
    }
}

impl Input {
    pub(crate) fn new(
        link: Shared,
        rbuf: ReadBuf,
        framing: Framing,
        expect_continue: bool,
        timeout: Option<Duration>,
        max_body: Option<u64>,
    ) -> Input {
        let body = match framing {
            Framing::Empty => Body::Done,
            Framing::Length(n) => Body::Length { remaining: n },
            Framing::Chunked => Body::Chunked(ChunkedDecoder::new()),
        };
        Input {
            link,
            rbuf,
            body,
            chunked: framing == Framing::Chunked,
            expect: if expect_continue {
                Continue::Expected
            } else {
                Continue::Settled
            },
            timeout,
            default_timeout: timeout,
            max_body,
            received: 0,
            error: None,
        }
    }

    /// Prepares for the body of the next request (the read buffer and settings stay).
    pub(crate) fn reset(&mut self, framing: Framing, expect_continue: bool) {
        self.body = match framing {
            Framing::Empty => Body::Done,
            Framing::Length(n) => Body::Length { remaining: n },
            Framing::Chunked => Body::Chunked(ChunkedDecoder::new()),
        };
        self.chunked = framing == Framing::Chunked;
        self.expect = if expect_continue {
            Continue::Expected
        } else {
            Continue::Settled
        };
        self.timeout = self.default_timeout;
        self.received = 0;
        self.error = None;
    }

    /// The read buffer (between requests it holds the start of the next one).
    pub(crate) fn rbuf_mut(&mut self) -> &mut ReadBuf {
        &mut self.rbuf
    }

    /// See [`Input::rbuf_mut`].
    pub(crate) fn rbuf(&self) -> &ReadBuf {
        &self.rbuf
    }

    #[cfg(test)]
    pub(crate) fn into_rbuf(self) -> ReadBuf {
        self.rbuf
    }

    /// The error that ended body reading, if any.
    pub(crate) fn error(&self) -> Option<InputError> {
        self.error
    }

    /// Reads the whole (rest of the) body. gevent: `read()` / `read(-1)`.
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Reads one line, including its `\n`, of at most `limit` bytes (`None`: no limit). Returns an
    /// empty vector at the end of the body. gevent: `readline(size)`.
    pub fn readline(&mut self, limit: Option<usize>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match limit {
            None => {
                self.read_until(b'\n', &mut out)?;
            }
            Some(limit) => {
                (&mut *self)
                    .take(limit as u64)
                    .read_until(b'\n', &mut out)?;
            }
        }
        Ok(out)
    }

    /// Whether the whole body has been read (or there was none).
    pub(crate) fn is_complete(&self) -> bool {
        matches!(self.body, Body::Done)
            || matches!(self.body, Body::Length { remaining: 0 })
            || matches!(&self.body, Body::Chunked(decoder) if decoder.is_done())
    }

    /// Whether the body uses the chunked transfer coding.
    pub fn is_chunked(&self) -> bool {
        self.chunked
    }

    /// Body bytes still to come for a Content-Length body (`None` for chunked or raw input).
    pub fn remaining(&self) -> Option<u64> {
        match self.body {
            Body::Done => Some(0),
            Body::Length { remaining } => Some(remaining),
            Body::Chunked(_) | Body::Raw => None,
        }
    }

    /// Changes the read timeout of this input (by default the server's body read timeout). Useful
    /// after an upgrade, where the connection may rightly stay silent for long.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout.map(|dur| dur.max(Duration::from_millis(1)));
    }

    fn fail(&mut self, err: InputError) -> io::Error {
        self.error = Some(err);
        err.to_io()
    }

    /// Error check and the lazy `100 Continue`.
    fn before_read(&mut self) -> io::Result<()> {
        if let Some(err) = self.error {
            return Err(err.to_io());
        }
        if self.expect == Continue::Expected {
            self.expect = Continue::Settled;
            let mut link = self.link.borrow_mut();
            if link.phase.may_continue() {
                link.wbuf.extend_from_slice(CONTINUE);
                if let Err(err) = link.flush() {
                    drop(link);
                    return Err(self.fail(InputError::Io(err.kind())));
                }
            }
        }
        Ok(())
    }

    /// Reads more bytes into the read buffer; the end of the stream is an error inside a body.
    fn read_more(&mut self) -> io::Result<()> {
        let res = self
            .link
            .borrow_mut()
            .fill(&mut self.rbuf, BODY_BUFFER, self.timeout);
        match res {
            Ok(0) => {
                let err = InputError::Eof {
                    chunked: self.chunked,
                    position: self.received,
                };
                Err(self.fail(err))
            }
            Ok(_) => Ok(()),
            Err(err) if is_timeout(&err) => Err(self.fail(InputError::TimedOut)),
            Err(err) => Err(self.fail(InputError::Io(err.kind()))),
        }
    }

    /// Reads raw bytes after an upgrade; `Ok(false)` is the end of the stream.
    fn read_more_raw(&mut self) -> io::Result<bool> {
        let res = self
            .link
            .borrow_mut()
            .fill(&mut self.rbuf, BODY_BUFFER, self.timeout);
        match res {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(err) if is_timeout(&err) => Err(err),
            Err(err) => Err(self.fail(InputError::Io(err.kind()))),
        }
    }

    /// The number of body bytes at the start of the read buffer that may be handed out, reading
    /// and decoding as needed. 0 means the end of the body (or of the raw stream).
    fn available(&mut self) -> io::Result<usize> {
        self.available_with(true)
    }

    /// [`Self::available`]; with `may_read` false it returns 0 instead of reading the socket.
    fn available_with(&mut self, may_read: bool) -> io::Result<usize> {
        loop {
            match &mut self.body {
                Body::Done => {
                    if self.link.borrow().phase.upgraded() {
                        self.body = Body::Raw;
                        continue;
                    }
                    return Ok(0);
                }
                Body::Length { remaining } => {
                    if *remaining == 0 {
                        self.body = Body::Done;
                        continue;
                    }
                    if !self.rbuf.is_empty() {
                        return Ok(clamp(self.rbuf.len(), *remaining));
                    }
                    if !may_read {
                        return Ok(0);
                    }
                    if *remaining > BODY_BUFFER as u64 / 2 {
                        self.rbuf.reserve_total(BODY_BUFFER);
                    }
                    self.read_more()?;
                }
                Body::Chunked(decoder) => {
                    let used = match decoder.decode_framing(self.rbuf.data()) {
                        Ok(used) => used,
                        Err(err) => return Err(self.fail(InputError::Framing(err))),
                    };
                    self.rbuf.consume(used);
                    if decoder.is_done() {
                        self.body = Body::Done;
                        continue;
                    }
                    let want = decoder.data_remaining();
                    if want > 0 && !self.rbuf.is_empty() {
                        let n = clamp(self.rbuf.len(), want);
                        if let Some(max) = self.max_body {
                            if self.received + n as u64 > max {
                                return Err(self.fail(InputError::TooLarge));
                            }
                        }
                        return Ok(n);
                    }
                    if !may_read {
                        return Ok(0);
                    }
                    if want > BODY_BUFFER as u64 / 2 {
                        self.rbuf.reserve_total(BODY_BUFFER);
                    }
                    self.read_more()?;
                }
                Body::Raw => {
                    if !self.rbuf.is_empty() {
                        return Ok(self.rbuf.len());
                    }
                    if !may_read || !self.read_more_raw()? {
                        return Ok(0);
                    }
                }
            }
        }
    }

    /// Throws away the rest of the body so that the connection can serve its next request.
    /// Returns `false` when the connection must be closed instead: more than `limit` bytes left,
    /// a framing or I/O error, or raw (upgraded) input. Never sends `100 Continue`.
    #[inline]
    pub(crate) fn discard(&mut self, limit: u64) -> bool {
        self.expect = Continue::Settled;
        // the common case (no body) without the reading loop's frame
        if self.error.is_none() && matches!(self.body, Body::Done) {
            return !self.link.borrow().phase.upgraded();
        }
        self.discard_rest(limit)
    }

    #[inline(never)]
    fn discard_rest(&mut self, limit: u64) -> bool {
        if self.error.is_some() {
            return false;
        }
        match self.body {
            Body::Done => return !self.link.borrow().phase.upgraded(),
            Body::Raw => return false,
            Body::Length { remaining } => {
                let buffered = clamp(self.rbuf.len(), remaining) as u64;
                if remaining - buffered > limit {
                    return false;
                }
            }
            Body::Chunked(_) => {}
        }
        let mut budget = limit;
        loop {
            match self.available() {
                Ok(0) => return self.error.is_none() && !matches!(self.body, Body::Raw),
                Ok(n) => {
                    let chunked = matches!(self.body, Body::Chunked(_));
                    if chunked {
                        if n as u64 > budget {
                            return false;
                        }
                        budget -= n as u64;
                    }
                    self.consume(n);
                }
                Err(_) => return false,
            }
        }
    }
}

fn clamp(available: usize, remaining: u64) -> usize {
    usize::try_from(remaining).map_or(available, |remaining| available.min(remaining))
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.before_read()?;
        if buf.is_empty() {
            return Ok(0);
        }
        // large reads of a Content-Length body go straight into the caller's buffer
        if let Body::Length { remaining } = self.body {
            if remaining > 0 && self.rbuf.is_empty() && buf.len() >= DIRECT_READ {
                let want = clamp(buf.len(), remaining);
                let res = self
                    .link
                    .borrow_mut()
                    .read_direct(&mut buf[..want], self.timeout);
                return match res {
                    Ok(0) => {
                        let err = InputError::Eof {
                            chunked: false,
                            position: self.received,
                        };
                        Err(self.fail(err))
                    }
                    Ok(n) => {
                        self.body = Body::Length {
                            remaining: remaining - n as u64,
                        };
                        self.received += n as u64;
                        Ok(n)
                    }
                    Err(err) if is_timeout(&err) => Err(self.fail(InputError::TimedOut)),
                    Err(err) => Err(self.fail(InputError::Io(err.kind()))),
                };
            }
        }
        let mut n = self.available()?.min(buf.len());
        buf[..n].copy_from_slice(&self.rbuf.data()[..n]);
        self.consume(n);
        // keep filling from what is already buffered (across chunk boundaries) without blocking,
        // as gevent's read(n) returns n bytes when they have arrived
        while n < buf.len() && !self.rbuf.is_empty() && !matches!(self.body, Body::Raw) {
            let more = self.available_with(false)?.min(buf.len() - n);
            if more == 0 {
                break;
            }
            buf[n..n + more].copy_from_slice(&self.rbuf.data()[..more]);
            self.consume(more);
            n += more;
        }
        Ok(n)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.before_read()?;
        let n = self.available()?;
        Ok(&self.rbuf.data()[..n])
    }

    fn consume(&mut self, amt: usize) {
        let amt = amt.min(self.rbuf.len());
        match &mut self.body {
            Body::Done => {}
            Body::Length { remaining } => {
                let amt = clamp(amt, *remaining);
                *remaining -= amt as u64;
                self.received += amt as u64;
                self.rbuf.consume(amt);
            }
            Body::Chunked(decoder) => {
                let amt = clamp(amt, decoder.data_remaining());
                decoder.consume_data(amt);
                self.received += amt as u64;
                self.rbuf.consume(amt);
            }
            Body::Raw => self.rbuf.consume(amt),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::conn::Connection;
    use super::super::io::Link;
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// An in-memory connection: reads come from `input` (in pieces of at most `piece` bytes),
    /// writes go to `output`.
    pub(crate) struct SendConn(pub(crate) std::sync::Arc<std::sync::Mutex<MemState>>);

    pub(crate) struct MemState {
        pub(crate) input: Vec<u8>,
        pub(crate) pos: usize,
        pub(crate) piece: usize,
        pub(crate) output: Vec<u8>,
    }

    impl Read for SendConn {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut st = self.0.lock().unwrap();
            let n = buf.len().min(st.piece).min(st.input.len() - st.pos);
            let pos = st.pos;
            buf[..n].copy_from_slice(&st.input[pos..pos + n]);
            st.pos += n;
            Ok(n)
        }
    }

    impl io::Write for SendConn {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Connection for SendConn {
        fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn set_write_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
    }

    pub(crate) fn mem_link(
        input: &[u8],
        piece: usize,
    ) -> (Shared, std::sync::Arc<std::sync::Mutex<MemState>>) {
        let state = std::sync::Arc::new(std::sync::Mutex::new(MemState {
            input: input.to_vec(),
            pos: 0,
            piece,
            output: Vec::new(),
        }));
        let link: Shared = Rc::new(RefCell::new(Link::new(SendConn(state.clone()))));
        (link, state)
    }

    fn make_input(data: &[u8], framing: Framing, piece: usize) -> Input {
        let (link, _) = mem_link(data, piece);
        Input::new(link, ReadBuf::new(256), framing, false, None, None)
    }

    fn chunk_encode(chunks: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(format!("{:x}\r\n{c}\r\n", c.len()).as_bytes());
        }
        out
    }

    #[test]
    fn short_content_length_body_is_an_error() {
        for piece in [1, 100] {
            let mut i = make_input(b"1", Framing::Length(2), piece);
            let err = i.read_all().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(
                err.to_string(),
                "unexpected end of file while reading request at position 1"
            );
            let mut i = make_input(b"1", Framing::Length(2), piece);
            assert_eq!(i.read(&mut [0; 2]).unwrap(), 1);
            assert!(i.read(&mut [0; 2]).is_err());
            let mut i = make_input(b"1", Framing::Length(2), piece);
            assert!(i.readline(None).is_err());
        }
    }

    #[test]
    fn content_length_body() {
        let mut i = make_input(b"12", Framing::Length(2), 1);
        assert_eq!(i.read_all().unwrap(), b"12");
        let mut i = make_input(b"12GET /", Framing::Length(2), 100);
        let mut buf = [0u8; 10];
        assert_eq!(i.read(&mut buf).unwrap(), 2);
        assert_eq!(i.read(&mut buf).unwrap(), 0);
        // bytes past the body stay in the buffer for the next request
        let rbuf = i.into_rbuf();
        assert_eq!(rbuf.data(), b"GET /");
    }

    #[test]
    fn chunked_body_in_any_piece_size() {
        let body = b"2\r\noh\r\n4\r\n hai\r\n0\r\n\r\n";
        for piece in [1, 2, 3, 6, 100] {
            let mut i = make_input(body, Framing::Chunked, piece);
            assert_eq!(i.read_all().unwrap(), b"oh hai", "piece {piece}");
            let mut i = make_input(body, Framing::Chunked, piece);
            let mut got = Vec::new();
            let mut buf = [0u8; 1];
            loop {
                let n = i.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"oh hai");
        }
    }

    #[test]
    fn chunked_missing_or_short_chunks() {
        let mut i = make_input(&chunk_encode(&["1", "2"]), Framing::Chunked, 100);
        let err = i.read_all().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected end of file while parsing chunked data"
        );
        assert_eq!(
            i.error(),
            Some(InputError::Eof {
                chunked: true,
                position: 2
            })
        );
        let mut i = make_input(b"2\r\n1", Framing::Chunked, 100);
        assert!(i.read(&mut [0; 10]).is_ok());
        assert!(i.read(&mut [0; 10]).is_err());
        let mut i = make_input(b"2\r\n1", Framing::Chunked, 100);
        assert!(i.readline(None).is_err());
        let mut i = make_input(b"zz\r\n", Framing::Chunked, 100);
        assert_eq!(i.read_all().unwrap_err().to_string(), "invalid chunk size");
        assert_eq!(i.error().and_then(InputError::status), Some(400));
        // sticky
        assert!(i.read(&mut [0; 1]).is_err());
    }

    #[test]
    fn lines() {
        let content = b"hello\n\nworld\n123";
        let mut i = make_input(content, Framing::Length(content.len() as u64), 3);
        let lines: Vec<Vec<u8>> = (&mut i).split(b'\n').map(|l| l.unwrap()).collect();
        assert_eq!(
            lines,
            vec![
                b"hello".to_vec(),
                b"".to_vec(),
                b"world".to_vec(),
                b"123".to_vec()
            ]
        );
        let mut i = make_input(content, Framing::Length(content.len() as u64), 3);
        assert_eq!(i.readline(None).unwrap(), b"hello\n");
        assert_eq!(i.readline(Some(2)).unwrap(), b"\n");
        assert_eq!(i.readline(Some(2)).unwrap(), b"wo");
        assert_eq!(i.readline(None).unwrap(), b"rld\n");
        assert_eq!(i.readline(None).unwrap(), b"123");
        assert_eq!(i.readline(None).unwrap(), b"");
    }

    #[test]
    fn huge_content_length_with_readline() {
        // gevent test_32bit_overflow
        let mut data = b"asdf\nghij\n".to_vec();
        let long: Vec<u8> = std::iter::repeat_n(b'a', 8192 + 10)
            .chain(Some(b'\n'))
            .collect();
        data.extend_from_slice(&long);
        let mut i = make_input(&data, Framing::Length(25_000_000_000), 1000);
        assert_eq!(i.readline(None).unwrap(), b"asdf\n");
        assert_eq!(i.readline(Some(usize::MAX)).unwrap(), b"ghij\n");
        assert_eq!(i.readline(None).unwrap(), long);
        let mut with_partial = data.clone();
        with_partial.extend_from_slice(b"qjk\n");
        let mut i = make_input(&with_partial, Framing::Length(data.len() as u64 + 1), 1000);
        assert_eq!(i.readline(None).unwrap(), b"asdf\n");
        assert_eq!(i.readline(None).unwrap(), b"ghij\n");
        assert_eq!(i.readline(None).unwrap(), long);
        assert_eq!(i.readline(None).unwrap(), b"q");
    }

    #[test]
    fn empty_body_reads_nothing() {
        let mut i = make_input(b"GET / HTTP/1.1\r\n", Framing::Empty, 100);
        assert_eq!(i.read(&mut [0; 5]).unwrap(), 0);
        assert_eq!(i.read_all().unwrap(), b"");
    }

    #[test]
    fn continue_is_sent_once_on_first_read() {
        let (link, state) = mem_link(b"abc", 100);
        let mut i = Input::new(
            link,
            ReadBuf::new(256),
            Framing::Length(3),
            true,
            None,
            None,
        );
        assert_eq!(i.read(&mut [0; 0]).unwrap(), 0);
        assert_eq!(state.lock().unwrap().output, CONTINUE);
        assert_eq!(i.read_all().unwrap(), b"abc");
        assert_eq!(state.lock().unwrap().output, CONTINUE);
    }

    #[test]
    fn discard_never_sends_continue() {
        let (link, state) = mem_link(b"abcGET", 100);
        let mut i = Input::new(
            link,
            ReadBuf::new(256),
            Framing::Length(3),
            true,
            None,
            None,
        );
        assert!(i.discard(1024));
        assert!(state.lock().unwrap().output.is_empty());
        assert_eq!(i.into_rbuf().data(), b"GET");
    }

    #[test]
    fn discard_limits() {
        let (link, _) = mem_link(&[b'x'; 100], 10);
        let mut i = Input::new(
            link,
            ReadBuf::new(256),
            Framing::Length(100),
            false,
            None,
            None,
        );
        assert!(!i.discard(50), "over the limit: close instead");
        let (link, _) = mem_link(&[b'x'; 100], 10);
        let mut i = Input::new(
            link,
            ReadBuf::new(256),
            Framing::Length(100),
            false,
            None,
            None,
        );
        assert!(i.discard(100));
        let body = chunk_encode(&["aaaaaaaaaa", "bbbbbbbbbb", ""]);
        let (link, _) = mem_link(&body, 7);
        let mut i = Input::new(link, ReadBuf::new(256), Framing::Chunked, false, None, None);
        assert!(!i.discard(15));
        let (link, _) = mem_link(&body, 7);
        let mut i = Input::new(link, ReadBuf::new(256), Framing::Chunked, false, None, None);
        assert!(i.discard(20));
        let (link, _) = mem_link(b"1\r\na\r\n0\r\nbad trailer\r\n\r\n", 7);
        let mut i = Input::new(link, ReadBuf::new(256), Framing::Chunked, false, None, None);
        assert!(!i.discard(20));
    }

    #[test]
    fn chunked_max_body() {
        let body = chunk_encode(&["aaaaaaaaaa", "bbbbbbbbbb", ""]);
        let (link, _) = mem_link(&body, 100);
        let mut i = Input::new(
            link,
            ReadBuf::new(256),
            Framing::Chunked,
            false,
            None,
            Some(15),
        );
        let err = i.read_all().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(i.error().and_then(InputError::status), Some(413));
    }
}
