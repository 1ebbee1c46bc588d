//! `ThreadPool`: run a blocking call on an OS thread while the calling coroutine parks
//! (gevent: `gevent.threadpool.ThreadPool`, and the hub's default pool `get_hub().threadpool`).
//!
//! A blocking call — `getaddrinfo`, a database driver or HTTP client built on `std::net`, a
//! file-system call on a slow disk, a CPU-heavy computation — holds the may worker thread that
//! runs it, and every coroutine queued on that worker waits. Handed to a pool, it runs on one of
//! the pool's own OS threads; the calling coroutine parks (only it) until the result is there.
//!
//! The pool is bounded: at most `maxsize` threads, started on demand and kept for the life of the
//! pool. When all of them are busy, further calls wait in a FIFO queue (never a new thread).
//!
//! ## When the waiting coroutine gives up
//!
//! A call running on an OS thread **cannot be interrupted**. When the coroutine waiting for it
//! is cancelled ([`Pool::kill`](crate::Pool::kill), a server's `stop()`), or its wait times out
//! ([`ThreadResult::get_timeout`], [`ThreadPool::apply_timeout`]), the coroutine stops waiting
//! and goes on (or unwinds); the call itself still runs to its end on its thread (or, if it was
//! still queued, starts and runs later), keeps that thread busy meanwhile, and its result — or
//! its panic — is dropped. A call that can hang forever therefore holds one thread forever: bound
//! such calls themselves (a socket timeout, a resolver timeout) where you can.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use may::sync::SyncFlag;

/// Threads of the process-wide default pool ([`ThreadPool::default_pool`]).
/// gevent: `Hub.threadpool_size` (10).
pub const DEFAULT_THREADPOOL_SIZE: usize = 10;

/// Stack of each pool thread: 2 MiB, Rust's default for spawned threads.
const THREAD_STACK: usize = 2 * 1024 * 1024;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// What the pool's threads share. Guarded by a std mutex that is held only for a moment and
/// never across a blocking call or a may call.
struct State {
    queue: VecDeque<Job>,
    /// Threads started and not yet exited.
    threads: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// The last [`ThreadPool`] handle was dropped: threads exit once the queue is empty.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes idle threads (OS threads only ever wait here, never a coroutine).
    work: Condvar,
    maxsize: usize,
    name: String,
    /// Calls finished (returned or panicked), counted before their result is handed over.
    completed: Arc<AtomicUsize>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A job never runs under the lock, so a poisoned lock only means a panic in this
        // module's few lines of bookkeeping; the state is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Closes the pool when the last handle goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.work.notify_all();
    }
}

/// A bounded pool of OS threads for blocking calls. gevent: `gevent.threadpool.ThreadPool`.
///
/// Cloning gives another handle to the same pool. When the last handle is dropped, the threads
/// finish the queued calls and exit.
///
/// ```
/// use may_gevent::ThreadPool;
///
/// let pool = ThreadPool::new(2);
/// // from a coroutine (a handler), only this coroutine parks meanwhile
/// let h = may::go!(move || pool.apply(|| std::fs::read_to_string("/proc/self/stat").is_ok()));
/// assert!(h.join().unwrap()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    owner: Arc<Owner>,
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.shared().name)
            .field("maxsize", &self.maxsize())
            .field("size", &self.size())
            .field("queued", &self.queued())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of at most `maxsize` threads (at least 1), started as calls need them.
    /// gevent: `ThreadPool(maxsize)`.
    pub fn new(maxsize: usize) -> ThreadPool {
        ThreadPool::named(maxsize, "may_gevent-threadpool")
    }

    /// As [`new`](Self::new), with the OS thread name (at most 15 bytes show in `ps` and
    /// `/proc/*/task/*/comm`).
    pub fn named(maxsize: usize, name: &str) -> ThreadPool {
        let shared = Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                closed: false,
            }),
            work: Condvar::new(),
            maxsize: maxsize.max(1),
            name: name.to_owned(),
            completed: Arc::new(AtomicUsize::new(0)),
        };
        ThreadPool {
            owner: Arc::new(Owner(Arc::new(shared))),
        }
    }

    /// The process-wide pool, [`DEFAULT_THREADPOOL_SIZE`] threads, created on first use. The
    /// crate's own blocking calls (name resolution: [`getaddrinfo`](crate::getaddrinfo),
    /// [`create_connection`](crate::create_connection)) run here. gevent: `get_hub().threadpool`.
    pub fn default_pool() -> &'static ThreadPool {
        static DEFAULT: OnceLock<ThreadPool> = OnceLock::new();
        DEFAULT.get_or_init(|| ThreadPool::named(DEFAULT_THREADPOOL_SIZE, "may_gevent-hubpool"))
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.owner.0
    }

    /// The most threads this pool runs. gevent: `ThreadPool.maxsize`.
    pub fn maxsize(&self) -> usize {
        self.shared().maxsize
    }

    /// Threads started and alive now (busy or idle). gevent: `ThreadPool.size`.
    pub fn size(&self) -> usize {
        self.shared().lock().threads
    }

    /// Calls waiting for a free thread.
    pub fn queued(&self) -> usize {
        self.shared().lock().queue.len()
    }

    /// Calls finished so far (returned or panicked).
    pub fn completed(&self) -> usize {
        self.shared().completed.load(Ordering::Acquire)
    }

    /// Run `f` on a pool thread and return a handle to its result, without waiting.
    /// gevent: `ThreadPool.spawn(func)` (returns an `AsyncResult`).
    ///
    /// The call is queued if every thread is busy. Dropping the handle does not cancel it.
    ///
    /// # Errors
    /// The operating system refused to start a thread and the pool has none to queue on.
    pub fn spawn<F, T>(&self, f: F) -> io::Result<ThreadResult<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Slot {
            value: Mutex::new(None),
            done: SyncFlag::new(),
        });
        let out = slot.clone();
        let completed = self.shared().completed.clone();
        let job: Job = Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            *out.value.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            completed.fetch_add(1, Ordering::AcqRel);
            out.done.fire();
        });
        self.submit(job)?;
        Ok(ThreadResult { slot })
    }

    /// Run `f` on a pool thread and wait (parking only this coroutine) for its value.
    /// gevent: `ThreadPool.apply(func)`.
    ///
    /// # Errors
    /// The pool could not start a thread ([`spawn`](Self::spawn)).
    ///
    /// # Panics
    /// A panic in `f` is raised again here, in the caller (gevent re-raises the exception).
    pub fn apply<F, T>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Ok(self.spawn(f)?.get())
    }

    /// As [`apply`](Self::apply), waiting at most `timeout`. On the timeout the call goes on
    /// running on its thread and its result is dropped (see the module docs).
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when `timeout` passed first; the pool could not start a thread.
    ///
    /// # Panics
    /// A panic in `f` (that happened within the timeout) is raised again here.
    pub fn apply_timeout<F, T>(&self, f: F, timeout: Duration) -> io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(f)?.get_timeout(timeout)
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        let shared = self.shared();
        let mut state = shared.lock();
        state.queue.push_back(job);
        if state.idle > 0 {
            drop(state);
            shared.work.notify_one();
            return Ok(());
        }
        if state.threads >= shared.maxsize {
            return Ok(()); // queued: a busy thread takes it when it is done
        }
        state.threads += 1;
        drop(state);
        let worker = shared.clone();
        let started = std::thread::Builder::new()
            .name(shared.name.clone())
            .stack_size(THREAD_STACK)
            .spawn(move || run(&worker));
        if let Err(err) = started {
            let mut state = shared.lock();
            state.threads -= 1;
            if state.threads == 0 {
                // nobody will ever run it: take it back (the newest job is ours)
                state.queue.pop_back();
                return Err(err);
            }
        }
        Ok(())
    }
}

/// A pool thread: take jobs until the pool is closed and the queue is empty.
fn run(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if let Some(job) = state.queue.pop_front() {
            drop(state);
            job(); // never unwinds: `spawn` wraps every call in catch_unwind
            state = shared.lock();
            continue;
        }
        if state.closed {
            state.threads -= 1;
            return;
        }
        state.idle += 1;
        state = shared
            .work
            .wait(state)
            .unwrap_or_else(|poison| poison.into_inner());
        state.idle -= 1;
    }
}

struct Slot<T> {
    value: Mutex<Option<std::thread::Result<T>>>,
    done: SyncFlag,
}

/// The result of a call handed to a [`ThreadPool`] with [`ThreadPool::spawn`].
/// gevent: the `AsyncResult` that `ThreadPool.spawn` returns.
///
/// Waiting parks only the calling coroutine (on a plain thread, the thread blocks). Dropping
/// the handle, or a cancel of the coroutine waiting on it, leaves the call running; its result
/// is then dropped.
pub struct ThreadResult<T> {
    slot: Arc<Slot<T>>,
}

impl<T> fmt::Debug for ThreadResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<T> ThreadResult<T> {
    /// Whether the call has finished (returned or panicked). gevent: `AsyncResult.ready()`.
    pub fn ready(&self) -> bool {
        self.slot.done.is_fired()
    }

    /// Wait until the call has finished, at most `timeout` (`None`: no limit); true if it has.
    /// gevent: `AsyncResult.wait(timeout)`.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        match timeout {
            None => {
                self.slot.done.wait();
                true
            }
            Some(timeout) => self.slot.done.wait_timeout(timeout),
        }
    }

    /// Wait for the call and return its value, or its panic as `Err(payload)`.
    pub fn join(self) -> std::thread::Result<T> {
        self.slot.done.wait();
        self.take()
    }

    /// Wait for the call and return its value. gevent: `AsyncResult.get()`.
    ///
    /// # Panics
    /// A panic in the call is raised again here.
    pub fn get(self) -> T {
        match self.join() {
            Ok(value) => value,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Wait at most `timeout` for the call and return its value. On the timeout, the call goes
    /// on running and its result is dropped. gevent: `AsyncResult.get(timeout=t)`.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] when `timeout` passed first.
    ///
    /// # Panics
    /// A panic in the call is raised again here.
    pub fn get_timeout(self, timeout: Duration) -> io::Result<T> {
        if !self.slot.done.wait_timeout(timeout) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the thread pool call did not finish within {timeout:?} (it goes on running; \
                     its result will be dropped)"
                ),
            ));
        }
        match self.take() {
            Ok(value) => Ok(value),
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    fn take(&self) -> std::thread::Result<T> {
        self.slot
            .value
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("a finished call stored its result, and only one taker exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_from_a_plain_thread_and_panics_come_back() {
        let pool = ThreadPool::new(1);
        assert_eq!(pool.apply(|| 6 * 7).unwrap(), 42);
        let r = pool.spawn(|| -> u8 { panic!("boom") }).unwrap().join();
        assert!(r.is_err());
        assert_eq!(pool.apply(|| 1).unwrap(), 1, "the thread survives a panic");
        assert_eq!(pool.size(), 1);
        assert_eq!(pool.completed(), 3);
    }

    #[test]
    fn zero_means_one_thread() {
        assert_eq!(ThreadPool::new(0).maxsize(), 1);
    }
}
