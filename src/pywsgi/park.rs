//! Idle keep-alive connections held without a coroutine ("parked").
//!
//! A keep-alive connection that stays idle for [`IDLE_RELEASE`](super::IDLE_RELEASE) has
//! already given its buffers back; what it still holds is its coroutine, whose stack keeps
//! two pages resident (the frames at the top, the runtime's sentinel words at the bottom):
//! 8 KiB of the ~12 KiB an idle connection costs. A server that spawns one handler per
//! connection without a limit ([`Spawn::Default`](crate::Spawn::Default), gevent's
//! `spawn='default'`) parks such a connection here instead: its handler returns, the
//! connection (socket, registry entry, peer address, keep-alive deadline) waits in a
//! [`Parking`] lot, and one coroutine per server (the hub) waits for all of them on an epoll
//! set of its own, nested in may's event loop. When the client sends its next request (or
//! closes), the hub hands the connection to a new handler in the server's pool, which serves it
//! exactly as the old one would have; when the keep-alive timeout passes first, the hub closes
//! it; when the server stops, every parked connection is closed at once.
//!
//! With a bounded pool (`spawn=Pool(n)`) an idle connection keeps its greenlet and its slot,
//! as in gevent, where the pool counts connections; TLS connections are never parked (their
//! records may hold input the socket no longer shows). Linux only (epoll, timerfd); elsewhere
//! [`Parking::park`] always refuses and the idle connection waits on its coroutine.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use super::conn::Connection;

/// A connection waiting for its next request without a coroutine.
pub(crate) struct Parked {
    pub(crate) conn: Box<dyn Connection>,
    /// The connection's socket (owned by `conn`).
    pub(crate) fd: RawFd,
    pub(crate) peer: Option<SocketAddr>,
    /// End of the keep-alive timeout; `None`: no timeout.
    pub(crate) deadline: Option<Instant>,
}

/// What a handler needs to park its connection.
#[derive(Clone)]
pub(crate) struct ParkCtx {
    pub(crate) parking: Arc<Parking>,
    pub(crate) fd: RawFd,
}

/// Gives a parked connection that became readable to a new handler (the server's pool).
/// Called by the hub with the lot locked: it must not block (spawning does not).
pub(crate) type Resume = Box<dyn Fn(&Arc<Parking>, Parked) + Send + Sync>;

#[cfg(target_os = "linux")]
pub(crate) use linux::Parking;

#[cfg(not(target_os = "linux"))]
pub(crate) use other::Parking;

#[cfg(not(target_os = "linux"))]
mod other {
    use super::{Parked, Resume};

    /// No parking on this platform: idle connections wait on their coroutines.
    pub(crate) struct Parking;

    impl Parking {
        pub(crate) fn new(_resume: Resume, _log: slog::Logger) -> Parking {
            Parking
        }

        pub(crate) fn park(self: &std::sync::Arc<Self>, parked: Parked) -> Result<(), Parked> {
            Err(parked)
        }

        pub(crate) fn set_closing(&self, _closing: bool) {}

        pub(crate) fn len(&self) -> usize {
            0
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{BTreeSet, HashMap};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::time::Instant;

    use may::io::{CoIo, WaitIo};

    use super::{Parked, Resume};

    /// The epoll key of the hub's timer (connection keys count up from 0).
    const TIMER_KEY: u64 = u64::MAX;
    /// Events taken per `epoll_wait`.
    const BATCH: usize = 64;

    /// The parked connections of one server, and the hub that watches them.
    pub(crate) struct Parking {
        lot: Mutex<Lot>,
        resume: Resume,
        log: slog::Logger,
    }

    #[derive(Default)]
    struct Lot {
        parked: HashMap<u64, Parked>,
        /// Keep-alive deadlines, earliest first.
        deadlines: BTreeSet<(Instant, u64)>,
        next_key: u64,
        /// Created at the first park, kept for the server's life.
        hub: Option<Arc<Hub>>,
        /// A hub coroutine runs (it ends when the lot is empty).
        running: bool,
        /// The server is closing: nothing is parked, what was is closed.
        closing: bool,
    }

    /// The hub's descriptors: its epoll set (registered with may, so that the hub coroutine
    /// can wait for it) and a timer in that set for the earliest keep-alive deadline.
    ///
    /// The fields drop in order: `epoll` (may takes the descriptor out of its own epoll set)
    /// before `epoll_fd` closes it. `CoIo<OwnedFd>` would close first and let may remove the
    /// number afterwards, by then perhaps a connection's socket, which would then never get
    /// another event.
    struct Hub {
        epoll: CoIo<EpollFd>,
        epoll_fd: OwnedFd,
        timer: OwnedFd,
    }

    /// The number of the hub's epoll descriptor, owned by `Hub::epoll_fd`.
    struct EpollFd(RawFd);

    impl AsRawFd for EpollFd {
        fn as_raw_fd(&self) -> RawFd {
            self.0
        }
    }

    fn last_error(what: &str) -> io::Error {
        let err = io::Error::last_os_error();
        io::Error::new(err.kind(), format!("{what}: {err}"))
    }

    impl Hub {
        fn new() -> io::Result<Hub> {
            #[allow(unsafe_code)]
            // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new
            // descriptor that we own from here on.
            let epoll = unsafe {
                let fd = libc::epoll_create1(libc::EPOLL_CLOEXEC);
                if fd < 0 {
                    return Err(last_error("epoll_create1"));
                }
                OwnedFd::from_raw_fd(fd)
            };
            #[allow(unsafe_code)]
            // SAFETY: as above, for timerfd_create.
            let timer = unsafe {
                let fd = libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                );
                if fd < 0 {
                    return Err(last_error("timerfd_create"));
                }
                OwnedFd::from_raw_fd(fd)
            };
            ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                timer.as_raw_fd(),
                libc::EPOLLIN as u32,
                TIMER_KEY,
            )?;
            let registered = CoIo::new(EpollFd(epoll.as_raw_fd()))
                .map_err(|err| io::Error::other(format!("registering the idle hub: {err}")))?;
            Ok(Hub {
                epoll: registered,
                epoll_fd: epoll,
                timer,
            })
        }

        fn epfd(&self) -> RawFd {
            self.epoll_fd.as_raw_fd()
        }

        /// Fires the timer at `at` (at once if it has passed).
        fn arm(&self, at: Instant) {
            let left = at.saturating_duration_since(Instant::now());
            let nanos = if left.is_zero() {
                1
            } else {
                left.subsec_nanos()
            };
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: libc::timespec {
                    tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
                    tv_nsec: nanos as libc::c_long,
                },
            };
            #[allow(unsafe_code)]
            // SAFETY: `spec` is a valid itimerspec and the old value is not asked for.
            let rc = unsafe {
                libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
            };
            debug_assert_eq!(rc, 0, "timerfd_settime: {}", io::Error::last_os_error());
        }

        /// Consumes the timer's expiration count (it is level-triggered in the set).
        fn clear_timer(&self) {
            let mut count = [0u8; 8];
            #[allow(unsafe_code)]
            // SAFETY: reads at most 8 bytes into our 8-byte buffer; the timer is
            // non-blocking, so EAGAIN (nothing to clear) returns at once.
            let _ = unsafe {
                libc::read(
                    self.timer.as_raw_fd(),
                    count.as_mut_ptr().cast(),
                    count.len(),
                )
            };
        }

        /// Takes the ready events, without waiting. Returns how many.
        fn ready(&self, events: &mut [libc::epoll_event; BATCH]) -> io::Result<usize> {
            loop {
                #[allow(unsafe_code)]
                // SAFETY: `events` has room for BATCH entries, the count we pass.
                let n =
                    unsafe { libc::epoll_wait(self.epfd(), events.as_mut_ptr(), BATCH as i32, 0) };
                if n >= 0 {
                    return Ok(n as usize);
                }
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }

    fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: u32, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: key };
        #[allow(unsafe_code)]
        // SAFETY: `event` is a valid epoll_event for the call's duration; `fd` is open (the
        // caller owns it through the parked connection, which is only dropped after it
        // left the set).
        let rc = unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) };
        if rc == 0 {
            Ok(())
        } else {
            Err(last_error("epoll_ctl"))
        }
    }

    impl Lot {
        /// Takes a connection out of the set and the lot.
        fn take(&mut self, key: u64) -> Option<Parked> {
            let parked = self.parked.remove(&key)?;
            if let Some(deadline) = parked.deadline {
                self.deadlines.remove(&(deadline, key));
            }
            if let Some(hub) = &self.hub {
                let _ = ctl(hub.epfd(), libc::EPOLL_CTL_DEL, parked.fd, 0, 0);
            }
            Some(parked)
        }

        fn take_all(&mut self) -> Vec<Parked> {
            let keys: Vec<u64> = self.parked.keys().copied().collect();
            keys.into_iter().filter_map(|key| self.take(key)).collect()
        }
    }

    impl Parking {
        /// An empty lot; `resume` serves a connection that became readable.
        pub(crate) fn new(resume: Resume, log: slog::Logger) -> Parking {
            Parking {
                lot: Mutex::new(Lot::default()),
                resume,
                log,
            }
        }

        fn lock(&self) -> MutexGuard<'_, Lot> {
            // Every update is completed before the lock is released; a panic cannot leave
            // it half done.
            self.lot.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// How many connections are parked.
        pub(crate) fn len(&self) -> usize {
            self.lock().parked.len()
        }

        /// Parks `parked` until its client sends, closes, or its deadline passes. Gives it
        /// back when it cannot be parked (the server is closing, no descriptors, no
        /// coroutine for the hub): the caller then waits on its own coroutine.
        pub(crate) fn park(self: &Arc<Self>, parked: Parked) -> Result<(), Parked> {
            let mut lot = self.lock();
            if lot.closing {
                return Err(parked);
            }
            let hub = match &lot.hub {
                Some(hub) => hub.clone(),
                None => match Hub::new() {
                    Ok(hub) => {
                        let hub = Arc::new(hub);
                        lot.hub = Some(hub.clone());
                        hub
                    }
                    Err(err) => {
                        slog::warn!(self.log, "cannot park idle connections"; "error" => %err);
                        return Err(parked);
                    }
                },
            };
            let key = lot.next_key;
            let events = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
            if let Err(err) = ctl(hub.epfd(), libc::EPOLL_CTL_ADD, parked.fd, events, key) {
                slog::debug!(self.log, "cannot park an idle connection"; "error" => %err);
                return Err(parked);
            }
            lot.next_key += 1;
            if let Some(deadline) = parked.deadline {
                let earliest = lot.deadlines.first().map(|(at, _)| *at);
                lot.deadlines.insert((deadline, key));
                if earliest.is_none_or(|at| deadline < at) {
                    hub.arm(deadline);
                }
            }
            lot.parked.insert(key, parked);
            if !lot.running {
                let me = self.clone();
                match crate::pool::greenlet::spawn_core(None, None, move |_| move || me.run()) {
                    Ok(_) => lot.running = true,
                    Err(err) => {
                        slog::warn!(self.log, "cannot start the idle connection hub"; "error" => %err);
                        return Err(lot.take(key).expect("parked just now"));
                    }
                }
            }
            Ok(())
        }

        /// `true`: close every parked connection now and park none until `false`.
        pub(crate) fn set_closing(&self, closing: bool) {
            let closed = {
                let mut lot = self.lock();
                lot.closing = closing;
                if !closing {
                    return;
                }
                let closed = lot.take_all();
                if let (Some(hub), true) = (&lot.hub, lot.running) {
                    // wake the hub: it finds the lot empty and ends
                    hub.arm(Instant::now());
                }
                closed
            };
            // Dropped outside the lock: each unregisters from the server's connections.
            drop(closed);
        }

        /// The hub: serves ready connections, closes expired ones, ends when none is left.
        fn run(self: Arc<Self>) {
            let Some(hub) = self.lock().hub.clone() else {
                self.lock().running = false;
                return;
            };
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
            loop {
                let n = match hub.ready(&mut events) {
                    Ok(n) => n,
                    Err(err) => {
                        // cannot happen with a valid set; do not spin: close what is parked
                        slog::error!(self.log, "idle connection hub failed"; "error" => %err);
                        let closed = {
                            let mut lot = self.lock();
                            lot.running = false;
                            lot.take_all()
                        };
                        drop(closed);
                        return;
                    }
                };
                if n == 0 {
                    let expired = {
                        let mut lot = self.lock();
                        let now = Instant::now();
                        let mut expired = Vec::new();
                        while let Some(&(at, key)) = lot.deadlines.first() {
                            if at > now {
                                hub.arm(at);
                                break;
                            }
                            expired.extend(lot.take(key));
                        }
                        if lot.parked.is_empty() {
                            lot.running = false;
                            drop(lot);
                            drop(expired);
                            return;
                        }
                        expired
                    };
                    // keep-alive timeout: closed, as a handler closes it
                    drop(expired);
                    hub.epoll.wait_io();
                    continue;
                }
                for event in &events[..n] {
                    let key = event.u64;
                    if key == TIMER_KEY {
                        hub.clear_timer();
                        continue;
                    }
                    let mut lot = self.lock();
                    if let Some(parked) = lot.take(key) {
                        if lot.closing {
                            drop(lot);
                            drop(parked);
                        } else {
                            // under the lock: a stop that begins now finds it in the pool
                            (self.resume)(&self, parked);
                        }
                    }
                }
            }
        }
    }
}
