//! One descriptor per connection on the server side, as in gevent: a server that holds
//! twice as many as it serves reaches RLIMIT_NOFILE at half the connections. The server runs
//! in this process, so each connection here is its client's socket plus the server's.
//! `stop()` still shuts every connection down (its registry holds the sockets' own
//! descriptors, never one that outlived its socket).

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::Read;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::from_fn;
use may_gevent::{Address, Stream, StreamServer};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Waits (bounded) until the process's descriptors are at most `want`.
fn descriptors_settle_at_most(want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_descriptors();
        if now <= want || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const CONNS: usize = 60;

/// One GET on a plain std socket (one descriptor), response read to its end.
fn get_once(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = support::connect_to(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"ok") {
        let n = stream.read(&mut buf).expect("a response");
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    stream
}

// One test: descriptor counts are the whole process's, parallel tests would mix them.
#[test]
fn servers_hold_one_descriptor_per_connection() {
    wsgi_server();
    stream_server_and_stop();
}

fn wsgi_server() {
    let server = support::serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[])?;
        Ok("ok".into())
    }));
    // warm up: may's and the server's own descriptors (epoll sets, the sweeper) exist
    let first = get_once(server.addr);
    let before = open_descriptors();
    let clients: Vec<_> = (0..CONNS).map(|_| get_once(server.addr)).collect();
    let after = open_descriptors();
    // the client's socket and the server's per connection (0.3 before: and a duplicate)
    assert!(
        after - before <= 2 * CONNS + 4,
        "WsgiServer: {} descriptors for {CONNS} connections",
        after - before
    );
    drop(clients);
    let settled = descriptors_settle_at_most(before);
    assert!(settled <= before, "{} descriptors left", settled - before);
    drop(first);
}

fn stream_server_and_stop() {
    // handlers block in a read until stop() shuts their sockets down; they count their
    // normal returns (a cancelled one unwinds past the count)
    let returned = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = returned.clone();
    let server = StreamServer::builder(
        "127.0.0.1:0",
        move |mut socket: Stream, _: Address| -> std::io::Result<()> {
            let mut buf = [0u8; 16];
            while matches!(socket.read(&mut buf), Ok(n) if n > 0) {}
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        },
    )
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let warm = support::connect_to(addr);
    let wait_handlers = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.pool().len() < n {
            assert!(
                Instant::now() < deadline,
                "{} handlers",
                server.pool().len()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_handlers(1);
    let before = open_descriptors();
    let mut clients: Vec<_> = (0..CONNS).map(|_| support::connect_to(addr)).collect();
    wait_handlers(CONNS + 1);
    let after = open_descriptors();
    assert!(
        after - before <= 2 * CONNS + 4,
        "StreamServer: {} descriptors for {CONNS} connections",
        after - before
    );
    // past its timeout, stop() shuts the sockets still served down: every handler blocked in
    // its read returns normally (none has to be cancelled)
    server.stop(Duration::from_millis(200));
    assert!(server.pool().is_empty());
    assert_eq!(
        returned.load(std::sync::atomic::Ordering::SeqCst),
        CONNS + 1,
        "handlers that returned after the shutdown"
    );
    for client in &mut clients {
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
    drop(warm);
}
