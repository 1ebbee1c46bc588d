//! `stop(timeout)` and `Pool::kill` with handlers whose `Drop` guards do real work (the Rust
//! spelling of gevent's `finally:`): lock a shared `may::sync::Mutex`, write to another
//! socket, log. Whether the handler leaves through `stop()`'s connection shutdown (blocked in
//! a read of its own socket) or through a cancel (blocked anywhere else), every guard runs to
//! its end and the process survives — under every spawn strategy, for StreamServer,
//! WsgiServer and a bare Pool.

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
use may_gevent::{Address, Pool, Spawn, Stream, StreamServer, KILL_TIMEOUT, STOP_GRACE};
use support::{connect, inet, WAIT};

/// What every guard shares: a client map behind a may Mutex, an audit connection to another
/// socket, a logger, and a count of guards that ran to their end.
struct World {
    members: may::sync::Mutex<HashSet<usize>>,
    audit: may::sync::Mutex<may::net::TcpStream>,
    log: slog::Logger,
    finished: AtomicUsize,
    records: Arc<AtomicUsize>,
    audit_lines: Mutex<mpsc::Receiver<String>>,
}

/// A slog drain that counts records.
struct Count(Arc<AtomicUsize>);

impl slog::Drain for Count {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, _: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl World {
    fn new() -> Arc<World> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let audit = may::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(WAIT)).unwrap();
        let (tx, audit_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(peer).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let records = Arc::new(AtomicUsize::new(0));
        let log = slog::Logger::root(slog::Drain::fuse(Count(records.clone())), slog::o!());
        Arc::new(World {
            members: may::sync::Mutex::new(HashSet::new()),
            audit: may::sync::Mutex::new(audit),
            log,
            finished: AtomicUsize::new(0),
            records,
            audit_lines: Mutex::new(audit_lines),
        })
    }

    /// The guard of member `id`, registered in the map.
    fn guard(self: &Arc<World>, id: usize) -> Guard {
        self.members.lock().unwrap().insert(id);
        Guard {
            id,
            world: self.clone(),
        }
    }

    /// Every one of `n` guards ran to its end: its audit line arrived, its record was
    /// logged, the map is empty.
    fn assert_all_guards_ran(&self, n: usize) {
        let mut seen = HashSet::new();
        let lines = self.audit_lines.lock().unwrap();
        while seen.len() < n {
            let line = lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("{} of {n} guards wrote their audit line", seen.len()));
            let id: usize = line.strip_prefix("bye ").unwrap().parse().unwrap();
            assert!(seen.insert(id), "guard {id} ran twice");
        }
        assert_eq!(self.finished.load(Ordering::SeqCst), n);
        assert_eq!(self.records.load(Ordering::SeqCst), n);
        assert!(self.members.lock().unwrap().is_empty());
    }
}

/// gevent's `finally:` block: remove me from the map, tell another socket, log.
struct Guard {
    id: usize,
    world: Arc<World>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let world = &self.world;
        let mut members = world.members.lock().unwrap();
        members.remove(&self.id);
        {
            let mut audit = world.audit.lock().unwrap();
            writeln!(audit, "bye {}", self.id).unwrap();
        }
        drop(members);
        slog::info!(world.log, "client left"; "id" => self.id,
            "unwinding" => thread::panicking());
        world.finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// Where the handlers block until `stop()` ends them.
#[derive(Clone, Copy, Debug)]
enum Blocked {
    /// Reading their own connection, which the client never writes to: `stop()`'s shutdown
    /// step ends the read and the handler returns.
    OwnRead,
    /// Sleeping: only a cancel ends it, and the guards run while the stack unwinds.
    Sleep,
}

fn block(how: Blocked, stream: &mut impl Read) {
    match how {
        Blocked::OwnRead => {
            let mut buf = [0u8; 16];
            let _ = stream.read(&mut buf);
        }
        Blocked::Sleep => may::coroutine::sleep(Duration::from_secs(60)),
    }
}

/// How long `stop(timeout)` may take: the timeout, the grace, the kill, and slack.
fn stop_bound(timeout: Duration) -> Duration {
    timeout + STOP_GRACE + KILL_TIMEOUT + Duration::from_secs(2)
}

fn stream_server(spawn: Spawn, n: usize, how: Blocked) {
    let world = World::new();
    let (started_tx, started) = mpsc::channel();
    let next = Arc::new(AtomicUsize::new(0));
    let w = world.clone();
    let server = StreamServer::builder("127.0.0.1:0", move |mut stream: Stream, _: Address| {
        let _guard = w.guard(next.fetch_add(1, Ordering::SeqCst));
        started_tx.send(()).unwrap();
        block(how, &mut stream);
    })
    .spawn(spawn)
    .build()
    .unwrap();
    server.start().unwrap();
    let clients: Vec<_> = (0..n).map(|_| connect(inet(&server))).collect();
    for _ in 0..n {
        started.recv_timeout(WAIT).expect("handler started");
    }
    let timeout = Duration::from_millis(100);
    let begin = Instant::now();
    server.stop(timeout);
    assert!(
        begin.elapsed() < stop_bound(timeout),
        "stop took {:?}",
        begin.elapsed()
    );
    world.assert_all_guards_ran(n);
    assert!(server.pool().is_empty());
    drop(clients);
}

fn wsgi_server(spawn: Spawn, n: usize, how: Blocked) {
    let world = World::new();
    let (started_tx, started) = mpsc::channel();
    let next = Arc::new(AtomicUsize::new(0));
    let w = world.clone();
    let app = move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
        let _guard = w.guard(next.fetch_add(1, Ordering::SeqCst));
        started_tx.send(()).unwrap();
        block(how, env.input()); // the client announced a body it never sends
        start_response.call("200 OK", &[])?;
        Ok(b"unreachable".to_vec().into())
    };
    let server = WsgiServer::builder("127.0.0.1:0", app)
        .spawn(spawn)
        .logger(None)
        .access_log(None)
        .build()
        .unwrap();
    server.start().unwrap();
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut client = connect(inet(&server));
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            .unwrap();
        clients.push(client);
    }
    for _ in 0..n {
        started.recv_timeout(WAIT).expect("app started");
    }
    let timeout = Duration::from_millis(100);
    let begin = Instant::now();
    server.stop(timeout);
    assert!(
        begin.elapsed() < stop_bound(timeout),
        "stop took {:?}",
        begin.elapsed()
    );
    world.assert_all_guards_ran(n);
    assert!(server.pool().is_empty());
}

macro_rules! per_strategy {
    ($($name:ident: $spawn:expr, $n:expr;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn stream_server_handlers_blocked_in_their_own_read() {
                stream_server($spawn, $n, Blocked::OwnRead);
            }

            #[test]
            fn stream_server_handlers_cancelled_in_a_sleep() {
                stream_server($spawn, $n, Blocked::Sleep);
            }

            #[test]
            fn wsgi_apps_blocked_in_a_body_read() {
                wsgi_server($spawn, $n, Blocked::OwnRead);
            }

            #[test]
            fn wsgi_apps_cancelled_in_a_sleep() {
                wsgi_server($spawn, $n, Blocked::Sleep);
            }
        }
    )*};
}

per_strategy! {
    default_spawn: Spawn::Default, 20;
    pool_spawn: Spawn::Pool(Pool::new(20)), 20;
    inline_spawn: Spawn::Inline, 1;
}

/// A bare Pool: members blocked in a sleep or in a read of a socket (the pool knows nothing
/// of sockets, so both end by cancel), each with a guard that locks, writes and logs.
#[test]
fn pool_kill_runs_every_guard_to_its_end() {
    let world = World::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let pool = Pool::new(40);
    let (started_tx, started) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    for id in 0..40 {
        let w = world.clone();
        let tx = started_tx.lock().unwrap().clone();
        pool.spawn(move || {
            let _guard = w.guard(id);
            if id % 2 == 0 {
                tx.send(()).unwrap();
                may::coroutine::sleep(Duration::from_secs(60));
            } else {
                let mut sock = may::net::TcpStream::connect(addr).unwrap();
                tx.send(()).unwrap();
                let mut buf = [0u8; 1];
                let _ = sock.read(&mut buf);
            }
        });
    }
    let mut peers = Vec::new();
    for _ in 0..20 {
        peers.push(listener.accept().unwrap());
    }
    for _ in 0..40 {
        started.recv_timeout(WAIT).expect("member started");
    }
    let begin = Instant::now();
    assert!(
        pool.kill(KILL_TIMEOUT + Duration::from_secs(2)),
        "members left"
    );
    assert!(begin.elapsed() < KILL_TIMEOUT + Duration::from_secs(3));
    world.assert_all_guards_ran(40);
    assert!(pool.is_empty());
}
