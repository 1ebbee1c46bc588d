//! Waiting for a socket to become readable or writable without doing any I/O on it
//! (gevent: `gevent.socket.wait_read` / `wait_write`), on a coroutine or a plain thread.
//!
//! On a coroutine the wait parks only that coroutine, in may's event loop:
//!
//! 1. `poll(2)` with a zero timeout asks the kernel whether the socket is ready already;
//! 2. if not, the coroutine parks in may's [`WaitIo::wait_io`], which returns on the next
//!    event of the socket (may registers every socket edge-triggered for both directions, so
//!    an event of the other direction wakes it too), then goes back to 1. An event between
//!    1 and 2 is not lost: may records it in the socket's flags, and `wait_io` then returns
//!    at once.
//!
//! `wait_io` has no timeout: a small timer coroutine wakes the waiter through the socket's
//! [`WaitIoWaker`] when the timeout passes (it is told to do nothing, under a lock, as soon
//! as the wait ends, so it never wakes a later operation). A shutdown of the socket (what a
//! server's `stop()` does to its connections) is an event: the wait ends, and the socket
//! polls as ready (the next read sees end-of-file, the next write an error).
//!
//! A cancel (`stop()`'s last step, `Pool::kill`) wakes `wait_io` too, but `wait_io` clears
//! the coroutine's cancel mark instead of unwinding. It is recognisable: the socket's event
//! flags are then empty (every other wake-up sets them), and the wait raises the cancel
//! again with `may::coroutine::trigger_cancel_panic`, so the coroutine unwinds as it would
//! from any may call. (A cancel that arrives in the same instant as an event of the socket
//! cannot be told apart from that event; it is then lost, as with any wake-up race, and the
//! wait goes on until the socket is ready, shut down, or the timeout passes.)
//!
//! On a plain thread (not a coroutine), the wait is a blocking `poll(2)` with the timeout.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use may::coroutine::Coroutine;
use may::io::{AsIoData, WaitIo, WaitIoWaker};

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Data to read, end-of-file, or an error.
    Read,
    /// Room in the send buffer, a shut-down write side, or an error.
    Write,
}

impl Interest {
    fn events(self) -> libc::c_short {
        match self {
            Interest::Read => libc::POLLIN,
            Interest::Write => libc::POLLOUT,
        }
    }
}

/// Wait until `sock` is ready for `interest`, at most `timeout` (`None`: no limit).
///
/// # Errors
/// `TimedOut` when the timeout passed first; `poll(2)` failures (a closed descriptor).
pub(crate) fn wait_ready<S: AsIoData + AsRawFd>(
    sock: &S,
    interest: Interest,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    if !may::coroutine::is_coroutine() {
        // a plain thread may block: the kernel waits for us
        return if poll(fd, interest, timeout)? {
            Ok(())
        } else {
            Err(timed_out())
        };
    }
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    let mut timer: Option<Timer> = None;
    loop {
        if poll(fd, interest, Some(Duration::ZERO))? {
            return Ok(());
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || timer.as_ref().is_some_and(Timer::fired) {
                return Err(timed_out());
            }
            if timer.is_none() {
                timer = Some(Timer::start(sock.waker(), left)?);
            }
        }
        if sock.wait_io() == 0 || crate::pool::greenlet::cancel_swallowed() {
            // woken with no event of the socket: a cancel, which wait_io swallowed (or with
            // one, and a cancel that came with it lost its mark the same way)
            drop(timer);
            return Err(raise_cancel());
        }
    }
}

/// One `poll(2)` of `fd`: true when it is ready for `interest` (or in error, or hung up).
fn poll(fd: RawFd, interest: Interest, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    loop {
        let millis = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // round up: a timeout of 0.5 ms must not become a busy loop of zero polls
                let millis = left.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(millis).unwrap_or(libc::c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events: interest.events(),
            revents: 0,
        };
        #[allow(unsafe_code)]
        // SAFETY: `pfd` is one valid, initialised pollfd and we pass a count of 1; poll(2)
        // only writes its `revents`. `fd` is a descriptor the caller keeps open.
        let rc = unsafe { libc::poll(&mut pfd, 1, millis) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if pfd.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        return Ok(rc > 0 && pfd.revents != 0);
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out waiting for the socket")
}

/// Re-raise a cancel that `wait_io` swallowed: unwind like may does from its own calls. The
/// error is returned only while already unwinding (in a `Drop`), where a second panic would
/// abort the process.
fn raise_cancel() -> io::Error {
    if !std::thread::panicking() {
        may::coroutine::trigger_cancel_panic();
    }
    io::Error::other("Canceled")
}

/// Wakes a coroutine parked in `wait_io` once a timeout passes, unless dropped first.
struct Timer {
    shared: Arc<TimerShared>,
    co: Coroutine,
}

struct TimerShared {
    /// Set when the wait ended: the timer must not wake anything any more.
    done: Mutex<bool>,
    /// The timeout passed and the waiter was woken.
    fired: AtomicBool,
}

impl Timer {
    fn start(waker: WaitIoWaker, after: Duration) -> io::Result<Timer> {
        let shared = Arc::new(TimerShared {
            done: Mutex::new(false),
            fired: AtomicBool::new(false),
        });
        let theirs = shared.clone();
        // may's default stack: may recycles those coroutines instead of mapping a new stack
        let handle = may::go!(may::coroutine::Builder::new(), move || {
            // returns early only when the waiter is done and unparks us
            may::coroutine::park_timeout(after);
            let done = theirs.done.lock().unwrap_or_else(|p| p.into_inner());
            if !*done {
                theirs.fired.store(true, Ordering::Release);
                // non-blocking: marks the socket's flags and schedules the waiter
                waker.wakeup();
            }
        })?;
        Ok(Timer {
            shared,
            co: handle.coroutine().clone(),
        })
    }

    fn fired(&self) -> bool {
        self.shared.fired.load(Ordering::Acquire)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // Also during a cancel's unwinding: a std mutex held for a moment and an unpark.
        *self.shared.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.co.unpark();
    }
}
