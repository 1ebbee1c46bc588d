//! Keep-alive: idle connections kept per `scheme://host:port`, a few per host, for a while.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::url::Scheme;
use crate::stream::{PlainStream, Stream};

/// A connection and the bytes read from it but not consumed yet.
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    /// Came out of the pool (a failure before any response byte may be a stale connection).
    pub(crate) reused: bool,
}

impl Conn {
    pub(crate) fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            pos: 0,
            reused: false,
        }
    }

    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Read at most `max` more bytes (at least 1 asked) onto the buffer; 0 at end-of-file.
    pub(crate) fn fill(&mut self, max: usize) -> io::Result<usize> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let max = max.clamp(1, 64 * 1024);
        let start = self.buf.len();
        self.buf.resize(start + max, 0);
        let result = loop {
            match self.stream.read(&mut self.buf[start..]) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(start + n);
        result
    }

    /// Whether an idle connection still looks usable: no end-of-file and no stray bytes waiting.
    /// Peeks at the non-blocking socket under may; never waits.
    fn alive(&self) -> bool {
        let mut byte = [0u8; 1];
        let peek = match self.stream.get_ref() {
            PlainStream::Tcp(s) => s.inner().peek(&mut byte),
            PlainStream::Unix(_) => return false,
        };
        matches!(peek, Err(ref err) if err.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Which connections can serve a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// The idle connections. A std mutex held for a moment, never across I/O or a may call.
pub(crate) struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<(Conn, Instant)>>>,
    per_host: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(per_host: usize, idle_timeout: Duration) -> Pool {
        Pool {
            idle: Mutex::new(HashMap::new()),
            per_host,
            idle_timeout,
        }
    }

    /// The most recently used live connection for `key`, if any.
    pub(crate) fn take(&self, key: &PoolKey) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        let mut found = None;
        while let Some((conn, since)) = list.pop() {
            if now.duration_since(since) < self.idle_timeout && conn.alive() {
                found = Some(conn);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        drop(idle);
        found.map(|mut conn| {
            conn.reused = true;
            conn
        })
    }

    /// Keep `conn` for the next request to `key` (dropped if the host has enough already).
    pub(crate) fn put(&self, key: PoolKey, conn: Conn) {
        if self.per_host == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() >= self.per_host {
            list.remove(0); // the oldest goes
        }
        list.push((conn, Instant::now()));
    }

    /// Idle connections kept now, all hosts together.
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values().map(Vec::len).sum()
    }
}
