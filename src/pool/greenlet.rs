//! `Greenlet`: the handle of a coroutine spawned by [`spawn`], [`Pool::spawn`] or
//! [`Group::spawn`](crate::Group) (gevent: `gevent.Greenlet`, `gevent.spawn`, `gevent.joinall`,
//! `gevent.killall`).

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use may::coroutine::{Builder, Coroutine};
use may::sync::SyncFlag;

use super::{cancel, is_cancel, Permit, PoolInner, KILL_EACH};

#[cfg(doc)]
use super::Pool;

/// Why [`Greenlet::get`] (or [`Pool::map`], an [`IMap`](crate::IMap) item…) has no value.
/// gevent raises the greenlet's exception, `GreenletExit` or `Timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GreenletError {
    /// The task panicked; the panic message (`"Box<dyn Any>"` when the payload is not a
    /// string). gevent: the exception the greenlet raised.
    Panicked(String),
    /// The task was killed ([`AnyGreenlet::kill`], [`Pool::kill`], [`killall`]…) before it
    /// returned. gevent: `GreenletExit`.
    Killed,
    /// The timeout given to `get`/`take` passed while the task was still running (it keeps
    /// running). gevent: `gevent.Timeout`.
    Timeout,
    /// The value was already moved out by [`Greenlet::take`].
    Taken,
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreenletError::Panicked(message) => write!(f, "the greenlet panicked: {message}"),
            GreenletError::Killed => f.write_str("the greenlet was killed"),
            GreenletError::Timeout => f.write_str("timed out waiting for the greenlet"),
            GreenletError::Taken => f.write_str("the greenlet's value was already taken"),
        }
    }
}

impl std::error::Error for GreenletError {}

/// The message of a panic payload (`panic!` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// Run `f`, turning a panic into [`GreenletError::Panicked`]. A cancel is returned as
/// `Killed` with its payload, which the caller must resume once it has recorded the outcome.
pub(crate) fn run_catching<T>(
    f: impl FnOnce() -> T,
) -> Result<T, (GreenletError, Option<Box<dyn Any + Send>>)> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Ok(value),
        Err(payload) if is_cancel(payload.as_ref()) => Err((GreenletError::Killed, Some(payload))),
        Err(payload) => Err((
            GreenletError::Panicked(panic_message(payload.as_ref())),
            None,
        )),
    }
}

/// The name of a greenlet's coroutine is its [`AnyGreenlet::name`], `Greenlet-<id>`: that is
/// how a task knows which greenlet it is (one small string per task, where a coroutine-local
/// would allocate the coroutine's local map; a server spawns one greenlet per connection).
const NAME_PREFIX: &str = "Greenlet-";

/// The id of the greenlet running the caller, or 0 (no greenlet: a thread or a bare coroutine).
pub(crate) fn current_id() -> u64 {
    if !may::coroutine::is_coroutine() {
        return 0;
    }
    may::coroutine::current()
        .name()
        .and_then(|name| name.strip_prefix(NAME_PREFIX))
        .and_then(|id| id.parse().ok())
        .unwrap_or(0)
}

/// Greenlet ids: unique in the process, from 1.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The greenlets sent a cancel that have not finished yet.
///
/// may's `wait_io` clears the coroutine's cancel mark when it returns, and when the cancel
/// comes while the coroutine is running, or together with a readiness event, `wait_io`
/// returns that event: the cancel is gone and the task would wait on. The crate's own waits
/// ([`cancel_swallowed`]) look here after every `wait_io`, so a killed greenlet unwinds
/// whatever woke it.
static KILLED: Mutex<Option<HashSet<u64>>> = Mutex::new(None);
/// How many ids `KILLED` holds: a wait looks no further while it is 0 (nearly always).
static KILLED_COUNT: AtomicUsize = AtomicUsize::new(0);

fn killed() -> MutexGuard<'static, Option<HashSet<u64>>> {
    // Only inserts and removals happen under this lock: a poisoned set is still consistent.
    KILLED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Record that greenlet `id` is being sent a cancel (before it is sent).
fn killed_enter(id: u64) {
    let mut set = killed();
    let set = set.get_or_insert_with(HashSet::new);
    set.insert(id);
    KILLED_COUNT.store(set.len(), Ordering::SeqCst);
}

/// Greenlet `id` has finished (or will not be cancelled after all).
fn killed_leave(id: u64) {
    let mut set = killed();
    if let Some(set) = set.as_mut() {
        set.remove(&id);
        KILLED_COUNT.store(set.len(), Ordering::SeqCst);
    }
}

/// True when the caller is a greenlet that was sent a cancel which it has not unwound from:
/// call it after may's `wait_io` returned with an event (which may have swallowed the
/// cancel), and unwind if it says so.
#[inline(always)]
pub(crate) fn cancel_swallowed() -> bool {
    // Pairs with the cancel's release of the coroutine's cancel mark, which `wait_io` read
    // when it cleared the mark: the entry made before the cancel is seen here.
    fence(Ordering::Acquire);
    KILLED_COUNT.load(Ordering::Relaxed) != 0 && current_was_killed()
}

/// Whether the calling greenlet is in `KILLED` (some greenlet is).
#[cold]
#[inline(never)]
fn current_was_killed() -> bool {
    let id = current_id();
    id != 0 && killed().as_ref().is_some_and(|set| set.contains(&id))
}

enum Outcome<T> {
    /// Returned; `None` once [`Greenlet::take`] moved the value out.
    Value(Option<T>),
    Failed(GreenletError),
}

struct State<T> {
    /// `None` while the task runs.
    outcome: Option<Outcome<T>>,
    /// One slot in each pool that tracks the task, released when it finishes or is discarded.
    links: Links,
    /// The task has finished and left its pools: `join` returns at once.
    released: bool,
    /// Fired once `released` is set; made by the first waiter only (a `SyncFlag` is a few
    /// hundred bytes, and a server's greenlets, one per connection, are seldom joined).
    waiters: Option<Arc<SyncFlag>>,
}

/// The pool slots a task holds: almost always one (the pool it was spawned in), kept inline.
#[derive(Default)]
struct Links {
    first: Option<Permit>,
    more: Vec<Permit>,
}

impl Links {
    fn push(&mut self, permit: Permit) {
        match self.first {
            None => self.first = Some(permit),
            Some(_) => self.more.push(permit),
        }
    }

    fn holds(&self, pool: &Arc<PoolInner>) -> bool {
        self.first
            .iter()
            .chain(&self.more)
            .any(|held| Arc::ptr_eq(&held.pool, pool))
    }

    /// Take the permit of `pool` out, if held.
    fn remove(&mut self, pool: &Arc<PoolInner>) -> Option<Permit> {
        if self
            .first
            .as_ref()
            .is_some_and(|held| Arc::ptr_eq(&held.pool, pool))
        {
            let permit = self.first.take();
            if !self.more.is_empty() {
                self.first = Some(self.more.swap_remove(0));
            }
            return permit;
        }
        let at = self
            .more
            .iter()
            .position(|held| Arc::ptr_eq(&held.pool, pool))?;
        Some(self.more.swap_remove(at))
    }

    fn into_iter(self) -> impl Iterator<Item = Permit> {
        self.first.into_iter().chain(self.more)
    }
}

/// What a greenlet's handles share: its outcome, its pool slots and its done flag.
pub(crate) struct Core<T> {
    id: u64,
    co: OnceLock<Coroutine>,
    /// Set with the outcome, before the pool slots are released (gevent: `dead` before the
    /// links run).
    finished: AtomicBool,
    /// A cancel was sent: never send a second one (it would wake the task in its `Drop`s).
    cancelled: AtomicBool,
    state: Mutex<State<T>>,
}

/// A greenlet's state seen without its value type.
pub(crate) trait CoreDyn: Send + Sync {
    fn id(&self) -> u64;
    fn coroutine(&self) -> Option<&Coroutine>;
    /// Wait until the outcome is recorded and the slots are released, at most `timeout`
    /// (`None`: no limit); true if they are.
    fn wait_done(&self, timeout: Option<Duration>) -> bool;
    /// The outcome is recorded (the pool slots may not be released yet).
    fn finished(&self) -> bool;
    /// Mark it cancelled; false if it already was.
    fn mark_cancelled(&self) -> bool;
    /// `None` while running, `Some(None)` when it returned, `Some(Some(err))` when it failed.
    fn status(&self) -> Option<Option<GreenletError>>;
    /// Track it in the pool of `permit`; gives the permit back if it has finished or is
    /// already tracked there.
    fn link(&self, permit: Permit, me: &AnyGreenlet) -> Result<(), Permit>;
    /// Stop tracking it in `pool`; the slot, if it still held one there.
    fn unlink(&self, pool: &Arc<PoolInner>) -> Option<Permit>;
}

impl<T> Core<T> {
    fn new() -> Core<T> {
        Core {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            co: OnceLock::new(),
            finished: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            state: Mutex::new(State {
                released: false,
                waiters: None,
                outcome: None,
                links: Links::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Only single assignments happen under this lock: a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record the outcome, leave every pool (their slots free first, as gevent's `rawlink`
    /// order does), then wake the joiners. Never blocks: it also runs in a task being killed.
    fn finish(&self, outcome: Outcome<T>) {
        let links = {
            let mut state = self.lock();
            state.outcome = Some(outcome);
            self.finished.store(true, Ordering::Release);
            std::mem::take(&mut state.links)
        };
        // Against `AnyGreenlet::cancel`'s entry: one of the two sees the other's store (the
        // fences are sequentially consistent), so a finished task never stays in `KILLED`.
        fence(Ordering::SeqCst);
        if self.cancelled.load(Ordering::Relaxed) && KILLED_COUNT.load(Ordering::Relaxed) != 0 {
            killed_leave(self.id);
        }
        for permit in links.into_iter() {
            permit.pool.leave(self.id);
            drop(permit);
        }
        let waiters = {
            let mut state = self.lock();
            state.released = true;
            state.waiters.take()
        };
        if let Some(waiters) = waiters {
            waiters.fire();
        }
    }
}

impl<T: Send + 'static> CoreDyn for Core<T> {
    fn id(&self) -> u64 {
        self.id
    }

    fn coroutine(&self) -> Option<&Coroutine> {
        self.co.get()
    }

    fn wait_done(&self, timeout: Option<Duration>) -> bool {
        let flag = {
            let mut state = self.lock();
            if state.released {
                return true;
            }
            state
                .waiters
                .get_or_insert_with(|| Arc::new(SyncFlag::new()))
                .clone()
        };
        // (a fire between the unlock and the wait is kept by the flag)
        match timeout {
            Some(timeout) => flag.wait_timeout(timeout),
            None => {
                flag.wait();
                true
            }
        }
    }

    fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    fn mark_cancelled(&self) -> bool {
        !self.cancelled.swap(true, Ordering::AcqRel)
    }

    fn status(&self) -> Option<Option<GreenletError>> {
        match &self.lock().outcome {
            None => None,
            Some(Outcome::Value(_)) => Some(None),
            Some(Outcome::Failed(err)) => Some(Some(err.clone())),
        }
    }

    fn link(&self, permit: Permit, me: &AnyGreenlet) -> Result<(), Permit> {
        let mut state = self.lock();
        if state.outcome.is_some() || state.links.holds(&permit.pool) {
            return Err(permit);
        }
        // Lock order: a greenlet's state, then a pool's (never the other way round).
        permit.pool.enter(self.id, me.clone());
        state.links.push(permit);
        Ok(())
    }

    fn unlink(&self, pool: &Arc<PoolInner>) -> Option<Permit> {
        self.lock().links.remove(pool)
    }
}

/// Start a greenlet: `make` gets its handle (without the value type) and returns the body.
/// With a `permit`, the greenlet is a member of that permit's pool from the start.
pub(crate) fn spawn_core<T, F>(
    permit: Option<Permit>,
    stack_size: Option<usize>,
    make: impl FnOnce(&AnyGreenlet) -> F,
) -> std::io::Result<Greenlet<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let core = Arc::new(Core::<T>::new());
    let greenlet = Greenlet::from_core(core.clone());
    if let Some(permit) = permit {
        permit.pool.enter(core.id, greenlet.any.clone());
        core.lock().links.push(permit);
    }
    // boxed: the frames at the top of every task's stack hold a pointer, not the closure
    // (a connection's whole state, for a server) copied from frame to frame
    let body: Box<dyn FnOnce() -> T + Send> = Box::new(make(&greenlet.any));
    let mut builder = Builder::new().name(greenlet.any.name());
    if let Some(words) = stack_size {
        builder = builder.stack_size(words);
    }
    let inner = core.clone();
    match may::go!(builder, move || run(inner, body)) {
        Ok(handle) => {
            // The handle detaches the coroutine when it drops; the greenlet keeps what
            // `kill` needs.
            let _ = core.co.set(handle.coroutine().clone());
            Ok(greenlet)
        }
        Err(err) => {
            // The closure (and the body) is dropped: record a failure and free the slot.
            core.finish(Outcome::Failed(GreenletError::Panicked(format!(
                "cannot create a coroutine: {err}"
            ))));
            Err(err)
        }
    }
}

/// The body of every greenlet: run, record the outcome, and let a cancel finish unwinding.
fn run<T, F: FnOnce() -> T>(core: Arc<Core<T>>, f: F) {
    match run_catching(f) {
        Ok(value) => core.finish(Outcome::Value(Some(value))),
        Err((err, payload)) => {
            core.finish(Outcome::Failed(err));
            if let Some(payload) = payload {
                resume_unwind(payload);
            }
        }
    }
}

/// Run `f` in a new coroutine that belongs to no pool and return its handle.
/// gevent: `gevent.spawn(f)` / `Greenlet.spawn`.
///
/// Dropping the handle does not stop the task.
///
/// # Panics
/// If the coroutine cannot be created (out of memory for its stack), like `may::go!`.
///
/// ```
/// let g = may_gevent::spawn(|| 6 * 7);
/// assert!(g.join(std::time::Duration::from_secs(5)));
/// assert!(g.ready() && g.successful());
/// assert_eq!(g.get(None), Ok(42));
/// ```
pub fn spawn<F, T>(f: F) -> Greenlet<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match spawn_core(None, None, |_| f) {
        Ok(greenlet) => greenlet,
        Err(err) => panic!("may_gevent::spawn: cannot create a coroutine: {err}"),
    }
}

/// The handle of a running or finished task, without its value type: what a pool holds and
/// what iterating over a pool gives. gevent: a `Greenlet` seen as a group member.
///
/// [`Greenlet<T>`] dereferences to this type, so every method here is also a method of
/// `Greenlet<T>`. Handles compare equal when they name the same task. Dropping a handle does
/// not stop the task.
#[derive(Clone)]
pub struct AnyGreenlet {
    core: Arc<dyn CoreDyn>,
}

impl AnyGreenlet {
    pub(crate) fn core(&self) -> &dyn CoreDyn {
        &*self.core
    }

    /// A number that identifies the task in this process (from 1). gevent: `minimal_ident`.
    pub fn id(&self) -> u64 {
        self.core.id()
    }

    /// `"Greenlet-<id>"`. gevent: `Greenlet.name`.
    pub fn name(&self) -> String {
        format!("{NAME_PREFIX}{}", self.id())
    }

    /// True once the task has finished: returned, panicked or been killed.
    /// gevent: `Greenlet.ready()` / `dead`.
    ///
    /// As in gevent, a task is ready a moment before it has left its pools: when
    /// [`join`](AnyGreenlet::join) returns, its slots are free; when [`Pool::join`] returns,
    /// its members are ready.
    pub fn ready(&self) -> bool {
        self.core.finished()
    }

    /// True once the task has finished by returning a value. gevent: `Greenlet.successful()`.
    pub fn successful(&self) -> bool {
        self.ready() && self.core.status() == Some(None)
    }

    /// Why the task failed, once it has: panicked (with the message) or killed. `None` while
    /// it runs or when it returned. gevent: `Greenlet.exception`.
    pub fn exception(&self) -> Option<GreenletError> {
        if !self.ready() {
            return None;
        }
        self.core.status().flatten()
    }

    /// Wait until the task finishes or `timeout` passes (`None`: no limit). Returns true if
    /// it has finished (and left its pools). gevent: `Greenlet.join(timeout)` (which returns
    /// `None`; see `ready()`).
    pub fn join(&self, timeout: impl Into<Option<Duration>>) -> bool {
        self.core.wait_done(timeout.into())
    }

    /// Kill the task and wait until it has finished unwinding, at most `timeout` (`None`: no
    /// limit). Returns true if it has finished. gevent: `Greenlet.kill(block=True, timeout)`.
    ///
    /// The task is cancelled at its next blocking call (socket I/O, sleep, lock, channel):
    /// its stack unwinds, its `Drop`s run, its pool slots are released and
    /// [`Greenlet::get`] reports [`GreenletError::Killed`]. A task that never blocks cannot
    /// be killed; a task that has not started yet still runs until its first blocking call
    /// (gevent never starts a greenlet killed before it ran), and one that then returns
    /// keeps its value.
    pub fn kill(&self, timeout: impl Into<Option<Duration>>) -> bool {
        let deadline = Deadline::new(timeout.into());
        while !self.cancel() {
            if deadline.left().is_zero() {
                return self.ready();
            }
            may::coroutine::sleep(Duration::from_millis(1));
        }
        self.join(deadline.timeout())
    }

    /// Send the cancel, once per task whoever asks ([`kill`](AnyGreenlet::kill),
    /// [`Pool::kill`], [`killall`]); false if the coroutine is still being created (try
    /// again).
    pub(crate) fn cancel(&self) -> bool {
        if self.ready() {
            return true;
        }
        match self.core.coroutine() {
            Some(co) => {
                if self.core.mark_cancelled() {
                    let id = self.id();
                    killed_enter(id);
                    fence(Ordering::SeqCst);
                    if self.core.finished() {
                        // it finished meanwhile; `finish` may not have seen the entry
                        killed_leave(id);
                    }
                    cancel(co);
                }
                true
            }
            None => false,
        }
    }
}

impl PartialEq for AnyGreenlet {
    fn eq(&self, other: &AnyGreenlet) -> bool {
        self.id() == other.id()
    }
}

impl Eq for AnyGreenlet {}

impl std::hash::Hash for AnyGreenlet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl AsRef<AnyGreenlet> for AnyGreenlet {
    fn as_ref(&self) -> &AnyGreenlet {
        self
    }
}

impl fmt::Debug for AnyGreenlet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.ready(), self.core.status()) {
            (false, _) | (true, None) => "running".to_owned(),
            (true, Some(None)) => "returned".to_owned(),
            (true, Some(Some(err))) => err.to_string(),
        };
        write!(f, "<Greenlet-{}: {status}>", self.id())
    }
}

/// The handle of a task spawned with [`spawn`], [`Pool::spawn`] or
/// [`Group::spawn`](crate::Group): wait for it, get its value, kill it. gevent: `Greenlet`.
///
/// It dereferences to [`AnyGreenlet`] for what does not need the value type: [`id`](AnyGreenlet::id),
/// [`name`](AnyGreenlet::name), [`ready`](AnyGreenlet::ready),
/// [`successful`](AnyGreenlet::successful), [`exception`](AnyGreenlet::exception),
/// [`join`](AnyGreenlet::join), [`kill`](AnyGreenlet::kill).
///
/// **The value.** gevent's `get()` returns the value on every call. Here [`get`](Greenlet::get)
/// does the same by cloning it (`T: Clone`); for a value that is not `Clone`,
/// [`take`](Greenlet::take) moves it out once, and any later `get`/`take` returns
/// [`GreenletError::Taken`].
///
/// Cloning the handle gives another handle to the same task. **Dropping it does not stop the
/// task** (as in gevent): the coroutine runs on and its pool slot is released when it ends.
///
/// ```
/// use may_gevent::{GreenletError, Pool};
/// use std::time::Duration;
///
/// let pool = Pool::new(10);
/// let g = pool.spawn(|| 6 * 7);
/// assert!(g.join(Duration::from_secs(5)));
/// if g.ready() && g.successful() {
///     assert_eq!(g.get(None)?, 42);
/// }
///
/// let bad = pool.spawn(|| -> u32 { panic!("no answer") });
/// assert_eq!(bad.get(Duration::from_secs(5)), Err(GreenletError::Panicked("no answer".into())));
///
/// let slow = pool.spawn(|| may::coroutine::sleep(Duration::from_secs(60)));
/// assert_eq!(slow.get(Duration::from_millis(10)), Err(GreenletError::Timeout));
/// assert!(slow.kill(Duration::from_secs(5)));
/// assert_eq!(slow.get(None), Err(GreenletError::Killed));
/// # Ok::<(), GreenletError>(())
/// ```
pub struct Greenlet<T> {
    any: AnyGreenlet,
    core: Arc<Core<T>>,
}

impl<T: Send + 'static> Greenlet<T> {
    fn from_core(core: Arc<Core<T>>) -> Greenlet<T> {
        Greenlet {
            any: AnyGreenlet { core: core.clone() },
            core,
        }
    }

    /// Wait at most `timeout` (`None`: no limit) and give a clone of the value, or why there
    /// is none: [`Panicked`](GreenletError::Panicked), [`Killed`](GreenletError::Killed),
    /// [`Timeout`](GreenletError::Timeout) (the task keeps running), or
    /// [`Taken`](GreenletError::Taken). Every call gives the value again.
    /// gevent: `Greenlet.get(block=True, timeout)`.
    pub fn get(&self, timeout: impl Into<Option<Duration>>) -> Result<T, GreenletError>
    where
        T: Clone,
    {
        self.value(timeout, |slot| slot.clone())
    }

    /// Like [`get`](Greenlet::get), but move the value out: the first successful call gets
    /// it, later calls get [`GreenletError::Taken`]. For values that are not `Clone`.
    pub fn take(&self, timeout: impl Into<Option<Duration>>) -> Result<T, GreenletError> {
        self.value(timeout, Option::take)
    }

    fn value(
        &self,
        timeout: impl Into<Option<Duration>>,
        read: impl FnOnce(&mut Option<T>) -> Option<T>,
    ) -> Result<T, GreenletError> {
        if !self.any.join(timeout) {
            return Err(GreenletError::Timeout);
        }
        match &mut self.core.lock().outcome {
            Some(Outcome::Value(slot)) => read(slot).ok_or(GreenletError::Taken),
            Some(Outcome::Failed(err)) => Err(err.clone()),
            None => unreachable!("a greenlet is done only once its outcome is recorded"),
        }
    }
}

impl<T> Deref for Greenlet<T> {
    type Target = AnyGreenlet;

    fn deref(&self) -> &AnyGreenlet {
        &self.any
    }
}

impl<T> AsRef<AnyGreenlet> for Greenlet<T> {
    fn as_ref(&self) -> &AnyGreenlet {
        &self.any
    }
}

impl<T> From<Greenlet<T>> for AnyGreenlet {
    fn from(greenlet: Greenlet<T>) -> AnyGreenlet {
        greenlet.any
    }
}

impl<T> Clone for Greenlet<T> {
    fn clone(&self) -> Greenlet<T> {
        Greenlet {
            any: self.any.clone(),
            core: self.core.clone(),
        }
    }
}

impl<T> PartialEq for Greenlet<T> {
    fn eq(&self, other: &Greenlet<T>) -> bool {
        self.any == other.any
    }
}

impl<T> Eq for Greenlet<T> {}

impl<T> fmt::Debug for Greenlet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.any, f)
    }
}

/// A deadline from an optional timeout.
#[derive(Clone, Copy)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    pub(crate) fn new(timeout: Option<Duration>) -> Deadline {
        Deadline(timeout.map(|timeout| Instant::now() + timeout))
    }

    /// What is left; `Duration::MAX` without a deadline.
    pub(crate) fn left(&self) -> Duration {
        self.0.map_or(Duration::MAX, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        })
    }

    /// What is left as a timeout argument (`None` without a deadline).
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.0.map(|_| self.left())
    }
}

/// Wait until every task in `greenlets` has finished or `timeout` passes (`None`: no limit).
/// Returns true if all have finished. gevent: `gevent.joinall(greenlets, timeout)` (which
/// returns the finished ones: filter on [`ready`](AnyGreenlet::ready)).
///
/// Takes any iterable of handles: `&[Greenlet<T>]`, `Vec<AnyGreenlet>`, a pool
/// (`&pool`)…
///
/// ```
/// use std::time::Duration;
/// let jobs: Vec<_> = (0..3).map(|n| may_gevent::spawn(move || n * 2)).collect();
/// assert!(may_gevent::joinall(&jobs, Duration::from_secs(5)));
/// assert!(jobs.iter().all(|g| g.successful()));
/// ```
pub fn joinall<I>(greenlets: I, timeout: impl Into<Option<Duration>>) -> bool
where
    I: IntoIterator,
    I::Item: AsRef<AnyGreenlet>,
{
    let deadline = Deadline::new(timeout.into());
    greenlets
        .into_iter()
        .all(|greenlet| greenlet.as_ref().join(deadline.timeout()))
}

/// Kill every task in `greenlets` and wait until all have finished, at most `timeout`
/// (`None`: no limit). Returns true if all have finished. gevent:
/// `gevent.killall(greenlets, block=True, timeout)`.
///
/// As [`Pool::kill`] does, the tasks are cancelled **one at a time**, each given up to
/// 100 ms to finish unwinding before the next is cancelled, so that the `Drop`s of two
/// killed tasks never run at the same moment (see the crate docs, "What a `Drop` may do
/// when a handler is cancelled"); once `timeout` runs out, the rest are cancelled at once.
pub fn killall<I>(greenlets: I, timeout: impl Into<Option<Duration>>) -> bool
where
    I: IntoIterator,
    I::Item: AsRef<AnyGreenlet>,
{
    let deadline = Deadline::new(timeout.into());
    let all: Vec<AnyGreenlet> = greenlets
        .into_iter()
        .map(|greenlet| greenlet.as_ref().clone())
        .collect();
    for greenlet in &all {
        if deadline.left().is_zero() {
            break;
        }
        if !greenlet.ready() && greenlet.cancel() {
            greenlet.join(deadline.left().min(KILL_EACH));
        }
    }
    for greenlet in &all {
        greenlet.cancel();
    }
    // `kill` sends what is still missing (a coroutine that was being created) and waits.
    all.iter().all(|greenlet| greenlet.kill(deadline.timeout()))
}
