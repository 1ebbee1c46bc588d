//! Pool's mapping helpers and membership (gevent GroupMappingMixin, Group.add/discard/
//! killone, iteration) over real coroutines.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use may::sync::SyncFlag;
use may_gevent::{spawn, GreenletError, Group, Pool};
use support::{eventually, watchdog, within, WAIT};

fn gates(n: usize) -> Arc<Vec<SyncFlag>> {
    Arc::new((0..n).map(|_| SyncFlag::new()).collect())
}

/// Counts tasks running at once: the peak, and a gate that opens once `size` run together
/// (so the peak is reached for sure, without timing).
#[derive(Clone)]
struct Concurrency {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    full: Arc<SyncFlag>,
    size: usize,
}

impl Concurrency {
    fn new(size: usize) -> Concurrency {
        Concurrency {
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            full: Arc::new(SyncFlag::new()),
            size,
        }
    }

    /// The body of a task: enter, wait until `size` tasks have run together, leave.
    fn task<T>(&self, value: T) -> T {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        if now == self.size {
            self.full.fire();
        }
        assert!(self.full.wait_timeout(WAIT), "never {} at once", self.size);
        may::coroutine::yield_now();
        self.running.fetch_sub(1, Ordering::SeqCst);
        value
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

#[test]
fn map_keeps_the_order_of_the_items_whatever_the_completion_order() {
    watchdog::arm();
    let pool = Pool::new(10);
    let go = gates(10);
    let finished = Arc::new(AtomicUsize::new(0));
    let (g, f) = (go.clone(), finished.clone());
    let mapper = std::thread::spawn(move || {
        pool.map(
            move |n: usize| {
                assert!(g[n].wait_timeout(WAIT));
                f.fetch_add(1, Ordering::SeqCst);
                n * 10
            },
            0..10,
        )
    });
    // finish them last to first, one at a time
    for n in (0..10).rev() {
        go[n].fire();
        eventually("the item finished", || {
            finished.load(Ordering::SeqCst) == 10 - n
        });
    }
    let values = support::join_within("map", WAIT, mapper);
    assert_eq!(values, Ok((0..10).map(|n| n * 10).collect()));
}

#[test]
fn map_returns_the_first_failure_once_every_task_is_done() {
    watchdog::arm();
    let pool = Pool::new(3);
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let result = within("map", WAIT, move || {
        pool.map(
            move |n: u32| {
                may::coroutine::yield_now();
                d.fetch_add(1, Ordering::SeqCst);
                match n {
                    3 => panic!("item three"),
                    7 => panic!("item seven"),
                    _ => n,
                }
            },
            0..20,
        )
    });
    assert_eq!(result, Err(GreenletError::Panicked("item three".into())));
    // every task ran to its end before map returned
    assert_eq!(done.load(Ordering::SeqCst), 20);
}

#[test]
fn map_imap_and_apply_async_run_at_most_size_at_once() {
    watchdog::arm();
    let pool = Pool::new(4);

    let c = Concurrency::new(4);
    let c2 = c.clone();
    let values = within("map", WAIT, {
        let pool = pool.clone();
        move || pool.map(move |n: u32| c2.task(n), 0..40)
    });
    assert_eq!(values, Ok((0..40).collect()));
    assert_eq!(c.peak(), 4);

    let c = Concurrency::new(4);
    let c2 = c.clone();
    let values: Vec<u32> = pool
        .imap(move |n: u32| c2.task(n), 0..40)
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, (0..40).collect::<Vec<_>>());
    assert_eq!(c.peak(), 4);

    let c = Concurrency::new(4);
    let c2 = c.clone();
    let mut values: Vec<u32> = pool
        .imap_unordered(move |n: u32| c2.task(n), 0..40)
        .map(Result::unwrap)
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..40).collect::<Vec<_>>());
    assert_eq!(c.peak(), 4);

    let c = Concurrency::new(4);
    let jobs: Vec<_> = (0..20)
        .map(|n| {
            let c = c.clone();
            pool.apply_async(move || c.task(n), |_| {})
        })
        .collect();
    assert!(may_gevent::joinall(&jobs, WAIT));
    assert_eq!(c.peak(), 4);
    assert!(pool.join(WAIT));
    assert_eq!(pool.free_count(), 4);
}

#[test]
fn imap_yields_in_item_order() {
    watchdog::arm();
    let pool = Pool::new(10);
    let go = gates(10);
    let finished = Arc::new(AtomicUsize::new(0));
    let (g, f) = (go.clone(), finished.clone());
    let it = pool.imap(
        move |n: usize| {
            assert!(g[n].wait_timeout(WAIT));
            f.fetch_add(1, Ordering::SeqCst);
            n
        },
        0..10,
    );
    let consumer = std::thread::spawn(move || it.map(Result::unwrap).collect::<Vec<_>>());
    // all but the first finish, last to first; the consumer cannot yield any yet
    for n in (1..10).rev() {
        go[n].fire();
        eventually("the item finished", || {
            finished.load(Ordering::SeqCst) == 10 - n
        });
    }
    go[0].fire();
    let values = support::join_within("imap consumer", WAIT, consumer);
    assert_eq!(values, (0..10).collect::<Vec<_>>());
}

#[test]
fn imap_unordered_yields_in_completion_order() {
    watchdog::arm();
    let pool = Pool::new(10);
    let go = gates(10);
    let g = go.clone();
    let mut it = pool.imap_unordered(
        move |n: usize| {
            assert!(g[n].wait_timeout(WAIT));
            n
        },
        0..10,
    );
    // Only the item whose gate is open can finish: the iterator must hand out exactly it.
    let order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4];
    for &n in &order {
        go[n].fire();
        assert_eq!(it.next(), Some(Ok(n)));
    }
    assert_eq!(it.next(), None);
    assert_eq!(it.next(), None);
    assert!(pool.join(WAIT));
}

/// An iterator over `0..n` that counts how many items were taken from it and fires a flag
/// when it is dropped.
struct Counted {
    next: usize,
    n: usize,
    taken: Arc<AtomicUsize>,
    dropped: Arc<SyncFlag>,
}

impl Iterator for Counted {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.next == self.n {
            return None;
        }
        self.next += 1;
        self.taken.fetch_add(1, Ordering::SeqCst);
        Some(self.next - 1)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.dropped.fire();
    }
}

fn counted(n: usize) -> (Counted, Arc<AtomicUsize>, Arc<SyncFlag>) {
    let taken = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(SyncFlag::new());
    let items = Counted {
        next: 0,
        n,
        taken: taken.clone(),
        dropped: dropped.clone(),
    };
    (items, taken, dropped)
}

#[test]
fn a_slow_consumer_stops_the_producer_at_maxsize() {
    watchdog::arm();
    const MAXSIZE: usize = 3;
    // a pool much larger than maxsize: only maxsize bounds the producer
    let pool = Pool::new(50);
    let (items, taken, dropped) = counted(100);
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    let mut it = pool
        .imap_unordered(
            move |n: usize| {
                f.fetch_add(1, Ordering::SeqCst);
                n
            },
            items,
        )
        .maxsize(MAXSIZE);
    // iteration starts the producer
    assert!(it.next().expect("a result").is_ok());
    let mut consumed = 1;
    while consumed < 100 {
        // The producer runs ahead exactly as far as maxsize lets it: all outstanding tasks
        // finish (the pool is large), their results wait for us...
        let expected = (consumed + MAXSIZE).min(100);
        eventually("the producer filled the buffer", || {
            finished.load(Ordering::SeqCst) == expected
        });
        // ...and it takes no further item while we do not take a result.
        if consumed % 25 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(taken.load(Ordering::SeqCst), expected);
        assert_eq!(finished.load(Ordering::SeqCst), expected);
        assert!(it.next().expect("a result").is_ok());
        consumed += 1;
    }
    assert_eq!(it.next(), None);
    assert!(dropped.wait_timeout(WAIT), "the producer kept the items");
}

#[test]
fn ordered_imap_also_bounds_what_it_buffers() {
    watchdog::arm();
    let pool = Pool::new(50);
    let (items, taken, _dropped) = counted(40);
    let go = gates(40);
    let finished = Arc::new(AtomicUsize::new(0));
    let (g, f) = (go.clone(), finished.clone());
    let mut it = pool
        .imap(
            move |n: usize| {
                assert!(g[n].wait_timeout(WAIT));
                f.fetch_add(1, Ordering::SeqCst);
                n
            },
            items,
        )
        .maxsize(5);
    // item 0 is held back: items 1..5 finish and wait in the iterator, nothing more starts
    for n in 1..40 {
        go[n].fire();
    }
    let consumer = std::thread::spawn(move || {
        let first = it.next();
        (first, it)
    });
    eventually("four finished behind item 0", || {
        finished.load(Ordering::SeqCst) == 4
    });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(taken.load(Ordering::SeqCst), 5);
    go[0].fire();
    let (first, it) = support::join_within("the first next()", WAIT, consumer);
    assert_eq!(first, Some(Ok(0)));
    let rest: Vec<usize> = it.map(Result::unwrap).collect();
    assert_eq!(rest, (1..40).collect::<Vec<_>>());
    assert_eq!(taken.load(Ordering::SeqCst), 40);
}

#[test]
fn imap_failures_come_in_place_and_kills_surface_as_killed() {
    watchdog::arm();
    let pool = Pool::new(4);
    let results: Vec<_> = pool
        .imap(
            |n: u32| {
                if n == 2 {
                    panic!("two");
                }
                n
            },
            0..5,
        )
        .collect();
    assert_eq!(
        results,
        vec![
            Ok(0),
            Ok(1),
            Err(GreenletError::Panicked("two".into())),
            Ok(3),
            Ok(4)
        ]
    );

    // tasks blocked forever, killed through the pool: each item reports Killed
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let mut it = pool.imap_unordered(
        move |_n: u32| {
            s.fetch_add(1, Ordering::SeqCst);
            may::coroutine::sleep(Duration::from_secs(3600));
        },
        0..4,
    );
    let killer = {
        let pool = pool.clone();
        let started = started.clone();
        std::thread::spawn(move || {
            eventually("all four started", || started.load(Ordering::SeqCst) == 4);
            pool.kill(WAIT)
        })
    };
    for _ in 0..4 {
        assert_eq!(it.next(), Some(Err(GreenletError::Killed)));
    }
    assert_eq!(it.next(), None);
    assert!(support::join_within("kill", WAIT, killer));
    assert_eq!(pool.free_count(), 4);
}

#[test]
fn a_panicking_item_iterator_ends_the_iteration_with_an_error() {
    watchdog::arm();
    let pool = Pool::new(2);
    let items = (0..5u32).map(|n| if n == 3 { panic!("bad item") } else { n });
    let results: Vec<_> = pool.imap(|n| n, items).collect();
    assert_eq!(
        results,
        vec![
            Ok(0),
            Ok(1),
            Ok(2),
            Err(GreenletError::Panicked("bad item".into()))
        ]
    );
    let items = (0..5u32).map(|n| if n == 3 { panic!("bad item") } else { n });
    let results: Vec<_> = pool.imap_unordered(|n| n, items).collect();
    assert_eq!(results.len(), 4, "{results:?}");
    assert_eq!(
        results.last(),
        Some(&Err(GreenletError::Panicked("bad item".into())))
    );
    let items = (0..5u32).map(|n| if n == 3 { panic!("bad item") } else { n });
    assert_eq!(
        pool.map(|n| n, items),
        Err(GreenletError::Panicked("bad item".into()))
    );
}

#[test]
fn dropping_an_imap_stops_its_producer() {
    watchdog::arm();
    let pool = Pool::new(2);
    let (items, taken, dropped) = counted(1_000_000);
    let mut it = pool.imap(|n: usize| n, items).maxsize(4);
    assert_eq!(it.next(), Some(Ok(0)));
    drop(it);
    assert!(dropped.wait_timeout(WAIT), "the producer still runs");
    assert!(taken.load(Ordering::SeqCst) <= 6);
    assert!(pool.join(WAIT));
    assert_eq!(pool.free_count(), 2);
}

#[test]
fn apply_waits_for_the_value_and_reports_a_panic() {
    watchdog::arm();
    let pool = Pool::new(2);
    assert_eq!(pool.apply(|| 6 * 7), Ok(42));
    assert_eq!(
        pool.apply(|| -> u8 { panic!("apply failed") }),
        Err(GreenletError::Panicked("apply failed".into()))
    );
    assert_eq!(pool.free_count(), 2);
}

#[test]
fn apply_from_a_member_of_a_full_pool_runs_in_place() {
    watchdog::arm();
    let pool = Pool::new(1);
    let p = pool.clone();
    let outer = pool.spawn(move || {
        // the only slot is ours: waiting for another would wait forever
        let inner = p.apply(|| 5);
        let failed = p.apply(|| -> u8 { panic!("inner") });
        (inner, failed)
    });
    assert_eq!(
        outer.take(WAIT),
        Ok((Ok(5), Err(GreenletError::Panicked("inner".into()))))
    );
}

#[test]
fn apply_async_never_blocks_and_calls_back_with_the_value() {
    watchdog::arm();
    let pool = Pool::new(1);
    let go = Arc::new(SyncFlag::new());
    let g = go.clone();
    let busy = pool.spawn(move || g.wait());
    assert!(pool.full());
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let p = pool.clone();
    // from a thread, bounded: it must return although the pool is full
    let job = within("apply_async on a full pool", WAIT, move || {
        p.apply_async(
            || 21 * 2,
            move |v: &i32| tx.lock().unwrap().send(*v).unwrap(),
        )
    });
    assert!(!job.ready());
    assert!(!pool.contains(&job), "it waits outside the pool");
    go.fire();
    assert_eq!(job.get(WAIT), Ok(42));
    assert_eq!(rx.recv_timeout(WAIT), Ok(42));
    assert!(busy.join(WAIT));
    assert!(pool.join(WAIT));
    assert_eq!(pool.free_count(), 1);

    // no callback when it fails
    let (tx, rx) = mpsc::channel::<u8>();
    let tx = Mutex::new(tx);
    let failed = pool.apply_async(
        || -> u8 { panic!("no value") },
        move |v: &u8| tx.lock().unwrap().send(*v).unwrap(),
    );
    assert_eq!(
        failed.get(WAIT),
        Err(GreenletError::Panicked("no value".into()))
    );
    assert!(rx.recv_timeout(Duration::from_millis(1)).is_err());
}

#[test]
fn add_discard_killone_and_iteration() {
    watchdog::arm();
    let pool = Pool::new(2);
    let go = Arc::new(SyncFlag::new());
    let outside: Vec<_> = (0..2)
        .map(|_| {
            let go = go.clone();
            spawn(move || go.wait())
        })
        .collect();
    pool.add(&outside[0]);
    pool.add(&outside[0]); // already a member: nothing changes
    assert!(pool.contains(&outside[0]));
    assert_eq!((pool.len(), pool.free_count()), (1, 1));
    let member = {
        let go = go.clone();
        pool.spawn(move || go.wait())
    };
    assert!(pool.full());
    let mut ids: Vec<u64> = (&pool).into_iter().map(|g| g.id()).collect();
    ids.sort_unstable();
    let mut expected = vec![outside[0].id(), member.id()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    assert_eq!(pool.greenlets().len(), 2);

    // discard: no longer tracked, slot freed, still running
    pool.discard(&outside[0]);
    assert!(!pool.contains(&outside[0]));
    assert_eq!(pool.free_count(), 1);
    assert!(!outside[0].ready());
    pool.discard(&outside[0]); // twice: nothing more is freed
    assert_eq!(pool.free_count(), 1);

    // add while full blocks until a slot frees
    pool.add(&outside[1]);
    assert!(pool.full());
    let p = pool.clone();
    let o0 = outside[0].clone();
    let adder = std::thread::spawn(move || p.add(&o0));
    assert!(pool.killone(&member, WAIT));
    assert_eq!(member.exception(), Some(GreenletError::Killed));
    support::join_within("add", WAIT, adder);
    assert!(pool.contains(&outside[0]));
    assert_eq!(pool.len(), 2);

    // killone of a non-member does nothing
    let stranger = spawn(|| may::coroutine::sleep(Duration::from_secs(3600)));
    assert!(!pool.killone(&stranger, Duration::from_millis(1)));
    assert!(!stranger.ready());
    assert!(stranger.kill(WAIT));

    // an added greenlet leaves the pool when it finishes
    go.fire();
    assert!(pool.join(WAIT));
    assert_eq!(pool.free_count(), 2);
    assert!(outside.iter().all(|g| g.successful()));
    // a finished greenlet is not added
    pool.add(&outside[0]);
    assert!(pool.is_empty());
}

#[test]
fn slots_are_released_on_every_exit_path() {
    watchdog::arm();
    let pool = Pool::new(1);
    // return
    assert_eq!(pool.spawn(|| 1).get(WAIT), Ok(1));
    assert_eq!(pool.free_count(), 1);
    // panic
    assert!(pool.spawn(|| panic!("x")).join(WAIT));
    assert_eq!(pool.free_count(), 1);
    // kill
    let g = pool.spawn(|| may::coroutine::sleep(Duration::from_secs(3600)));
    assert!(g.kill(WAIT));
    assert_eq!(pool.free_count(), 1);
    // killone, pool.kill
    let g = pool.spawn(|| may::coroutine::sleep(Duration::from_secs(3600)));
    assert!(pool.killone(&g, WAIT));
    assert_eq!(pool.free_count(), 1);
    pool.spawn(|| may::coroutine::sleep(Duration::from_secs(3600)));
    assert!(pool.kill(WAIT));
    assert_eq!(pool.free_count(), 1);
    // discard
    let g = pool.spawn(|| may::coroutine::sleep(Duration::from_secs(3600)));
    pool.discard(&g);
    assert_eq!(pool.free_count(), 1);
    assert!(g.kill(WAIT));
    // apply_async that waited outside the full pool, then was killed while waiting
    let g = pool.spawn(|| may::coroutine::sleep(Duration::from_secs(3600)));
    let waiting = pool.apply_async(|| 1, |_| {});
    assert!(waiting.kill(WAIT));
    assert_eq!(waiting.get(None), Err(GreenletError::Killed));
    assert!(g.kill(WAIT));
    assert_eq!(pool.free_count(), 1);
    // map / imap with failures
    assert!(pool
        .map(|n: u8| if n == 1 { panic!("m") } else { n }, 0..3)
        .is_err());
    assert_eq!(pool.imap(|n: u8| n, 0..3).count(), 3);
    assert!(pool.join(WAIT));
    assert_eq!(pool.free_count(), 1);
    assert_eq!(pool.wait_available(WAIT), 1);
}

#[test]
fn pool_of_zero_never_runs_anything() {
    watchdog::arm();
    let pool = Pool::new(0);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    assert!(pool
        .try_spawn(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .is_err());
    // apply_async returns at once; its task waits for a slot forever
    let r = ran.clone();
    let waiting = pool.apply_async(
        move || {
            r.fetch_add(1, Ordering::SeqCst);
        },
        |_| {},
    );
    assert_eq!(pool.wait_available(Duration::from_millis(20)), 0);
    assert!(!waiting.ready());
    assert!(waiting.kill(WAIT));
    assert_eq!(waiting.get(None), Err(GreenletError::Killed));
    // an imap never yields: dropping it stops its producer
    let (items, taken, dropped) = counted(10);
    let r = ran.clone();
    let it = pool.imap_unordered(
        move |n: usize| {
            r.fetch_add(1, Ordering::SeqCst);
            n
        },
        items,
    );
    let mut it = it;
    let consumer = may::go!(move || {
        let _ = it.next();
    });
    eventually("the producer took an item", || {
        taken.load(Ordering::SeqCst) == 1
    });
    #[allow(unsafe_code)]
    // SAFETY: cancelling a coroutine blocked on a channel is what may supports.
    unsafe {
        consumer.coroutine().cancel()
    };
    assert!(support::join_coroutine_within("the consumer", WAIT, consumer).is_err());
    assert!(dropped.wait_timeout(WAIT));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(pool.is_empty());
}

#[test]
fn group_is_an_unbounded_pool() {
    watchdog::arm();
    let group = Group::new();
    let go = Arc::new(SyncFlag::new());
    let c = Concurrency::new(50);
    let jobs: Vec<_> = (0..50)
        .map(|n| {
            let c = c.clone();
            group.spawn(move || c.task(n))
        })
        .collect();
    assert!(may_gevent::joinall(&jobs, WAIT));
    assert_eq!(c.peak(), 50);
    assert!(!group.full());
    assert_eq!(group.size(), None);
    let g = go.clone();
    group.spawn(move || g.wait());
    assert_eq!(group.len(), 1);
    assert!(group.kill(WAIT));
    let values: Vec<u32> = group
        .imap(|n: u32| n + 1, 0..3)
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, vec![1, 2, 3]);
    let pool: Pool = group.clone().into();
    assert!(pool.join(WAIT));
}

#[test]
fn a_group_runs_a_servers_handlers_and_iterates_over_them() {
    use std::io::{Read, Write};
    let group = Group::new();
    let entered = Arc::new(SyncFlag::new());
    let e = entered.clone();
    let server = may_gevent::StreamServer::builder(
        "127.0.0.1:0",
        move |mut stream: may_gevent::Stream, _addr: may_gevent::Address| {
            e.fire();
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).unwrap_or(0) == 1 {
                let _ = stream.write_all(&byte);
            }
        },
    )
    .spawn(&group)
    .build()
    .unwrap();
    server.start().unwrap();
    let mut client = support::connect(support::inet(&server));
    assert!(entered.wait_timeout(WAIT));
    // the handler is a member of the group, seen as a greenlet
    let members = group.greenlets();
    assert_eq!(members.len(), 1);
    assert!(!members[0].ready());
    client.write_all(b"x").unwrap();
    assert_eq!(support::read_exact(&mut client, 1), b"x");
    assert!(members[0].join(WAIT));
    assert!(members[0].successful());
    assert!(group.join(WAIT));
    server.stop(None);
}
