//! The mapping helpers of a pool (gevent: `GroupMappingMixin`): `apply`, `apply_async`,
//! `map`, `imap`, `imap_unordered`.

use std::collections::HashMap;
use std::fmt;
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use may::coroutine::JoinHandle;
use may::sync::{mpsc, Semphore};

use super::greenlet::{current_id, run_catching, spawn_core};
use super::{cancel, spawn, Greenlet, GreenletError, Pool};

/// The default `maxsize` of [`Pool::imap`]/[`Pool::imap_unordered`] on an unbounded pool.
const UNBOUNDED_MAXSIZE: usize = 1024;

impl Pool {
    /// Run `f` in the pool and wait for its value. gevent: `Pool.apply(func)`.
    ///
    /// As in gevent, when the caller is itself a member of this pool, `f` runs right here
    /// (waiting for a slot could wait forever); a panic is then caught and returned too.
    ///
    /// # Errors
    /// [`GreenletError::Panicked`] if `f` panicked, [`GreenletError::Killed`] if the task was
    /// killed.
    pub fn apply<F, T>(&self, f: F) -> Result<T, GreenletError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let me = current_id();
        if me != 0 && self.inner.lock().live.contains_key(&me) {
            return run_catching(f).map_err(|(err, payload)| {
                if let Some(payload) = payload {
                    resume_unwind(payload);
                }
                err
            });
        }
        self.spawn(f).take(None)
    }

    /// Start `f` in the pool without ever blocking, and return its handle; `callback` gets a
    /// reference to the value once `f` has returned (not if it panicked or was killed).
    /// gevent: `Pool.apply_async(func, callback=callback)`.
    ///
    /// When the pool is full, the task starts outside the pool, waits there for a slot and
    /// then joins the pool to run `f` (gevent's "untracked greenlet"); join the handle, not
    /// the pool, to wait for it. Unlike gevent, the callback runs in the task itself, right
    /// after `f` (a panic in it is the task's panic); pass `|_| {}` for none.
    ///
    /// ```
    /// use may_gevent::Pool;
    /// use std::sync::mpsc;
    ///
    /// let pool = Pool::new(1);
    /// let (tx, rx) = mpsc::channel();
    /// let g = pool.apply_async(|| 21 * 2, move |v: &i32| tx.send(*v).unwrap());
    /// assert_eq!(g.get(None), Ok(42));
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// ```
    ///
    /// # Panics
    /// If the coroutine cannot be created, like [`spawn`](Pool::spawn).
    pub fn apply_async<F, T, C>(&self, f: F, callback: C) -> Greenlet<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        C: FnOnce(&T) + Send + 'static,
    {
        let body = move || {
            let value = f();
            callback(&value);
            value
        };
        let spawned = match self.try_acquire() {
            Some(permit) => self.spawn_with(permit, None, body),
            None => {
                let pool = self.clone();
                spawn_core(None, None, move |me| {
                    let me = me.clone();
                    move || {
                        pool.add(&me);
                        body()
                    }
                })
            }
        };
        match spawned {
            Ok(greenlet) => greenlet,
            Err(err) => panic!("may_gevent::Pool::apply_async: cannot create a coroutine: {err}"),
        }
    }

    /// Apply `f` to every item, at most [`size`](Pool::size) at once, and return the values
    /// in the order of the items. gevent: `Pool.map(func, iterable)`.
    ///
    /// The items are consumed and the tasks spawned from a helper coroutine (as gevent does),
    /// so the caller may be a thread or a coroutine. Called from a member of this pool, the
    /// items wait for the *other* members' slots (as in gevent): from the only member of
    /// `Pool::new(1)` it would wait forever.
    ///
    /// # Errors
    /// The failure of the first item (in the order of the items) that panicked or was
    /// killed; a panic of the items' iterator. gevent raises that same first failure, but as
    /// soon as it reaches it, while the later items still run; here `map` returns only once
    /// every task it started has finished, so nothing it started outlives it.
    ///
    /// ```
    /// use may_gevent::Pool;
    /// let pool = Pool::new(10);
    /// let lengths = pool.map(|word: &str| word.len(), vec!["a", "bb", "ccc"]);
    /// assert_eq!(lengths, Ok(vec![1, 2, 3]));
    /// ```
    pub fn map<I, F, T>(&self, f: F, items: I) -> Result<Vec<T>, GreenletError>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        let pool = self.clone();
        let f = Arc::new(f);
        let items = items.into_iter();
        let helper = spawn(move || {
            let tasks: Vec<Greenlet<T>> = items
                .map(|item| {
                    let f = f.clone();
                    pool.spawn(move || f(item))
                })
                .collect();
            let mut values = Vec::with_capacity(tasks.len());
            let mut failure = None;
            for task in &tasks {
                match task.take(None) {
                    Ok(value) => values.push(value),
                    Err(err) => {
                        failure.get_or_insert(err);
                    }
                }
            }
            match failure {
                None => Ok(values),
                Some(err) => Err(err),
            }
        });
        helper.take(None)?
    }

    /// Apply `f` to every item, at most [`size`](Pool::size) at once, and iterate over the
    /// results **in the order of the items**, each as soon as it and those before it are
    /// done. gevent: `Pool.imap(func, iterable, maxsize=None)`.
    ///
    /// The work starts at the first `next()` (gevent starts it at once). At most `maxsize`
    /// tasks are outstanding — running, or finished with a result not taken yet — so a slow
    /// consumer stops the producer instead of letting results pile up: the default is twice
    /// the pool size (1024 for an unbounded pool); set it with [`IMap::maxsize`]. Results that finish out of order wait in the iterator
    /// (within that bound). A failed item yields `Err` in its place and iteration goes on;
    /// a panic of the items' iterator yields one last `Err`, after the results of the items
    /// it produced.
    ///
    /// Dropping the iterator stops the producer; tasks already running finish on their own.
    ///
    /// ```
    /// use may_gevent::Pool;
    /// let pool = Pool::new(4);
    /// let squares: Vec<u64> = pool
    ///     .imap(|n: u64| n * n, 0..10)
    ///     .map(|r| r.unwrap())
    ///     .collect();
    /// assert_eq!(squares, (0..10).map(|n| n * n).collect::<Vec<_>>());
    /// ```
    pub fn imap<I, F, T>(&self, f: F, items: I) -> IMap<T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        IMap {
            feed: Feed::new(self, f, items),
            next_index: 0,
            waiting: HashMap::new(),
        }
    }

    /// Like [`imap`](Pool::imap), but yield each result **as soon as its task finishes**
    /// (completion order). gevent: `Pool.imap_unordered(func, iterable, maxsize=None)`.
    ///
    /// ```
    /// use may_gevent::Pool;
    /// let pool = Pool::new(4);
    /// let mut total = 0;
    /// for n in pool.imap_unordered(|n: u64| n * 2, 1..=100) {
    ///     total += n.unwrap();
    /// }
    /// assert_eq!(total, 10_100);
    /// ```
    pub fn imap_unordered<I, F, T>(&self, f: F, items: I) -> IMapUnordered<T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        IMapUnordered {
            feed: Feed::new(self, f, items),
            failure: None,
        }
    }
}

/// What the producer and the tasks tell the iterator.
enum Msg<T> {
    /// The result of item `index`.
    Item(u64, Result<T, GreenletError>),
    /// The producer is done after `index` items; with the panic of the items' iterator.
    End(u64, Option<GreenletError>),
}

type Start<T> = Box<dyn FnOnce(Option<usize>) -> Running<T> + Send>;

/// The producer side of an imap: not started yet, or running.
struct Feed<T> {
    start: Option<Start<T>>,
    maxsize: Option<usize>,
    running: Option<Running<T>>,
}

struct Running<T> {
    rx: mpsc::Receiver<Msg<T>>,
    credits: Option<Arc<Semphore>>,
    closed: Arc<AtomicBool>,
    producer: JoinHandle<()>,
    /// How many items the producer took; known once it is done.
    total: Option<u64>,
    received: u64,
    /// Nothing more to yield.
    finished: bool,
}

impl<T: Send + 'static> Feed<T> {
    fn new<I, F>(pool: &Pool, f: F, items: I) -> Feed<T>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
    {
        let maxsize = match pool.size() {
            Some(size) => size.saturating_mul(2).max(1),
            None => UNBOUNDED_MAXSIZE,
        };
        let pool = pool.clone();
        let items = items.into_iter();
        Feed {
            start: Some(Box::new(move |maxsize| {
                start(pool, Arc::new(f), items, maxsize)
            })),
            maxsize: Some(maxsize),
            running: None,
        }
    }

    /// The running producer, started on first use.
    fn running(&mut self) -> &mut Running<T> {
        if let Some(start) = self.start.take() {
            self.running = Some(start(self.maxsize));
        }
        self.running
            .as_mut()
            .expect("an imap is started on first use")
    }
}

/// Start the producer coroutine: it takes a credit (one of `maxsize`), then an item, then a
/// pool slot (blocking while the pool is full), and spawns the task, which sends its result.
fn start<It, F, T>(pool: Pool, f: Arc<F>, items: It, maxsize: Option<usize>) -> Running<T>
where
    It: Iterator + Send + 'static,
    It::Item: Send + 'static,
    F: Fn(It::Item) -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    // may's semaphore counts in an isize.
    let credits = maxsize.map(|n| Arc::new(Semphore::new(n.min(isize::MAX as usize / 2))));
    let closed = Arc::new(AtomicBool::new(false));
    let (c, stop) = (credits.clone(), closed.clone());
    let producer = may::go!(move || {
        let mut items = items;
        let mut index = 0u64;
        loop {
            if let Some(credits) = &c {
                credits.wait();
            }
            if stop.load(Ordering::Acquire) {
                return;
            }
            let item = match run_catching(|| items.next()) {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err((err, payload)) => {
                    if let Some(payload) = payload {
                        resume_unwind(payload);
                    }
                    let _ = tx.send(Msg::End(index, Some(err)));
                    return;
                }
            };
            let (f, tx) = (f.clone(), tx.clone());
            let at = index;
            pool.spawn(move || match run_catching(|| f(item)) {
                Ok(value) => {
                    let _ = tx.send(Msg::Item(at, Ok(value)));
                }
                Err((err, payload)) => {
                    let _ = tx.send(Msg::Item(at, Err(err)));
                    if let Some(payload) = payload {
                        resume_unwind(payload);
                    }
                }
            });
            index += 1;
        }
        let _ = tx.send(Msg::End(index, None));
    });
    Running {
        rx,
        credits,
        closed,
        producer,
        total: None,
        received: 0,
        finished: false,
    }
}

impl<T> Running<T> {
    /// A result was handed to the consumer: the producer may start one more task.
    fn release(&self) {
        if let Some(credits) = &self.credits {
            credits.post();
        }
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        // Stop the producer (it may wait for a credit or a pool slot forever); tasks already
        // spawned finish on their own and their results are dropped. No blocking here.
        self.closed.store(true, Ordering::Release);
        if !self.producer.is_done() {
            cancel(self.producer.coroutine());
        }
    }
}

macro_rules! maxsize_method {
    () => {
        /// Set gevent's `maxsize` before the first `next()`: at most `maxsize` tasks are
        /// outstanding (running, or finished with a result not taken yet); `None` (or `0`, as
        /// in gevent) for no bound. Default: twice the pool size, or 1024 for an unbounded
        /// pool. Ignored once iteration has started.
        pub fn maxsize(mut self, maxsize: impl Into<Option<usize>>) -> Self {
            self.feed.maxsize = maxsize.into().filter(|&n| n > 0);
            self
        }
    };
}

/// The iterator of [`Pool::imap`]: results in the order of the items. gevent: `IMap`.
#[must_use = "nothing runs until the iterator is used"]
pub struct IMap<T> {
    feed: Feed<T>,
    next_index: u64,
    /// Results that finished before an earlier item.
    waiting: HashMap<u64, Result<T, GreenletError>>,
}

impl<T: Send + 'static> IMap<T> {
    maxsize_method!();
}

impl<T: Send + 'static> Iterator for IMap<T> {
    type Item = Result<T, GreenletError>;

    fn next(&mut self) -> Option<Self::Item> {
        let run = self.feed.running();
        loop {
            if let Some(result) = self.waiting.remove(&self.next_index) {
                self.next_index += 1;
                run.release();
                return Some(result);
            }
            if run.finished || run.total == Some(self.next_index) {
                run.finished = true;
                return None;
            }
            match run.rx.recv() {
                Ok(Msg::Item(index, result)) => {
                    run.received += 1;
                    if index == self.next_index {
                        self.next_index += 1;
                        run.release();
                        return Some(result);
                    }
                    self.waiting.insert(index, result);
                }
                Ok(Msg::End(total, None)) => run.total = Some(total),
                Ok(Msg::End(total, Some(err))) => {
                    // The iterator's panic comes after the items it produced.
                    run.total = Some(total + 1);
                    self.waiting.insert(total, Err(err));
                }
                Err(_) => {
                    run.finished = true;
                    return None;
                }
            }
        }
    }
}

impl<T> fmt::Debug for IMap<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("next_index", &self.next_index)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// The iterator of [`Pool::imap_unordered`]: results in completion order.
/// gevent: `IMapUnordered`.
#[must_use = "nothing runs until the iterator is used"]
pub struct IMapUnordered<T> {
    feed: Feed<T>,
    /// The panic of the items' iterator, yielded last.
    failure: Option<GreenletError>,
}

impl<T: Send + 'static> IMapUnordered<T> {
    maxsize_method!();
}

impl<T: Send + 'static> Iterator for IMapUnordered<T> {
    type Item = Result<T, GreenletError>;

    fn next(&mut self) -> Option<Self::Item> {
        let run = self.feed.running();
        loop {
            if run.finished {
                return None;
            }
            if run.total == Some(run.received) {
                // The iterator's panic comes after the results of the items it produced.
                run.finished = true;
                return self.failure.take().map(Err);
            }
            match run.rx.recv() {
                Ok(Msg::Item(_, result)) => {
                    run.received += 1;
                    run.release();
                    return Some(result);
                }
                Ok(Msg::End(total, failure)) => {
                    run.total = Some(total);
                    self.failure = failure;
                }
                Err(_) => {
                    run.finished = true;
                    return None;
                }
            }
        }
    }
}

impl<T> fmt::Debug for IMapUnordered<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMapUnordered").finish_non_exhaustive()
    }
}
