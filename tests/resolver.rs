//! Cooperative name resolution and `create_connection` (gevent's threaded resolver and
//! `gevent.socket.create_connection`): a resolver that hangs stalls no other coroutine and
//! times out; each address is tried in order; the timeout bounds the whole connect; the
//! source address is bound.

mod support;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::{create_connection, Address, Resolver, Stream, StreamServer, ThreadPool};
use support::{eventually, inet, join_coroutine_within, ReservedPort, WAIT};

/// A lookup that blocks its pool thread until the returned sender is dropped (or WAIT passes).
fn hanging_resolver(pool: ThreadPool) -> (Resolver, mpsc::Sender<()>, Arc<AtomicUsize>) {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let resolver = Resolver::with_lookup(move |_host, _port| {
        c.fetch_add(1, Ordering::SeqCst);
        let _ = rx.lock().unwrap().recv_timeout(WAIT);
        Err(io::Error::other("released"))
    })
    .pool(pool);
    (resolver, tx, calls)
}

/// An echo server: writes back the peer address it saw, then echoes.
fn peer_server() -> StreamServer {
    let server = StreamServer::new("127.0.0.1:0", |mut s: Stream, addr: Address| {
        writeln!(s, "{addr}")
    })
    .unwrap();
    server.start().unwrap();
    server
}

fn read_all(mut s: Stream) -> String {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn a_hanging_resolver_times_out_and_stalls_nobody() {
    // four lookups that hang, more than may has workers, each with a 300 ms timeout
    let timeout = Duration::from_millis(300);
    let (resolver, release, calls) = hanging_resolver(ThreadPool::new(4));
    let resolver = resolver.timeout(timeout);
    let lookups: Vec<_> = (0..4)
        .map(|i| {
            let r = resolver.clone();
            may::go!(move || {
                let start = Instant::now();
                let result = r.getaddrinfo(&format!("hang{i}.test"), 80);
                (result.map(|_| ()), start.elapsed())
            })
        })
        .collect();
    eventually("four lookups hanging on pool threads", || {
        calls.load(Ordering::SeqCst) == 4
    });
    // meanwhile a coroutine connects to a local server and reads its answer
    let server = peer_server();
    let addr = inet(&server);
    let fast_done = Arc::new(AtomicBool::new(false));
    let f = fast_done.clone();
    let fast = may::go!(move || {
        let start = Instant::now();
        let text = read_all(create_connection(addr, WAIT, None).unwrap());
        f.store(true, Ordering::SeqCst);
        (text, start.elapsed())
    });
    let (text, fast_took) = join_coroutine_within("fast coroutine", WAIT, fast).unwrap();
    assert!(text.starts_with("127.0.0.1:"), "{text:?}");
    assert!(
        lookups.iter().all(|l| !l.is_done()),
        "the fast connect finished while every lookup still hung"
    );
    for lookup in lookups {
        let (result, took) = join_coroutine_within("lookup", WAIT, lookup).unwrap();
        let err = result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains(".test"), "names the host: {err}");
        assert!(took >= timeout, "{took:?}");
        assert!(took < timeout * 10, "{took:?}");
        assert!(fast_took < took, "fast {fast_took:?} vs hanging {took:?}");
    }
    drop(release);
    server.stop(None);
}

#[test]
fn create_connection_times_out_on_a_hanging_resolver() {
    let (resolver, _release, _) = hanging_resolver(ThreadPool::new(1));
    let h = may::go!(move || {
        let start = Instant::now();
        let result =
            resolver.create_connection(("hang.test", 80), Duration::from_millis(200), None);
        (result.map(|_| ()), start.elapsed())
    });
    let (result, took) = join_coroutine_within("connect", WAIT, h).unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains("hang.test:80"), "{err}");
    assert!(
        took >= Duration::from_millis(200) && took < WAIT / 2,
        "{took:?}"
    );
}

#[test]
fn each_address_is_tried_in_order() {
    let server = peer_server();
    let good = inet(&server);
    let refused = ReservedPort::new();
    let (bad, seen) = (refused.addr, Arc::new(Mutex::new(Vec::new())));
    let s = seen.clone();
    let resolver = Resolver::with_lookup(move |host, port| {
        s.lock().unwrap().push(format!("{host}:{port}"));
        Ok(vec![bad, good])
    });
    let stream = resolver
        .create_connection("service.test:1", WAIT, None)
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap(), Address::Inet(good));
    assert_eq!(*seen.lock().unwrap(), ["service.test:1"]);
    // every address refused: the last error, with the address
    let resolver = Resolver::with_lookup(move |_, _| Ok(vec![bad, bad]));
    let err = resolver
        .create_connection("x.test:1", WAIT, None)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    assert!(err.to_string().contains(&bad.to_string()), "{err}");
    server.stop(None);
}

#[test]
fn the_source_address_is_bound() {
    let server = peer_server();
    let addr = inet(&server);
    // all of 127.0.0.0/8 is loopback on Linux: the server sees the address we bound
    let source: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let text = read_all(create_connection(addr, WAIT, Some(source)).unwrap());
    assert!(text.starts_with("127.0.0.2:"), "{text:?}");
    // a source of the other family cannot reach it
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    let err = create_connection(addr, WAIT, Some(v6)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable, "{err}");
    server.stop(None);
}

#[test]
fn localhost_resolves_on_the_pool_and_bad_addresses_are_errors() {
    let server = peer_server();
    let port = inet(&server).port();
    let h = may::go!(move || read_all(
        create_connection(format!("localhost:{port}"), WAIT, None).unwrap()
    ));
    let text = join_coroutine_within("connect", WAIT, h).unwrap();
    assert!(text.contains(':'), "{text:?}");
    for bad in ["no-port", "::1:80", "host:http"] {
        let err = create_connection(bad, WAIT, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}: {err}");
    }
    server.stop(None);
}
