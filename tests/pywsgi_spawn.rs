//! WsgiServer under each spawn strategy (`Spawn::Default`, `Spawn::Pool`, `Spawn::Inline`):
//! a full pool stops accepting until a connection's handler finishes, and `stop(timeout)` ends
//! an application blocked in `wsgi.input` reads.
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may::sync::SyncFlag;
use may_gevent::pywsgi::{AppResult, Application, Environ, StartResponse, WsgiServer};
use may_gevent::{Pool, Spawn, KILL_TIMEOUT};
use support::{read_to_close, TestServer};

/// How long a test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(300);

/// Bound for every wait on the application.
const WAIT: Duration = Duration::from_secs(10);

/// Sends on its channel when dropped: the application's stack was unwound or it returned.
struct DropGuard(mpsc::Sender<()>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// A started WsgiServer with the test config (logs captured) and the given spawn strategy.
fn serve_spawn(spawn: Spawn, app: impl Application) -> TestServer {
    support::init();
    let (config, access, records) = support::test_config();
    let server = WsgiServer::builder("127.0.0.1:0", app)
        .config(config)
        .spawn(spawn)
        .build()
        .expect("build");
    server.start().expect("start");
    let addr = server.address().and_then(|a| a.as_inet()).expect("bound");
    TestServer {
        addr,
        access,
        records,
        server,
    }
}

/// An application whose `/block/<i>` requests wait until `release[i]` fires; every request
/// reports its path on `entered` when the application starts.
fn blocking_app(entered: mpsc::Sender<String>, release: Arc<Vec<SyncFlag>>) -> impl Application {
    move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
        let path = env.path_info().to_owned();
        entered.send(path.clone()).unwrap();
        if let Some(i) = path.strip_prefix("/block/") {
            let i: usize = i.parse()?;
            if !release[i].wait_timeout(WAIT) {
                return Err("never released".into());
            }
        }
        start_response.call("200 OK", &[])?;
        Ok(format!("done {path}").into())
    }
}

fn releases(n: usize) -> Arc<Vec<SyncFlag>> {
    Arc::new((0..n).map(|_| SyncFlag::new()).collect())
}

fn get(path: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{connection}\r\n").into_bytes()
}

/// Asserts that nothing has arrived on `stream` (without waiting).
fn assert_nothing_yet(stream: &TcpStream) {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let res = (&*stream).read(&mut buf);
    stream.set_nonblocking(false).unwrap();
    match res {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
        other => panic!("expected nothing on the waiting connection, got {other:?}"),
    }
}

/// `capacity` requests fill the pool; another connection is neither served nor answered until
/// one of them finishes, and then it is.
fn full_pool_stops_accepting_until_a_request_finishes(spawn: Spawn, capacity: usize) {
    let (entered_tx, entered) = mpsc::channel();
    let release = releases(capacity);
    let server = serve_spawn(spawn, blocking_app(entered_tx, release.clone()));
    let mut blockers: Vec<TcpStream> = (0..capacity)
        .map(|i| {
            let mut stream = server.connect();
            stream
                .write_all(&get(&format!("/block/{i}"), true))
                .unwrap();
            stream
        })
        .collect();
    let mut paths: Vec<String> = (0..capacity)
        .map(|_| entered.recv_timeout(WAIT).unwrap())
        .collect();
    paths.sort();
    let expected: Vec<String> = (0..capacity).map(|i| format!("/block/{i}")).collect();
    assert_eq!(paths, expected);
    assert!(server.server.pool().full());

    let mut waiting = server.connect();
    waiting.write_all(&get("/", true)).unwrap();
    assert_eq!(
        entered.recv_timeout(QUIET),
        Err(RecvTimeoutError::Timeout),
        "a request was served while the pool was full"
    );
    assert_nothing_yet(&waiting);

    // One request finishes: its slot goes to the waiting connection.
    release[0].fire();
    let text = support::normalize(&read_to_close(&mut blockers[0]));
    assert!(text.ends_with("\r\n\r\ndone /block/0"), "{text}");
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), "/");
    let text = support::normalize(&read_to_close(&mut waiting));
    assert!(text.ends_with("\r\n\r\ndone /"), "{text}");

    for (i, stream) in blockers.iter_mut().enumerate().skip(1) {
        release[i].fire();
        let text = support::normalize(&read_to_close(stream));
        assert!(
            text.ends_with(&format!("\r\n\r\ndone /block/{i}")),
            "{text}"
        );
    }
    assert!(
        server.records.errors().is_empty(),
        "{:?}",
        server.records.errors()
    );
}

/// The pool's slot belongs to the connection, not to one request: a keep-alive connection
/// keeps it after its response, until the client closes.
fn a_keep_alive_connection_holds_its_slot_until_it_closes(spawn: Spawn, capacity: usize) {
    let (entered_tx, entered) = mpsc::channel();
    let release = releases(capacity);
    for flag in release.iter() {
        flag.fire(); // nothing blocks in this test
    }
    let server = serve_spawn(spawn, blocking_app(entered_tx, release));
    let mut clients: Vec<support::Client> = (0..capacity)
        .map(|i| {
            let mut client = server.client();
            let resp = client.get(&format!("/block/{i}"));
            assert_eq!(resp.body_text(), format!("done /block/{i}"));
            assert_ne!(resp.header("Connection"), Some("close"));
            client
        })
        .collect();
    for _ in 0..capacity {
        entered.recv_timeout(WAIT).unwrap();
    }
    assert!(server.server.pool().full());

    let mut waiting = server.connect();
    waiting.write_all(&get("/", true)).unwrap();
    assert_eq!(
        entered.recv_timeout(QUIET),
        Err(RecvTimeoutError::Timeout),
        "a connection was served while idle keep-alive connections filled the pool"
    );
    assert_nothing_yet(&waiting);

    // The first client closes: its handler returns and frees the slot.
    drop(clients.remove(0));
    assert_eq!(entered.recv_timeout(WAIT).unwrap(), "/");
    let text = support::normalize(&read_to_close(&mut waiting));
    assert!(text.ends_with("\r\n\r\ndone /"), "{text}");
    // the others are still served on their connections
    for client in &mut clients {
        assert_eq!(client.get("/").body_text(), "done /");
    }
}

/// The application reads part of a body the client never finishes; `stop(timeout)` ends it:
/// stop returns in bounded time, the application's stack is gone (its guard dropped) and the
/// client's connection is closed without a successful response.
fn stop_ends_an_app_blocked_in_input_read(spawn: Spawn) {
    const STOP: Duration = Duration::from_millis(200);
    let (reading_tx, reading) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel();
    let server = serve_spawn(
        spawn,
        move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            let _guard = DropGuard(dropped_tx.clone());
            let mut first = [0u8; 10];
            env.input().read_exact(&mut first)?;
            reading_tx.send(()).unwrap();
            // 990 more bytes are announced and never sent; the body read timeout is 30 s.
            let rest = env.input().read_all()?;
            start_response.call("200 OK", &[])?;
            Ok(rest.into())
        },
    );
    let mut stream = server.connect();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    stream.write_all(b"0123456789").unwrap();
    reading.recv_timeout(WAIT).unwrap();

    let begin = Instant::now();
    server.server.stop(STOP);
    let took = begin.elapsed();
    assert!(
        took < STOP + KILL_TIMEOUT + Duration::from_secs(2),
        "stop returned after {took:?}"
    );
    assert!(
        dropped.try_recv().is_ok(),
        "the application was still running when stop returned"
    );
    assert!(server.server.pool().is_empty());

    let reply = String::from_utf8_lossy(&read_to_close(&mut stream)).into_owned();
    assert!(!reply.contains(" 200 "), "{reply}");
    assert_refused(server.addr);
}

fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, WAIT) {
        Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}"),
        Ok(_) => panic!("the stopped server accepted a connection"),
    }
}

macro_rules! bounded_strategy {
    ($name:ident, $spawn:expr, $capacity:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn a_full_pool_stops_accepting_until_a_request_finishes() {
                full_pool_stops_accepting_until_a_request_finishes($spawn, $capacity);
            }

            #[test]
            fn a_keep_alive_connection_holds_its_slot_until_it_closes() {
                super::a_keep_alive_connection_holds_its_slot_until_it_closes($spawn, $capacity);
            }

            #[test]
            fn stop_ends_an_app_blocked_in_input_read() {
                super::stop_ends_an_app_blocked_in_input_read($spawn);
            }
        }
    };
}

bounded_strategy!(pool_1, Spawn::Pool(Pool::new(1)), 1);
bounded_strategy!(pool_2, Spawn::from(2), 2);
bounded_strategy!(inline, Spawn::Inline, 1);

mod default {
    use super::*;

    #[test]
    fn new_connections_are_served_while_apps_block() {
        const BLOCKED: usize = 3;
        let (entered_tx, entered) = mpsc::channel();
        let release = releases(BLOCKED);
        let server = serve_spawn(Spawn::Default, blocking_app(entered_tx, release.clone()));
        let mut blockers: Vec<TcpStream> = (0..BLOCKED)
            .map(|i| {
                let mut stream = server.connect();
                stream
                    .write_all(&get(&format!("/block/{i}"), true))
                    .unwrap();
                stream
            })
            .collect();
        for _ in 0..BLOCKED {
            assert!(entered.recv_timeout(WAIT).unwrap().starts_with("/block/"));
        }
        assert_eq!(server.server.pool().size(), None);
        assert!(!server.server.pool().full());
        let text = server.raw_text(&get("/", true));
        assert!(text.ends_with("\r\n\r\ndone /"), "{text}");
        assert_eq!(entered.recv_timeout(WAIT).unwrap(), "/");
        for (i, stream) in blockers.iter_mut().enumerate() {
            release[i].fire();
            let text = support::normalize(&read_to_close(stream));
            assert!(
                text.ends_with(&format!("\r\n\r\ndone /block/{i}")),
                "{text}"
            );
        }
    }

    #[test]
    fn stop_ends_an_app_blocked_in_input_read() {
        super::stop_ends_an_app_blocked_in_input_read(Spawn::Default);
    }
}
