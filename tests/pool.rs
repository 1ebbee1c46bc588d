//! Pool on its own (gevent.pool.Pool semantics).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::Pool;
use support::{join_coroutine_within, WAIT};

#[test]
fn spawn_blocks_while_full_and_bounds_concurrency() {
    let pool = Pool::new(3);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    for _ in 0..30 {
        let (running, peak) = (running.clone(), peak.clone());
        pool.spawn(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            may::coroutine::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
        });
        assert!(pool.len() <= 3);
    }
    assert!(pool.join(WAIT));
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!((pool.len(), pool.free_count(), pool.full()), (0, 3, false));
}

#[test]
fn join_times_out_and_kill_cancels_with_drops() {
    struct Guard(mpsc::Sender<()>);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let pool = Pool::new(2);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    for _ in 0..2 {
        let guard = Guard(tx.lock().unwrap().clone());
        pool.spawn(move || {
            let _guard = guard;
            may::coroutine::sleep(Duration::from_secs(3600));
        });
    }
    assert!(pool.full());
    assert!(!pool.join(Duration::from_millis(50)));
    assert_eq!(pool.wait_available(Duration::from_millis(20)), 0);
    let begin = Instant::now();
    assert!(pool.kill(WAIT));
    assert!(begin.elapsed() < Duration::from_secs(2));
    rx.recv_timeout(WAIT).unwrap();
    rx.recv_timeout(WAIT).unwrap();
    assert_eq!((pool.len(), pool.free_count()), (0, 2));
    assert_eq!(pool.wait_available(None), 2);
}

#[test]
fn slots_are_released_on_panic() {
    let pool = Pool::new(1);
    let handle = pool.spawn(|| panic!("boom"));
    assert!(handle.join(WAIT), "the panicking job still runs");
    assert!(handle.get(None).is_err());
    assert!(pool.join(WAIT));
    assert_eq!(pool.free_count(), 1);
    let handle = pool.spawn(|| 42);
    assert_eq!(handle.get(WAIT), Ok(42));
}

#[test]
fn size_zero_never_runs_anything() {
    let pool = Pool::new(0);
    assert!(pool.full());
    assert_eq!(pool.wait_available(Duration::from_millis(20)), 0);
    let ran = Arc::new(AtomicUsize::new(0));
    let calling = Arc::new(may::sync::SyncFlag::new());
    let (p, r, c) = (pool.clone(), ran.clone(), calling.clone());
    let spawner = may::go!(move || {
        c.fire();
        p.spawn(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
    });
    assert!(calling.wait_timeout(WAIT), "the spawner did not run");
    // The spawner stays blocked in spawn() (give a wrong pool a moment to let it through);
    // cancel it to end the test.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!spawner.is_done());
    #[allow(unsafe_code)]
    // SAFETY: cancelling a coroutine blocked on the pool's semaphore is what may supports.
    unsafe {
        spawner.coroutine().cancel()
    };
    assert!(join_coroutine_within("the cancelled spawner", WAIT, spawner).is_err());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn unbounded_pool_tracks_members() {
    let pool = Pool::unbounded();
    let gate = Arc::new(may::sync::SyncFlag::new());
    for _ in 0..50 {
        let gate = gate.clone();
        pool.spawn(move || gate.wait());
    }
    assert_eq!(pool.len(), 50);
    assert!(!pool.full());
    assert_eq!(pool.size(), None);
    assert!(!pool.join(Duration::from_millis(20)));
    gate.fire();
    assert!(pool.join(WAIT));
    assert!(pool.is_empty());
}
