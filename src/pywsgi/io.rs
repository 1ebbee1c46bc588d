//! Per-connection buffers: the shared stream and output buffer ([`Link`]) and the read buffer
//! ([`ReadBuf`]).
//!
//! The request body reader (`wsgi.input`, inside the environ) and the response writer (behind
//! `start_response`) are both live while the application runs and both need the one stream, so the
//! stream and the output buffer sit in an `Rc<RefCell<..>>` that is borrowed only for the duration
//! of one read or write call. Everything here runs on the connection's own coroutine.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use super::conn::Connection;

/// The shared half of a connection.
pub(crate) type Shared = Rc<RefCell<Link>>;

/// Output buffer size above which a flushed buffer is given back to the allocator.
const WBUF_KEEP: usize = 16 * 1024;

/// How late a deadline-based read timeout may fire (see `Link::set_read_timeout`).
const DEADLINE_SLACK: Duration = Duration::from_millis(250);

/// Output is flushed once this much is buffered, even in the middle of a pipelined batch.
pub(crate) const WBUF_FLUSH_AT: usize = 64 * 1024;

/// How far the response to the current request has got. One state for the response writer,
/// the body reader (`100 Continue` only before a final head; raw input after a `101`) and the
/// link (nothing is written once it is dead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No successful `start_response` for this request yet.
    Idle,
    /// `start_response` succeeded; no head was queued yet.
    Started,
    /// The head with this status code was queued (a canned error response included).
    HeadSent(u16),
    /// A write failed: the client is gone, nothing more is sent. What the response had reached
    /// is kept: whether `start_response` had succeeded, and the status code queued (0: none).
    Dead {
        /// `start_response` had succeeded.
        started: bool,
        /// The status code of the queued head, 0 if none was.
        code: u16,
    },
}

impl Phase {
    /// Whether `start_response` succeeded (or a head was queued).
    #[inline]
    pub(crate) fn started(self) -> bool {
        match self {
            Phase::Idle => false,
            Phase::Started | Phase::HeadSent(_) => true,
            Phase::Dead { started, .. } => started,
        }
    }

    /// The status code of the queued head, 0 if none was.
    #[inline]
    pub(crate) fn code(self) -> u16 {
        match self {
            Phase::HeadSent(code) | Phase::Dead { code, .. } => code,
            Phase::Idle | Phase::Started => 0,
        }
    }

    /// Whether the response head was queued.
    #[inline]
    pub(crate) fn head_sent(self) -> bool {
        self.code() != 0
    }

    /// Whether a `101 Switching Protocols` head was queued: after the request body the input is
    /// the raw connection.
    #[inline]
    pub(crate) fn upgraded(self) -> bool {
        self.code() == 101
    }

    #[inline]
    pub(crate) fn is_dead(self) -> bool {
        matches!(self, Phase::Dead { .. })
    }

    /// Whether an interim `100 Continue` may still be sent: no head yet, link alive.
    #[inline]
    pub(crate) fn may_continue(self) -> bool {
        matches!(self, Phase::Idle | Phase::Started)
    }

    /// The phase of a new request (a dead link stays dead).
    #[inline]
    pub(crate) fn reset(self) -> Phase {
        match self {
            Phase::Dead { .. } => Phase::Dead {
                started: false,
                code: 0,
            },
            _ => Phase::Idle,
        }
    }

    /// After a successful `start_response` (the head not sent yet).
    #[inline]
    pub(crate) fn start(self) -> Phase {
        match self {
            Phase::Dead { code, .. } => Phase::Dead {
                started: true,
                code,
            },
            _ => Phase::Started,
        }
    }

    /// After a head with status `code` was queued.
    #[inline]
    pub(crate) fn sent(self, code: u16) -> Phase {
        match self {
            Phase::Dead { started, .. } => Phase::Dead { started, code },
            _ => Phase::HeadSent(code),
        }
    }

    /// After a failed write.
    #[inline]
    fn dead(self) -> Phase {
        Phase::Dead {
            started: self.started(),
            code: self.code(),
        }
    }
}

/// The stream plus the output buffer and a little connection state.
pub(crate) struct Link {
    /// Bytes queued for the client; flushed before any blocking read.
    pub(crate) wbuf: Vec<u8>,
    /// The read timeout last set on the stream (`None` both for "unknown" and "infinite": see
    /// `timeout_set`).
    read_timeout: Option<Duration>,
    timeout_set: bool,
    /// How far the current response has got (a failed write makes it [`Phase::Dead`]).
    pub(crate) phase: Phase,
    /// Boxed rather than an unsized tail: a `Link` of known layout makes every borrow of the
    /// shared `Rc<RefCell<..>>` a fixed offset instead of one computed from the vtable.
    pub(crate) stream: Box<dyn Connection>,
}

impl Link {
    pub(crate) fn new<C: Connection + 'static>(stream: C) -> Link {
        Link {
            wbuf: Vec::new(),
            read_timeout: None,
            timeout_set: false,
            phase: Phase::Idle,
            stream: Box::new(stream),
        }
    }

    pub(crate) fn from_box(stream: Box<dyn Connection>) -> Link {
        Link {
            wbuf: Vec::new(),
            read_timeout: None,
            timeout_set: false,
            phase: Phase::Idle,
            stream,
        }
    }
}

impl Link {
    /// Writes out the output buffer. After a failure the link is dead and the buffer dropped.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if self.phase.is_dead() {
            self.wbuf.clear();
            return Err(dead_error());
        }
        let res = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        if self.wbuf.capacity() > WBUF_KEEP {
            self.wbuf.shrink_to(WBUF_KEEP / 4);
        }
        if res.is_err() {
            self.phase = self.phase.dead();
        }
        res
    }

    /// Writes `data` after whatever is buffered, without copying it into the buffer when large.
    pub(crate) fn write_through(&mut self, data: &[u8]) -> io::Result<()> {
        if self.phase.is_dead() {
            return Err(dead_error());
        }
        if data.len() < 4096 {
            self.wbuf.extend_from_slice(data);
            return Ok(());
        }
        self.flush()?;
        let res = self.stream.write_all(data);
        if res.is_err() {
            self.phase = self.phase.dead();
        }
        res
    }

    /// Writes out the output buffer, then `len` bytes of `file` from `offset` with the
    /// connection's `send_file`. Returns the bytes of the file sent (fewer than `len`: the file
    /// ended first). After a failure the link is dead.
    pub(crate) fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        if self.phase.is_dead() {
            self.wbuf.clear();
            return Err(dead_error());
        }
        self.flush()?;
        let res = self.stream.send_file(file, offset, len);
        if res.is_err() {
            self.phase = self.phase.dead();
        }
        res
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.timeout_set && self.read_timeout == timeout {
            return Ok(());
        }
        // a deadline's remaining time shrinks on every read: keep the current timeout while it
        // expires at most `DEADLINE_SLACK` after the deadline (and not before it), sparing a
        // setsockopt per read
        if let (true, Some(current), Some(wanted)) = (self.timeout_set, self.read_timeout, timeout)
        {
            if current >= wanted && current <= wanted + DEADLINE_SLACK {
                return Ok(());
            }
        }
        self.stream.set_read_timeout(timeout)?;
        self.read_timeout = timeout;
        self.timeout_set = true;
        Ok(())
    }

    /// Flushes pending output, then reads once into `rbuf` (growing it up to `max` bytes).
    /// Returns the number of bytes read; 0 is end of stream (or a full buffer at `max`).
    pub(crate) fn fill(
        &mut self,
        rbuf: &mut ReadBuf,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.flush()?;
        self.set_read_timeout(timeout)?;
        let spare = rbuf.spare(max);
        if spare.is_empty() {
            return Ok(0);
        }
        let room = spare.len();
        let n = loop {
            match self.stream.read(spare) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        rbuf.end += n;
        // a read that filled all the room suggests the peer sends more per batch (pipelining):
        // let the buffer grow next time instead of splitting every batch
        rbuf.grow_next = n == room;
        Ok(n)
    }

    /// Flushes pending output, then waits under `timeout` for input without taking any
    /// ([`Connection::wait_input`]): `Ok(None)` when the connection cannot wait that way.
    pub(crate) fn wait_input(&mut self, timeout: Option<Duration>) -> io::Result<Option<usize>> {
        self.flush()?;
        self.set_read_timeout(timeout)?;
        loop {
            match self.stream.wait_input() {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Gives the (empty) output buffer's allocation back.
    pub(crate) fn release(&mut self) {
        if self.wbuf.is_empty() {
            self.wbuf = Vec::new();
        }
    }

    /// Reads directly into `buf` (no buffering), flushing pending output first.
    pub(crate) fn read_direct(
        &mut self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.flush()?;
        self.set_read_timeout(timeout)?;
        loop {
            match self.stream.read(buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// The error of a write to a dead link.
pub(crate) fn dead_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the client connection is closed")
}

/// A growable read buffer: `buf[start..end]` holds received, unconsumed bytes.
#[derive(Debug, Default)]
pub(crate) struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    initial: usize,
    /// The last read filled the buffer: grow before the next one.
    grow_next: bool,
}

impl ReadBuf {
    pub(crate) fn new(initial: usize) -> ReadBuf {
        ReadBuf {
            buf: Vec::new(),
            start: 0,
            end: 0,
            initial,
            grow_next: false,
        }
    }

    /// The unconsumed bytes.
    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes as used.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space to read into: compacts, then grows (doubling) without exceeding `max` bytes of
    /// unconsumed data. Empty only when `max` unconsumed bytes are already buffered.
    pub(crate) fn spare(&mut self, max: usize) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf.resize(self.initial.max(256), 0);
        }
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if (self.end == self.buf.len() || std::mem::take(&mut self.grow_next))
            && self.buf.len() < max
        {
            let new_len = (self.buf.len() * 2).min(max).max(self.buf.len());
            self.buf.resize(new_len, 0);
        }
        let limit = (self.start + max).min(self.buf.len());
        if limit <= self.end {
            return &mut [];
        }
        &mut self.buf[self.end..limit]
    }

    /// Gives memory back after a large request: when nothing is buffered and the buffer grew past
    /// eight times its initial size, it returns to that size (smaller growth, e.g. for pipelined
    /// batches, is kept to avoid reallocating for every batch).
    pub(crate) fn shrink_if_idle(&mut self) {
        if self.is_empty() && self.buf.len() > self.initial.saturating_mul(8) {
            self.buf = Vec::new();
        }
    }

    /// Gives the buffer back when nothing is buffered (an idle keep-alive connection); the next
    /// read allocates it again at its initial size.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            self.buf = Vec::new();
            self.start = 0;
            self.end = 0;
            self.grow_next = false;
        }
    }

    /// Ensures the buffer can hold at least `size` bytes (for faster body reads).
    pub(crate) fn reserve_total(&mut self, size: usize) {
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
    }

    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let spare = self.spare(usize::MAX);
        let n = bytes.len().min(spare.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.end += n;
        if n < bytes.len() {
            self.push(&bytes[n..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readbuf_grows_compacts_and_shrinks() {
        let mut rb = ReadBuf::new(256);
        rb.push(&[1u8; 300]);
        assert_eq!(rb.len(), 300);
        rb.consume(299);
        assert_eq!(rb.data(), &[1]);
        // no compaction while the tail has room
        assert_eq!(rb.spare(10_000).len(), 212);
        rb.consume(1);
        assert!(rb.is_empty());
        rb.shrink_if_idle();
        assert_eq!(
            rb.spare(10_000).len(),
            512,
            "twice the initial size is kept"
        );
        rb.push(&[3u8; 5000]);
        rb.consume(5000);
        rb.shrink_if_idle();
        assert_eq!(
            rb.spare(10_000).len(),
            256,
            "over eight times: back to the initial size"
        );
        // max bounds the unconsumed data
        rb.push(&[2u8; 100]);
        assert_eq!(rb.spare(100).len(), 0);
        assert_eq!(rb.spare(150).len(), 50);
    }
}
