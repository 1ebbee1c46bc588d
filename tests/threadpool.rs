//! `ThreadPool` (gevent.threadpool): blocking calls run on the pool's OS threads while only the
//! calling coroutine parks; the pool is bounded (saturation queues, it never spawns more);
//! a cancelled or timed-out waiter stops waiting and the call's result is dropped.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use may_gevent::{ThreadPool, DEFAULT_THREADPOOL_SIZE};
use support::{eventually, join_coroutine_within, within, WAIT};

/// OS threads of this process whose name is `name` (from /proc/self/task/*/comm).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// A gate the pool's calls block on (a std channel: blocking an OS thread is the point).
struct Gate {
    tx: std::sync::Mutex<Option<mpsc::Sender<()>>>,
    rx: Arc<std::sync::Mutex<mpsc::Receiver<()>>>,
}

impl Gate {
    fn new() -> Gate {
        let (tx, rx) = mpsc::channel();
        Gate {
            tx: std::sync::Mutex::new(Some(tx)),
            rx: Arc::new(std::sync::Mutex::new(rx)),
        }
    }

    /// A call that blocks its OS thread until the gate opens (or WAIT passes).
    fn blocker(&self) -> impl FnOnce() + Send + 'static {
        let rx = self.rx.clone();
        move || {
            let _ = rx.lock().unwrap().recv_timeout(WAIT);
        }
    }

    /// Open the gate: every blocked and future call returns.
    fn open(&self) {
        self.tx.lock().unwrap().take();
    }
}

#[test]
fn saturation_queues_instead_of_spawning_more_threads() {
    let pool = ThreadPool::named(2, "tp-saturate");
    let gate = Gate::new();
    let started = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let (block, started) = (gate.blocker(), started.clone());
            pool.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                block();
            })
            .unwrap()
        })
        .collect();
    eventually("two calls running", || started.load(Ordering::SeqCst) == 2);
    assert_eq!(pool.size(), 2, "at most maxsize threads");
    assert_eq!(pool.queued(), 4, "the rest wait in the queue");
    assert_eq!(threads_named("tp-saturate"), 2, "two OS threads, no more");
    assert!(calls.iter().all(|c| !c.ready()));
    gate.open();
    for call in calls {
        assert!(
            call.wait(Some(WAIT)),
            "every queued call runs once a thread is free"
        );
    }
    assert_eq!(started.load(Ordering::SeqCst), 6);
    assert_eq!(pool.completed(), 6);
    assert_eq!(
        threads_named("tp-saturate"),
        2,
        "the same two threads ran them all"
    );
    drop(pool);
    eventually("threads exit with the last handle", || {
        threads_named("tp-saturate") == 0
    });
}

#[test]
fn blocked_calls_park_only_their_coroutines() {
    // More blocked callers than may has workers (2 by default on this machine, and at most
    // the number of CPUs): had `apply` blocked a worker, nothing else could run.
    let pool = ThreadPool::new(8);
    let gate = Arc::new(Gate::new());
    let callers: Vec<_> = (0..6)
        .map(|_| {
            let (pool, block) = (pool.clone(), gate.blocker());
            may::go!(move || pool.apply(block).unwrap())
        })
        .collect();
    eventually("six calls on pool threads", || pool.size() == 6);
    // meanwhile, other coroutines are scheduled, sleep and finish
    let other = may::go!(|| {
        for _ in 0..5 {
            may::coroutine::sleep(Duration::from_millis(1));
        }
        42
    });
    assert_eq!(
        join_coroutine_within("other coroutine", WAIT, other).unwrap(),
        42
    );
    assert!(
        callers.iter().all(|c| !c.is_done()),
        "the callers still wait"
    );
    gate.open();
    for caller in callers {
        join_coroutine_within("caller", WAIT, caller).unwrap();
    }
}

/// Counts its drops: shows that a result nobody waits for any more is dropped.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_cancelled_waiter_stops_waiting_and_the_result_is_dropped() {
    let pool = ThreadPool::new(1);
    let gate = Gate::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let (block, d) = (gate.blocker(), drops.clone());
    let p = pool.clone();
    let waiter = may::go!(move || {
        p.apply(move || {
            block();
            Tracked(d)
        })
        .map(|_| ())
    });
    eventually("the call is running", || {
        pool.size() == 1 && pool.queued() == 0
    });
    let start = Instant::now();
    #[allow(unsafe_code)]
    // SAFETY: cancelling a coroutine parked in ThreadResult::get (a SyncFlag wait).
    unsafe {
        waiter.coroutine().cancel()
    };
    let joined = within("cancelled waiter", WAIT, move || waiter.join());
    assert!(joined.is_err(), "the waiter unwound");
    assert!(start.elapsed() < WAIT / 2);
    assert_eq!(pool.completed(), 0, "the OS-thread call is not interrupted");
    gate.open();
    eventually("the call finished", || pool.completed() == 1);
    eventually("its result was dropped", || {
        drops.load(Ordering::SeqCst) == 1
    });
    // the pool's thread is free for the next call
    assert_eq!(pool.apply(|| 7).unwrap(), 7);
}

#[test]
fn a_timed_out_waiter_gets_timed_out_and_the_call_runs_on() {
    let pool = ThreadPool::new(1);
    let gate = Gate::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let (block, d) = (gate.blocker(), drops.clone());
    let p = pool.clone();
    let timeout = Duration::from_millis(50);
    let waiter = may::go!(move || {
        let start = Instant::now();
        let result = p.apply_timeout(
            move || {
                block();
                Tracked(d)
            },
            timeout,
        );
        (result.map(|_| ()), start.elapsed())
    });
    let (result, took) = join_coroutine_within("waiter", WAIT, waiter).unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    assert!(took >= timeout, "{took:?}");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    gate.open();
    eventually("the call finished and its result was dropped", || {
        pool.completed() == 1 && drops.load(Ordering::SeqCst) == 1
    });
}

#[test]
fn panics_reach_the_caller_and_spawn_results_can_be_joined() {
    let pool = ThreadPool::new(2);
    let h = may::go!(move || {
        let ok = pool.spawn(|| "value").unwrap();
        let bad = pool.spawn(|| -> u8 { panic!("in the pool") }).unwrap();
        (ok.get(), bad.join().is_err())
    });
    assert_eq!(
        join_coroutine_within("caller", WAIT, h).unwrap(),
        ("value", true)
    );
}

#[test]
fn the_default_pool_is_gevents_size_and_shared() {
    let pool = ThreadPool::default_pool();
    assert_eq!(pool.maxsize(), DEFAULT_THREADPOOL_SIZE);
    assert!(std::ptr::eq(pool, ThreadPool::default_pool()));
    assert_eq!(pool.apply(|| 1 + 1).unwrap(), 2);
}
