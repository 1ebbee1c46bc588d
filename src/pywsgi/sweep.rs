//! Reads of a server's plain connections without may's per-read timer and without the read
//! that only finds the socket empty.
//!
//! may's `read` on a socket with a timeout first tries a non-blocking read (on a keep-alive
//! connection, right after the response went out, it finds nothing: one `EAGAIN` syscall per
//! request), then parks the coroutine with a timer made for that read (an allocation and a
//! timer-list insert and removal: about 650 instructions per request, more than httparse
//! takes to parse the request). A [`SweptReader`] does neither:
//!
//! - when its last read emptied the socket and no readiness event came since (may's
//!   edge-triggered `io_flag`, cleared just before that read), it waits at once
//!   ([`WaitIo::wait_io`]) instead of asking the kernel first — unless the peer has closed
//!   or reset its side (an end of stream queued behind the data brings no further event);
//! - the read's deadline is one atomic word in the connection's [`ConnState`], armed with
//!   the timeout alone (no clock read per wait); the server's sweeper
//!   ([`ConnState::fire_if_due`], every [`Clock::tick`]) starts its clock on its next pass
//!   and wakes a reader whose deadline has passed, which then fails with `TimedOut` exactly
//!   as a may read timeout does. The socket is left as it is (an idle connection's soft
//!   timeout, `IDLE_RELEASE`, goes on).
//!
//! Writes go straight to the non-blocking socket too ([`SweptReader::write`]): may's write
//! clears the event flag (an event that came between a read and a response would be lost to
//! the next read's shortcut), so only a write that must wait goes through may, and the read
//! after it asks the kernel.
//!
//! A timeout never fires early, and up to two ticks late. A cancelled reader (`Pool::kill`,
//! `stop(timeout)`) unwinds as it does in a may read: `wait_io` returns without an event, or
//! with one and the greenlet is among those sent a cancel, and the reader resumes may's cancel.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use may::io::{AsIoData, IoData, WaitIo, WaitIoWaker};

use crate::stream::PlainStream;

/// `ConnState::deadline` when no read waits.
const NO_DEADLINE: u64 = 0;
/// `ConnState::deadline` once the sweeper woke the reader.
const FIRED: u64 = u64::MAX;
/// Marks a `ConnState::deadline` that holds a timeout (in nanoseconds, the other bits) whose
/// clock has not started: the reader armed it without reading the clock, and the sweeper's
/// next pass turns it into a deadline from its own `now`.
const PENDING: u64 = 1 << 63;

/// What a server keeps per live connection: its phase between requests (`server.rs`) and the
/// deadline of the read it waits in, if any.
pub(crate) struct ConnState {
    pub(crate) phase: AtomicU8,
    /// Nanoseconds since [`Clock`]'s epoch; [`NO_DEADLINE`] or [`FIRED`].
    deadline: AtomicU64,
    /// Wakes the connection's coroutine out of `wait_io` (`None`: not swept).
    waker: Option<WaitIoWaker>,
}

impl ConnState {
    pub(crate) fn new(phase: u8, waker: Option<WaitIoWaker>) -> ConnState {
        ConnState {
            phase: AtomicU8::new(phase),
            deadline: AtomicU64::new(NO_DEADLINE),
            waker,
        }
    }

    fn arm(&self, deadline: u64) {
        self.deadline.store(deadline, Ordering::Release);
    }

    /// Ends a wait: what the deadline had become ([`FIRED`] if the sweeper fired it).
    fn disarm(&self) -> u64 {
        self.deadline.swap(NO_DEADLINE, Ordering::AcqRel)
    }

    /// The sweeper: starts the clock of a pending timeout at `now`, or wakes the reader if
    /// its deadline is `now` or earlier.
    pub(crate) fn fire_if_due(&self, now: u64) {
        let deadline = self.deadline.load(Ordering::Acquire);
        if deadline == NO_DEADLINE || deadline == FIRED {
            return;
        }
        if deadline & PENDING != 0 {
            // (a failure: the wait ended or was armed again meanwhile)
            let at = now
                .saturating_add(deadline & !PENDING)
                .clamp(1, PENDING - 1);
            let _ =
                self.deadline
                    .compare_exchange(deadline, at, Ordering::AcqRel, Ordering::Relaxed);
            return;
        }
        if deadline > now {
            return;
        }
        let fired = self
            .deadline
            .compare_exchange(deadline, FIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if let (true, Some(waker)) = (fired, &self.waker) {
            waker.wakeup();
        }
    }
}

/// The time base of a server's deadlines, and how often its sweeper looks at them.
pub(crate) struct Clock {
    epoch: Instant,
    pub(crate) tick: Duration,
}

impl Clock {
    /// A sweeper period fine enough for the shortest of `timeouts`: a tenth of it, between
    /// 5 ms and 100 ms.
    pub(crate) fn new(timeouts: &[Option<Duration>]) -> Clock {
        let shortest = timeouts
            .iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or(Duration::from_secs(1));
        Clock {
            epoch: Instant::now(),
            tick: (shortest / 10).clamp(Duration::from_millis(5), Duration::from_millis(100)),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from(
            Instant::now()
                .saturating_duration_since(self.epoch)
                .as_nanos(),
        )
        .unwrap_or(PENDING - 1)
        .min(PENDING - 1)
    }
}

/// The reading half of a swept connection's state (kept by its owner, one per connection).
#[derive(Debug, Default)]
pub(crate) struct SweptReader {
    /// The read timeout the engine set (`None`: wait without one).
    pub(crate) timeout: Option<Duration>,
    /// The last read emptied the socket; nothing was read since.
    drained: bool,
    /// The peer closed (or reset) its side: an end of stream may be queued behind the data,
    /// with no event to come for it, so every read asks the kernel.
    hup: bool,
}

/// The epoll events after which no further event may come for what is queued.
const HUP_EVENTS: usize = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as usize;

/// `MSG_NOSIGNAL` where there is one: a write to a connection the peer closed fails with
/// `EPIPE` instead of raising `SIGPIPE`, whatever the program did with that signal.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const SEND_FLAGS: libc::c_int = 0;

fn sock_ref(plain: &PlainStream) -> socket2::SockRef<'_> {
    match plain {
        PlainStream::Tcp(s) => socket2::SockRef::from(s.inner()),
        PlainStream::Unix(s) => socket2::SockRef::from(s.inner()),
    }
}

fn io_data(plain: &PlainStream) -> &IoData {
    match plain {
        PlainStream::Tcp(s) => s.as_io_data(),
        PlainStream::Unix(s) => s.as_io_data(),
    }
}

impl SweptReader {
    /// `read(2)` on the non-blocking socket, waiting (under the timeout) while it is empty.
    pub(crate) fn read(
        &mut self,
        plain: &PlainStream,
        state: &ConnState,
        buf: &mut [u8],
    ) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let io = io_data(plain);
        let mut deadline = None;
        loop {
            if !self.drained || self.hup || io.io_flag.load(Ordering::Acquire) != 0 {
                // An event that comes after this is seen by the next wait.
                if io.reset() & HUP_EVENTS != 0 {
                    self.hup = true;
                }
                // `recv(2)` (std's TCP read; for Unix sockets rather than `read(2)`)
                let res = match plain {
                    PlainStream::Tcp(s) => (&mut s.inner()).read(buf),
                    PlainStream::Unix(s) => socket2::SockRef::from(s.inner()).recv(as_uninit(buf)),
                };
                match res {
                    // at the end of the stream, a next read must find it again
                    Ok(0) => {
                        self.drained = false;
                        return Ok(0);
                    }
                    Ok(n) => {
                        self.drained = n < buf.len();
                        return Ok(n);
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        self.drained = false;
                        return Err(err);
                    }
                }
            }
            self.drained = true;
            self.wait(plain, state, &mut deadline)?;
        }
    }

    /// `send(2)` on the non-blocking socket. `None` when the socket cannot take anything now:
    /// the caller then writes through may (which waits for room), and since may's write
    /// clears the socket's event flag, the next read asks the kernel first.
    pub(crate) fn write(
        &mut self,
        plain: &PlainStream,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<io::Result<usize>> {
        loop {
            // `send(2)` (one buffer, the usual case: a response head and a small body are
            // buffered together) or `sendmsg(2)`, not `write(2)` or `writev(2)`, which go through
            // the file layer first (about 4 % of the server's CPU per keep-alive request)
            let sock = sock_ref(plain);
            let res = match bufs {
                [buf] => sock.send_with_flags(buf, SEND_FLAGS),
                _ => sock.send_vectored_with_flags(bufs, SEND_FLAGS),
            };
            match res {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.drained = false;
                    return None;
                }
                res => return Some(res),
            }
        }
    }

    /// Something other than [`SweptReader`] used the socket's event flag (a may read, write
    /// or sendfile): the next read asks the kernel first.
    pub(crate) fn forget(&mut self) {
        self.drained = false;
    }

    /// Waits (under the timeout) until there is input or the stream ended, without taking
    /// any: `Ok(n)`, `n` > 0 when there is input, 0 at the end of the stream.
    pub(crate) fn peek(&mut self, plain: &PlainStream, state: &ConnState) -> io::Result<usize> {
        let io = io_data(plain);
        let mut deadline = None;
        let mut byte = [0u8; 1];
        loop {
            if io.reset() & HUP_EVENTS != 0 {
                self.hup = true;
            }
            let res = match plain {
                PlainStream::Tcp(s) => s.inner().peek(&mut byte),
                PlainStream::Unix(s) => {
                    socket2::SockRef::from(s.inner()).peek(as_uninit(&mut byte))
                }
            };
            match res {
                Ok(n) => {
                    self.drained = false;
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            self.wait(plain, state, &mut deadline)?;
        }
    }

    /// One wait for a readiness event, or the sweeper at the deadline (`TimedOut`), or a
    /// cancel (unwinds).
    fn wait(
        &mut self,
        plain: &PlainStream,
        state: &ConnState,
        deadline: &mut Option<u64>,
    ) -> io::Result<()> {
        if deadline.is_none() {
            // a timeout too long to be a deadline is no timeout
            *deadline = self.timeout.and_then(pending);
        }
        if let Some(at) = *deadline {
            // pending (the first wait of this read) or the deadline it became: a read woken
            // without input waits on under the same deadline
            state.arm(at);
        }
        let events = match plain {
            PlainStream::Tcp(s) => s.wait_io(),
            PlainStream::Unix(s) => s.wait_io(),
        };
        let fired = match *deadline {
            Some(_) => {
                let left = state.disarm();
                *deadline = Some(left);
                left == FIRED
            }
            None => false,
        };
        // whatever woke us, the next read asks the kernel
        self.drained = false;
        if events & HUP_EVENTS != 0 {
            self.hup = true;
        }
        if events == 0 || crate::pool::greenlet::cancel_swallowed() {
            // Neither an event nor the sweeper (both set io_flag): a cancel woke us, and
            // `wait_io` cleared its mark. Or an event did, and a cancel that came with it
            // (or before the wait) lost its mark the same way.
            resume_cancel();
        }
        if fired {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
        }
        Ok(())
    }
}

/// `timeout` as a pending deadline; `None` for one too long to be a deadline (no timeout).
fn pending(timeout: Duration) -> Option<u64> {
    u64::try_from(timeout.as_nanos())
        .ok()
        // (`PENDING | (PENDING - 1)` would read as FIRED)
        .filter(|&nanos| nanos < PENDING - 1)
        .map(|nanos| PENDING | nanos)
}

/// The bytes of `buf` as the uninitialised buffer socket2's `peek` and `recv` write into.
fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    #[allow(unsafe_code)]
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `peek` and `recv` only write
    // initialised bytes into it, so `buf` stays initialised.
    unsafe {
        std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast(), buf.len())
    }
}

/// Continues a cancel that `wait_io` absorbed: marks the coroutine cancelled again (so that
/// may calls made while unwinding fail at once, as in may's own cancel) and unwinds with
/// may's cancel payload (the pool counts the task as killed, handlers let it through).
#[cold]
fn resume_cancel() -> ! {
    #[allow(unsafe_code)]
    // SAFETY: the current coroutine is running, so may's cancel finds it parked nowhere: it
    // only sets the cancel mark (there is no wait to interrupt and no coroutine to resume).
    unsafe {
        may::coroutine::current().cancel();
    }
    std::panic::panic_any(generator::Error::Cancel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_timeout_counts_from_the_sweep_that_sees_it_and_never_fires_early() {
        let state = ConnState::new(0, None);
        let timeout = 40_000_000; // 40 ms in nanoseconds
        state.arm(PENDING | timeout);
        // the first pass starts the clock, it does not fire
        state.fire_if_due(1_000);
        assert_eq!(state.deadline.load(Ordering::Acquire), 1_000 + timeout);
        state.fire_if_due(1_000 + timeout - 1);
        assert_eq!(state.deadline.load(Ordering::Acquire), 1_000 + timeout);
        state.fire_if_due(1_000 + timeout);
        assert_eq!(state.disarm(), FIRED);
        // a wait that ended before a pass is not touched
        state.fire_if_due(5_000_000_000);
        assert_eq!(state.disarm(), NO_DEADLINE);
    }

    #[test]
    fn a_timeout_too_long_for_a_deadline_is_none() {
        assert_eq!(pending(Duration::MAX), None);
        assert_eq!(pending(Duration::from_nanos(PENDING - 1)), None);
        assert_eq!(
            pending(Duration::from_secs(1)),
            Some(PENDING | 1_000_000_000)
        );
        // the largest pending timeout neither reads as FIRED nor overflows into the flag
        let longest = pending(Duration::from_nanos(PENDING - 2)).unwrap();
        assert_ne!(longest, FIRED);
        let state = ConnState::new(0, None);
        state.arm(longest);
        state.fire_if_due(1_000);
        assert_eq!(state.deadline.load(Ordering::Acquire), PENDING - 1);
        state.fire_if_due(PENDING - 2);
        assert_eq!(state.deadline.load(Ordering::Acquire), PENDING - 1);
    }
}
