//! `Pool`: a bounded group of coroutines (gevent: `gevent.pool.Pool` / `Group`), the
//! [`Greenlet`] handles of its members, and its mapping helpers (`apply`, `map`, `imap`).

pub(crate) mod greenlet;
mod group;
mod map;

pub use greenlet::{joinall, killall, spawn, AnyGreenlet, Greenlet, GreenletError};
pub use group::Group;
pub use map::{IMap, IMapUnordered};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use may::coroutine::Coroutine;
use may::sync::{Semphore, SyncFlag};

/// A group of coroutines with an optional limit on how many run at once.
///
/// gevent: `gevent.pool.Pool`. [`Pool::new`]`(n)` admits at most `n` members: [`Pool::spawn`]
/// blocks the caller while the pool is full, and a server given a pool stops accepting while
/// it is full (new clients wait in the kernel's listen backlog). [`Pool::unbounded`] is
/// gevent's `Pool(None)`/`Group`: it only tracks its members so they can be joined or killed.
///
/// A member's slot is released on every exit path: return, panic, or cancel by [`Pool::kill`].
/// (A coroutine stack overflow does not unwind, so it cannot release its slot, and its
/// [`Greenlet`] never becomes ready; give handlers enough stack.) Cloning a `Pool` gives
/// another handle to the same pool.
///
/// gevent's whole `Pool` API is here: [`spawn`](Pool::spawn) returns a [`Greenlet`] handle;
/// [`apply`](Pool::apply), [`apply_async`](Pool::apply_async), [`map`](Pool::map),
/// [`imap`](Pool::imap) and [`imap_unordered`](Pool::imap_unordered) run many calls through
/// the pool; [`add`](Pool::add), [`discard`](Pool::discard), [`killone`](Pool::killone),
/// [`contains`](Pool::contains) and `for g in &pool` manage its members. [`Group`] is the
/// unbounded pool under gevent's name.
///
/// ```
/// use may_gevent::Pool;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let pool = Pool::new(2);
/// let done = Arc::new(AtomicUsize::new(0));
/// for _ in 0..10 {
///     let done = done.clone();
///     // Blocks while two tasks are running.
///     pool.spawn(move || {
///         may::coroutine::sleep(std::time::Duration::from_millis(1));
///         done.fetch_add(1, Ordering::SeqCst);
///     });
/// }
/// assert!(pool.join(None));
/// assert_eq!(done.load(Ordering::SeqCst), 10);
/// assert_eq!(pool.free_count(), 2);
/// ```
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

pub(crate) struct PoolInner {
    size: Option<usize>,
    slots: Option<Semphore>,
    state: Mutex<PoolState>,
}

/// Member ids are sequential: hash them as they are (no SipHash on the accept path).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

type Ids = BuildHasherDefault<IdHasher>;

#[derive(Default)]
struct PoolState {
    /// Running members.
    live: HashMap<u64, AnyGreenlet, Ids>,
    /// Members already sent a cancel by `kill`.
    cancelled: HashSet<u64, Ids>,
    /// Fired when `live` becomes empty.
    join_waiters: Vec<Arc<SyncFlag>>,
    /// Fired when any member leaves (only `kill` waits on these).
    leave_waiters: Vec<Arc<SyncFlag>>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.inner.size)
            .field("len", &self.len())
            .finish()
    }
}

/// A reserved slot: one unit of the pool's semaphore, returned on drop. A member's greenlet
/// holds it until it finishes (or is discarded).
pub(crate) struct Permit {
    pool: Arc<PoolInner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(slots) = &self.pool.slots {
            slots.post();
        }
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding this lock cannot leave the map inconsistent (single
        // insert/remove operations), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A member joins (its greenlet holds a permit of this pool).
    fn enter(&self, id: u64, greenlet: AnyGreenlet) {
        self.lock().live.insert(id, greenlet);
    }

    /// A member leaves: it finished or was discarded. Runs while a killed member unwinds:
    /// only a std mutex held for a moment and non-blocking wake-ups (no may I/O, no may
    /// locks). The caller drops the member's permit afterwards, so the slot frees once the
    /// member is gone from `live`.
    fn leave(&self, id: u64) {
        let (joined, left, _gone) = {
            let mut state = self.lock();
            // Dropped after the lock is released: it may be the last handle of the greenlet,
            // and dropping that drops the task's value (user code).
            let Some(gone) = state.live.remove(&id) else {
                return;
            };
            if !state.cancelled.is_empty() {
                state.cancelled.remove(&id);
            }
            let joined = if state.live.is_empty() {
                std::mem::take(&mut state.join_waiters)
            } else {
                Vec::new()
            };
            (joined, std::mem::take(&mut state.leave_waiters), gone)
        };
        for waiter in joined.into_iter().chain(left) {
            waiter.fire();
        }
    }
}

impl Pool {
    /// A pool that runs at most `size` coroutines at once. gevent: `Pool(size)`.
    ///
    /// `Pool::new(0)` never runs anything: `spawn` blocks forever, as in gevent.
    pub fn new(size: usize) -> Pool {
        Pool::build(Some(size))
    }

    /// A pool without a limit that only tracks its members. gevent: `Pool(None)` / `Group`.
    pub fn unbounded() -> Pool {
        Pool::build(None)
    }

    fn build(size: Option<usize>) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                size,
                slots: size.map(Semphore::new),
                state: Mutex::new(PoolState::default()),
            }),
        }
    }

    /// The limit, or `None` for an unbounded pool. gevent: `Pool.size`.
    pub fn size(&self) -> Option<usize> {
        self.inner.size
    }

    /// How many members are running. gevent: `len(pool)`.
    pub fn len(&self) -> usize {
        self.inner.lock().live.len()
    }

    /// True when no member is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many more members may start now; `usize::MAX` for an unbounded pool.
    /// gevent: `Pool.free_count()`.
    pub fn free_count(&self) -> usize {
        match self.inner.size {
            Some(size) => size.saturating_sub(self.len()),
            None => usize::MAX,
        }
    }

    /// True when the pool is at its limit (never for an unbounded pool). gevent: `Pool.full()`.
    pub fn full(&self) -> bool {
        self.free_count() == 0
    }

    /// Wait until a slot is free or `timeout` passes; returns [`Pool::free_count`].
    /// gevent: `Pool.wait_available(timeout)`.
    pub fn wait_available(&self, timeout: impl Into<Option<Duration>>) -> usize {
        if let Some(slots) = &self.inner.slots {
            let got = match timeout.into() {
                Some(timeout) => slots.wait_timeout(timeout),
                None => {
                    slots.wait();
                    true
                }
            };
            if got {
                slots.post();
            }
        }
        self.free_count()
    }

    /// Run `f` in a new coroutine that belongs to this pool, blocking the caller while the
    /// pool is full; its [`Greenlet`] handle. gevent: `Pool.spawn`.
    ///
    /// Dropping the handle does not stop the task; it stays a member until it ends.
    ///
    /// # Panics
    /// If the coroutine cannot be created (out of memory for its stack), like `may::go!`.
    pub fn spawn<F, T>(&self, f: F) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.acquire();
        match self.spawn_with(permit, None, f) {
            Ok(handle) => handle,
            Err(err) => panic!("may_gevent::Pool::spawn: cannot create a coroutine: {err}"),
        }
    }

    /// Like [`spawn`](Pool::spawn), but give the task back instead of blocking when the pool
    /// is full. gevent: `Pool.add(g, blocking=False)` raising `PoolFull`.
    ///
    /// # Panics
    /// If the coroutine cannot be created, like [`spawn`](Pool::spawn).
    pub fn try_spawn<F, T>(&self, f: F) -> Result<Greenlet<T>, F>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let Some(permit) = self.try_acquire() else {
            return Err(f);
        };
        match self.spawn_with(permit, None, f) {
            Ok(handle) => Ok(handle),
            Err(err) => panic!("may_gevent::Pool::try_spawn: cannot create a coroutine: {err}"),
        }
    }

    /// Reserve a slot, blocking while the pool is full (gevent's accept gating).
    pub(crate) fn acquire(&self) -> Permit {
        if let Some(slots) = &self.inner.slots {
            slots.wait();
        }
        Permit {
            pool: self.inner.clone(),
        }
    }

    /// Reserve a slot if one is free now.
    pub(crate) fn try_acquire(&self) -> Option<Permit> {
        if let Some(slots) = &self.inner.slots {
            if !slots.try_wait() {
                return None;
            }
        }
        Some(Permit {
            pool: self.inner.clone(),
        })
    }

    /// Start a member in a slot reserved with [`Pool::acquire`].
    pub(crate) fn spawn_with<F, T>(
        &self,
        permit: Permit,
        stack_size: Option<usize>,
        f: F,
    ) -> io::Result<Greenlet<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // If the spawn fails, the closure is dropped and the slot released.
        greenlet::spawn_core(Some(permit), stack_size, |_| f)
    }

    /// Start tracking a task that is already running (spawned elsewhere: [`spawn`],
    /// another pool), blocking while this pool is full; it takes a slot until it ends or is
    /// [`discard`](Pool::discard)ed. Nothing happens if it has finished or is already a
    /// member. gevent: `Group.add` / `Pool.add(greenlet)`.
    pub fn add(&self, greenlet: impl AsRef<AnyGreenlet>) {
        let greenlet = greenlet.as_ref();
        if greenlet.ready() || self.contains(greenlet) {
            return;
        }
        let permit = self.acquire();
        // Err: finished meanwhile, or added by someone else: the permit drops, the slot frees.
        let _ = greenlet.core().link(permit, greenlet);
    }

    /// Stop tracking a member (it keeps running) and free its slot. gevent: `Group.discard`.
    pub fn discard(&self, greenlet: impl AsRef<AnyGreenlet>) {
        let greenlet = greenlet.as_ref();
        let permit = greenlet.core().unlink(&self.inner);
        self.inner.leave(greenlet.id());
        drop(permit);
    }

    /// True if the task is a member (running in this pool). gevent: `greenlet in group`.
    pub fn contains(&self, greenlet: impl AsRef<AnyGreenlet>) -> bool {
        self.inner.lock().live.contains_key(&greenlet.as_ref().id())
    }

    /// The running members, in no particular order (a snapshot). gevent: `iter(group)`,
    /// `group.greenlets`; `for g in &pool` does the same.
    pub fn greenlets(&self) -> Vec<AnyGreenlet> {
        self.inner.lock().live.values().cloned().collect()
    }

    /// Kill one member and wait for it to finish, at most `timeout` (`None`: no limit).
    /// Returns true if it has finished. Does nothing (and returns whether it has finished) if
    /// it is not a member. gevent: `Group.killone(greenlet, block=True, timeout)`.
    pub fn killone(
        &self,
        greenlet: impl AsRef<AnyGreenlet>,
        timeout: impl Into<Option<Duration>>,
    ) -> bool {
        let greenlet = greenlet.as_ref();
        {
            let mut state = self.inner.lock();
            if !state.live.contains_key(&greenlet.id()) {
                return greenlet.ready();
            }
            state.cancelled.insert(greenlet.id());
        }
        greenlet.kill(timeout)
    }

    /// Wait until the pool is empty or `timeout` passes (`None`: no limit).
    /// Returns true if it became empty. gevent: `Group.join(timeout)`.
    pub fn join(&self, timeout: impl Into<Option<Duration>>) -> bool {
        let flag = {
            let mut state = self.inner.lock();
            if state.live.is_empty() {
                return true;
            }
            state.join_waiters.retain(|flag| !flag.is_fired());
            let flag = Arc::new(SyncFlag::new());
            state.join_waiters.push(flag.clone());
            flag
        };
        match timeout.into() {
            Some(timeout) => flag.wait_timeout(timeout),
            None => {
                flag.wait();
                true
            }
        }
    }

    /// Cancel every member and wait for them to finish, at most `timeout` (`None`: no limit).
    /// Returns true when the pool is empty. gevent: `Group.kill(block=True, timeout)`.
    ///
    /// A member is cancelled at its next blocking call (socket I/O, sleep, lock, channel):
    /// its stack unwinds, its `Drop`s run and its sockets close. A member in a loop that never
    /// blocks cannot be cancelled.
    ///
    /// Members are cancelled **one at a time**: each is given up to 100 ms to finish
    /// unwinding before the next is cancelled, so the `Drop`s of two cancelled members never
    /// run at the same moment (a `Drop` that takes a `may::sync::Mutex` another unwinding
    /// member holds would abort the process; see the crate docs, "What a `Drop` may do when a
    /// handler is cancelled"). When `timeout` runs out, the members not cancelled yet are
    /// cancelled all at once.
    pub fn kill(&self, timeout: impl Into<Option<Duration>>) -> bool {
        let deadline = timeout.into().map(|timeout| Instant::now() + timeout);
        let left = |deadline: Option<Instant>| {
            deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            })
        };
        while !left(deadline).is_zero() {
            let Some((id, greenlet, leave)) = self.next_to_cancel() else {
                break;
            };
            greenlet.cancel();
            self.wait_leave(id, leave, left(deadline).min(KILL_EACH));
        }
        loop {
            if !self.cancel_all() {
                return true;
            }
            let step = Duration::from_millis(20);
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return self.is_empty();
                    }
                    left.min(step)
                }
                None => step,
            };
            if self.join(wait) {
                return true;
            }
        }
    }
}

impl IntoIterator for &Pool {
    type Item = AnyGreenlet;
    type IntoIter = std::vec::IntoIter<AnyGreenlet>;

    /// The running members (a snapshot). gevent: `for greenlet in group`.
    fn into_iter(self) -> Self::IntoIter {
        self.greenlets().into_iter()
    }
}

/// How long [`Pool::kill`] waits for one cancelled member before cancelling the next.
const KILL_EACH: Duration = Duration::from_millis(100);

impl Pool {
    /// A running member not cancelled yet, marked as cancelled, with a flag that fires when
    /// any member leaves.
    fn next_to_cancel(&self) -> Option<(u64, AnyGreenlet, Arc<SyncFlag>)> {
        let mut state = self.inner.lock();
        let (id, greenlet) = state
            .live
            .iter()
            .filter(|(id, g)| !state.cancelled.contains(id) && g.core().coroutine().is_some())
            .map(|(id, g)| (*id, g.clone()))
            .next()?;
        state.cancelled.insert(id);
        let leave = Arc::new(SyncFlag::new());
        state.leave_waiters.push(leave.clone());
        Some((id, greenlet, leave))
    }

    /// Wait until member `id` has left the pool, at most `timeout`.
    fn wait_leave(&self, id: u64, mut leave: Arc<SyncFlag>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !leave.wait_timeout(left) {
                return; // timed out
            }
            let mut state = self.inner.lock();
            if !state.live.contains_key(&id) {
                return;
            }
            leave = Arc::new(SyncFlag::new());
            state.leave_waiters.push(leave.clone());
        }
    }

    /// Send a cancel to every member not cancelled yet, without waiting.
    /// Returns false when the pool is empty.
    pub(crate) fn cancel_all(&self) -> bool {
        let to_cancel: Vec<AnyGreenlet> = {
            let mut state = self.inner.lock();
            if state.live.is_empty() {
                return false;
            }
            let fresh: Vec<AnyGreenlet> = state
                .live
                .iter()
                .filter(|(id, g)| !state.cancelled.contains(id) && g.core().coroutine().is_some())
                .map(|(_, g)| g.clone())
                .collect();
            for greenlet in &fresh {
                state.cancelled.insert(greenlet.id());
            }
            fresh
        };
        for greenlet in &to_cancel {
            greenlet.cancel();
        }
        true
    }
}

/// Cancel a coroutine: at its next yield point it unwinds with a `generator::Error::Cancel`
/// panic that `may` catches.
pub(crate) fn cancel(co: &Coroutine) {
    #[allow(unsafe_code)]
    // SAFETY: may's cancel is memory-safe; it is `unsafe` because the cancelled code stops at
    // an arbitrary blocking call and unwinds from there. Unwinding is guaranteed (lib.rs
    // refuses to compile with `panic = "abort"`); what a member's `Drop` may do while it
    // unwinds is documented in the crate docs, and `Pool::kill` cancels one member at a time
    // so that two members' guards never contend.
    unsafe {
        co.cancel()
    }
}

/// True when a panic payload is may's coroutine cancellation (which must keep unwinding).
pub(crate) fn is_cancel(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<generator::Error>()
}
