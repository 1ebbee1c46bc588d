//! Greenlet handles (gevent.Greenlet, gevent.spawn, joinall, killall) over real coroutines.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use may::sync::SyncFlag;
use may_gevent::{joinall, killall, spawn, AnyGreenlet, GreenletError, Pool};
use support::{watchdog, within, WAIT};

/// Sends on drop: proves a killed task unwound (its `Drop`s ran).
struct Guard(Mutex<mpsc::Sender<usize>>, usize);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.lock().unwrap().send(self.1);
    }
}

fn gate() -> Arc<SyncFlag> {
    Arc::new(SyncFlag::new())
}

#[test]
fn get_returns_the_value_every_time_and_take_moves_it_once() {
    watchdog::arm();
    let g = spawn(|| String::from("value"));
    assert!(g.join(WAIT));
    assert!(g.ready() && g.successful());
    assert_eq!(g.exception(), None);
    assert_eq!(g.get(None).as_deref(), Ok("value"));
    assert_eq!(g.get(WAIT).as_deref(), Ok("value"));
    assert_eq!(g.take(None).as_deref(), Ok("value"));
    assert_eq!(g.take(None), Err(GreenletError::Taken));
    assert_eq!(g.get(None), Err(GreenletError::Taken));
    // still a success: the value existed
    assert!(g.successful());
}

#[test]
fn a_panic_surfaces_through_get_with_its_message_and_frees_the_slot() {
    watchdog::arm();
    let pool = Pool::new(1);
    let g = pool.spawn(|| -> u32 { panic!("broken {}", 42) });
    assert_eq!(
        g.get(WAIT),
        Err(GreenletError::Panicked("broken 42".to_owned()))
    );
    assert!(g.ready() && !g.successful());
    assert_eq!(
        g.exception(),
        Some(GreenletError::Panicked("broken 42".to_owned()))
    );
    assert_eq!(
        g.get(None).unwrap_err().to_string(),
        "the greenlet panicked: broken 42"
    );
    // the slot is free again once the handle is ready
    assert_eq!(pool.free_count(), 1);
    assert!(!pool.contains(&g));
    let payload = pool.spawn(|| std::panic::panic_any(7u8));
    assert_eq!(
        payload.get(WAIT),
        Err(GreenletError::Panicked("Box<dyn Any>".to_owned()))
    );
    assert_eq!(pool.spawn(|| 5).get(WAIT), Ok(5));
}

#[test]
fn get_times_out_while_the_task_runs_on() {
    watchdog::arm();
    let go = gate();
    let g = {
        let go = go.clone();
        spawn(move || {
            go.wait();
            1
        })
    };
    let begin = Instant::now();
    assert_eq!(
        g.get(Duration::from_millis(30)),
        Err(GreenletError::Timeout)
    );
    assert_eq!(
        g.take(Duration::from_millis(1)),
        Err(GreenletError::Timeout)
    );
    assert!(begin.elapsed() >= Duration::from_millis(30));
    assert!(!g.ready() && !g.successful());
    assert!(!g.join(Duration::from_millis(1)));
    assert_eq!(g.exception(), None);
    go.fire();
    assert_eq!(g.get(WAIT), Ok(1));
}

#[test]
fn kill_unwinds_a_task_blocked_in_socket_io_and_frees_its_slot() {
    watchdog::arm();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let pool = Pool::new(1);
    let (tx, dropped) = mpsc::channel();
    let (connected_tx, connected) = mpsc::channel();
    let guard = Guard(Mutex::new(tx), 1);
    let g = pool.spawn(move || -> usize {
        let _guard = guard;
        let mut sock = may::net::TcpStream::connect(addr).unwrap();
        connected_tx.send(()).unwrap();
        let mut buf = [0u8; 1];
        // the peer never writes: only a kill ends this
        sock.read(&mut buf).unwrap_or(0)
    });
    let (_peer, _) = listener.accept().unwrap();
    connected.recv_timeout(WAIT).unwrap();
    assert!(pool.full());
    assert!(g.kill(WAIT), "the task did not unwind");
    assert_eq!(dropped.recv_timeout(WAIT), Ok(1));
    assert_eq!(g.get(None), Err(GreenletError::Killed));
    assert_eq!(g.exception(), Some(GreenletError::Killed));
    assert_eq!(
        g.get(None).unwrap_err().to_string(),
        "the greenlet was killed"
    );
    assert!(!g.successful());
    assert_eq!((pool.len(), pool.free_count()), (0, 1));
    // killing a finished task changes nothing
    assert!(g.kill(Duration::ZERO));
    let done = spawn(|| 3);
    assert_eq!(done.get(WAIT), Ok(3));
    assert!(done.kill(WAIT));
    assert_eq!(done.get(None), Ok(3));
}

#[test]
fn dropping_a_handle_does_not_kill_the_task() {
    watchdog::arm();
    let pool = Pool::new(2);
    let go = gate();
    let (tx, rx) = mpsc::channel();
    {
        let go = go.clone();
        let g = pool.spawn(move || {
            go.wait();
            tx.send("finished").unwrap();
        });
        drop(g);
    }
    assert_eq!(pool.len(), 1);
    go.fire();
    assert_eq!(rx.recv_timeout(WAIT), Ok("finished"));
    assert!(pool.join(WAIT));
    assert_eq!(pool.free_count(), 2);
}

#[test]
fn ids_names_and_equality() {
    watchdog::arm();
    let a = spawn(|| 1);
    let b = spawn(|| 2);
    assert_ne!(a.id(), b.id());
    assert_eq!(a.name(), format!("Greenlet-{}", a.id()));
    assert_eq!(a.clone(), a);
    assert_ne!(a, b);
    let any: AnyGreenlet = a.clone().into();
    assert_eq!(any.id(), a.id());
    assert_eq!(&any, a.as_ref());
    assert!(joinall([&a, &b], WAIT));
    assert_eq!(format!("{a:?}"), format!("<Greenlet-{}: returned>", a.id()));
}

#[test]
fn joinall_times_out_then_succeeds() {
    watchdog::arm();
    let go = gate();
    let jobs: Vec<_> = (0..5)
        .map(|n| {
            let go = go.clone();
            spawn(move || {
                if n % 2 == 0 {
                    go.wait();
                }
                n
            })
        })
        .collect();
    let begin = Instant::now();
    assert!(!joinall(&jobs, Duration::from_millis(50)));
    let waited = begin.elapsed();
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert!(waited < WAIT);
    // the odd ones were not held up
    assert!(jobs[1].join(WAIT) && jobs[3].join(WAIT));
    assert!(!jobs[0].ready());
    go.fire();
    assert!(joinall(&jobs, WAIT));
    let values: Vec<_> = jobs.iter().map(|g| g.get(None).unwrap()).collect();
    assert_eq!(values, vec![0, 1, 2, 3, 4]);
    // an empty set is joined at once
    assert!(joinall(Vec::<AnyGreenlet>::new(), Duration::ZERO));
}

#[test]
fn killall_kills_every_task_and_runs_every_guard() {
    watchdog::arm();
    let pool = Pool::new(10);
    let (tx, dropped) = mpsc::channel();
    let tx = Mutex::new(tx);
    let started = Arc::new(AtomicUsize::new(0));
    let mut jobs = Vec::new();
    for n in 0..8 {
        let guard = Guard(Mutex::new(tx.lock().unwrap().clone()), n);
        let started = started.clone();
        jobs.push(pool.spawn(move || {
            let _guard = guard;
            started.fetch_add(1, Ordering::SeqCst);
            may::coroutine::sleep(Duration::from_secs(3600));
        }));
    }
    support::eventually("all started", || started.load(Ordering::SeqCst) == 8);
    // from a thread, bounded
    let handles = jobs.clone();
    assert!(within("killall", WAIT, move || killall(&handles, WAIT)));
    let mut seen: Vec<usize> = (0..8)
        .map(|_| dropped.recv_timeout(WAIT).unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
    assert!(jobs
        .iter()
        .all(|g| g.get(None) == Err(GreenletError::Killed)));
    assert_eq!((pool.len(), pool.free_count()), (0, 10));
}

#[test]
fn killall_with_a_zero_timeout_cancels_at_once() {
    watchdog::arm();
    let jobs: Vec<_> = (0..4)
        .map(|_| spawn(|| may::coroutine::sleep(Duration::from_secs(3600))))
        .collect();
    // nothing finished within no time at all; the cancels went out anyway
    let _ = killall(&jobs, Duration::ZERO);
    assert!(joinall(&jobs, WAIT));
    assert!(jobs
        .iter()
        .all(|g| g.exception() == Some(GreenletError::Killed)));
}

#[test]
fn a_greenlet_spawned_alone_belongs_to_no_pool() {
    watchdog::arm();
    let pool = Pool::new(1);
    let go = gate();
    let g = {
        let go = go.clone();
        spawn(move || go.wait())
    };
    assert!(!pool.contains(&g));
    assert_eq!(pool.free_count(), 1);
    go.fire();
    assert!(g.join(WAIT));
}

#[test]
fn killing_twice_by_every_route_is_harmless() {
    watchdog::arm();
    let pool = Pool::new(3);
    let (tx, dropped) = mpsc::channel();
    let tx = Mutex::new(tx);
    let jobs: Vec<_> = (0..3)
        .map(|n| {
            let guard = Guard(Mutex::new(tx.lock().unwrap().clone()), n);
            pool.spawn(move || {
                let _guard = guard;
                may::coroutine::sleep(Duration::from_secs(3600));
            })
        })
        .collect();
    assert!(jobs[0].kill(WAIT));
    assert!(jobs[0].kill(WAIT));
    assert!(pool.killone(&jobs[1], WAIT));
    assert!(jobs[1].kill(WAIT));
    assert!(killall(&jobs, WAIT));
    assert!(pool.kill(WAIT));
    let mut seen: Vec<usize> = (0..3)
        .map(|_| dropped.recv_timeout(WAIT).unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![0, 1, 2]);
    // each guard ran once
    assert!(dropped.recv_timeout(Duration::from_millis(10)).is_err());
    assert_eq!(pool.free_count(), 3);
}
