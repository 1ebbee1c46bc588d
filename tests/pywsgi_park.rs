//! Idle keep-alive connections parked without a coroutine (`WsgiServer::parked_connections`):
//! with the default spawn, a connection idle for `IDLE_RELEASE` leaves the pool and waits in
//! the server's lot; its next request is served on the same connection by a new handler, a
//! client close or the keep-alive timeout closes it, `stop()` closes it at once, and a
//! restarted server parks again. With a bounded pool idle connections keep their greenlets
//! (gevent's pool counts connections).
//!
//! The clients sleep to *be idle* (what is under test needs idle time), never to wait for the
//! server: server-side effects are polled with a deadline or read from the socket.

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{from_fn, Application, WsgiServer, IDLE_RELEASE};
use may_gevent::Pool;
use support::{serve, serve_with, Client};

fn hello() -> impl Application {
    from_fn(|env, start_response| {
        let body = format!("path={}", env.path_info());
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Ok(body.into())
    })
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Idle long enough to be parked, with room for a loaded machine.
fn idle_past_release() {
    std::thread::sleep(IDLE_RELEASE + Duration::from_millis(300));
}

#[test]
fn an_idle_connection_leaves_the_pool_and_its_next_request_is_served() {
    let server = serve(hello());
    let mut clients: Vec<Client> = (0..3).map(|_| server.client()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            client.get(&format!("/a{i}")).body_text(),
            format!("path=/a{i}")
        );
    }
    assert_eq!(
        server.server.pool().len(),
        3,
        "busy or briefly idle: greenlets"
    );
    idle_past_release();
    eventually("3 parked", || server.server.parked_connections() == 3);
    assert_eq!(server.server.pool().len(), 0, "parked: no greenlet");
    // served again, each on its own connection, twice (parked a second time in between)
    for round in 0..2 {
        for (i, client) in clients.iter_mut().enumerate() {
            let path = format!("/r{round}c{i}");
            assert_eq!(client.get(&path).body_text(), format!("path={path}"));
        }
        assert_eq!(server.server.parked_connections(), 0);
        assert_eq!(server.server.pool().len(), 3);
        if round == 0 {
            idle_past_release();
            eventually("parked again", || server.server.parked_connections() == 3);
        }
    }
    assert_eq!(server.access_lines(9).len(), 9);
}

#[test]
fn many_parked_connections_wake_in_one_burst() {
    // more than one epoll batch (64) at once
    const CONNS: usize = 150;
    let server = serve(hello());
    let mut clients: Vec<Client> = (0..CONNS).map(|_| server.client()).collect();
    for client in &mut clients {
        assert_eq!(client.get("/").body_text(), "path=/");
    }
    idle_past_release();
    eventually("all parked", || server.server.parked_connections() == CONNS);
    // every client sends before any reads: all wake together
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(format!("GET /w{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let resp = client.read(false).expect("response");
        assert_eq!(resp.body_text(), format!("path=/w{i}"));
    }
    assert_eq!(server.server.parked_connections(), 0);
}

#[test]
fn a_parked_connection_closed_by_its_client_leaves_the_lot() {
    let server = serve(hello());
    let mut client = server.client();
    assert_eq!(client.get("/").body_text(), "path=/");
    idle_past_release();
    eventually("parked", || server.server.parked_connections() == 1);
    client.shutdown_write();
    client.assert_closed();
    eventually("left the lot", || {
        server.server.parked_connections() == 0 && server.server.pool().is_empty()
    });
    let mut other = server.client();
    assert_eq!(other.get("/after").body_text(), "path=/after");
}

#[test]
fn the_keepalive_timeout_closes_a_parked_connection() {
    const KEEPALIVE: Duration = Duration::from_millis(2500);
    let server = serve_with(|c| c.keepalive_timeout(KEEPALIVE), hello());
    let mut client = server.client();
    assert_eq!(client.get("/").body_text(), "path=/");
    let begin = Instant::now();
    eventually("parked", || server.server.parked_connections() == 1);
    client.assert_closed();
    let took = begin.elapsed();
    assert!(
        took >= KEEPALIVE - Duration::from_millis(100) && took < KEEPALIVE + IDLE_RELEASE / 2,
        "closed after {took:?} (keep-alive timeout {KEEPALIVE:?})"
    );
    assert_eq!(server.server.parked_connections(), 0);
}

#[test]
fn a_request_begun_just_before_the_deadline_is_served_whole() {
    // The request's first bytes wake the connection near the end of the keep-alive timeout;
    // the rest arrives after it: the head still gets IDLE_RELEASE to arrive.
    const KEEPALIVE: Duration = Duration::from_millis(2000);
    let server = serve_with(|c| c.keepalive_timeout(KEEPALIVE), hello());
    let mut client = server.client();
    assert_eq!(client.get("/").body_text(), "path=/");
    let begin = Instant::now();
    eventually("parked", || server.server.parked_connections() == 1);
    std::thread::sleep(KEEPALIVE.saturating_sub(begin.elapsed() + Duration::from_millis(300)));
    client.send(b"GET /late HTTP/1.1\r\n");
    std::thread::sleep(Duration::from_millis(500));
    client.send(b"Host: x\r\n\r\n");
    assert_eq!(
        client.read(false).expect("response").body_text(),
        "path=/late"
    );
}

#[test]
fn stop_closes_parked_connections_and_a_restart_parks_again() {
    let server = serve(hello());
    let mut clients: Vec<Client> = (0..4).map(|_| server.client()).collect();
    for client in &mut clients {
        assert_eq!(client.get("/").body_text(), "path=/");
    }
    idle_past_release();
    eventually("parked", || server.server.parked_connections() == 4);
    let begin = Instant::now();
    server.server.stop(Duration::from_secs(5));
    assert!(
        begin.elapsed() < Duration::from_secs(1),
        "stop waited {:?}",
        begin.elapsed()
    );
    // closed by the time stop() returns
    assert_eq!(server.server.parked_connections(), 0);
    for client in &mut clients {
        client.assert_closed();
    }
    // started again on its address: parks again
    server.server.start().expect("restart");
    let addr = server.server.local_addr().expect("bound");
    let mut client = Client::new(support::connect_to(addr));
    assert_eq!(client.get("/again").body_text(), "path=/again");
    idle_past_release();
    eventually("parked after the restart", || {
        server.server.parked_connections() == 1
    });
    assert_eq!(client.get("/more").body_text(), "path=/more");
}

#[test]
fn a_bounded_pool_keeps_idle_connections_in_their_greenlets() {
    support::init();
    let (config, _access, _records) = support::test_config();
    let server = WsgiServer::builder("127.0.0.1:0", hello())
        .config(config)
        .spawn(Pool::new(2))
        .build()
        .expect("build");
    server.start().expect("start");
    let addr = server.local_addr().expect("bound");
    let mut a = Client::new(support::connect_to(addr));
    let mut b = Client::new(support::connect_to(addr));
    assert_eq!(a.get("/a").body_text(), "path=/a");
    assert_eq!(b.get("/b").body_text(), "path=/b");
    idle_past_release();
    assert_eq!(server.parked_connections(), 0);
    assert_eq!(server.pool().len(), 2);
    // the pool is still full: a third connection waits in the backlog until one closes
    let mut c = support::connect_to(addr);
    c.write_all(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    drop(a);
    let mut c = Client::new(c);
    assert_eq!(c.read(false).expect("response").body_text(), "path=/c");
    assert_eq!(b.get("/b2").body_text(), "path=/b2");
}

#[test]
fn an_idle_unix_socket_connection_is_parked_and_served_again() {
    use std::io::BufRead;
    support::init();
    let sock = support::UnixPath::new("pywsgi-park");
    let listener = std::os::unix::net::UnixListener::bind(&sock.path).unwrap();
    let (config, _access, _records) = support::test_config();
    let server = WsgiServer::builder(listener, hello())
        .config(config)
        .build()
        .expect("build");
    server.start().expect("start");
    let mut client = support::UnixClient::connect(&sock.path);
    assert_eq!(client.get("/u1"), "path=/u1");
    idle_past_release();
    eventually("parked", || server.parked_connections() == 1);
    assert_eq!(client.get("/u2"), "path=/u2");
    assert_eq!(server.parked_connections(), 0);
    server.stop(Duration::from_secs(5));
    let mut rest = Vec::new();
    let _ = client.reader.fill_buf().map(|b| rest.extend_from_slice(b));
    assert!(rest.is_empty(), "after stop: {rest:?}");
}

#[test]
fn stop_lets_a_resumed_request_in_flight_finish_with_connection_close() {
    let server = serve(from_fn(|env, start_response| {
        if env.path_info() == "/slow" {
            may::coroutine::sleep(Duration::from_millis(400));
        }
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Ok(format!("path={}", env.path_info()).into())
    }));
    let mut client = server.client();
    assert_eq!(client.get("/").body_text(), "path=/");
    idle_past_release();
    eventually("parked", || server.server.parked_connections() == 1);
    client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    // the resumed handler is a pool member again while it serves
    eventually("serving", || server.server.pool().len() == 1);
    server.server.stop(Duration::from_secs(5));
    let resp = client.read(false).expect("the response in flight");
    assert_eq!(resp.body_text(), "path=/slow");
    assert_eq!(resp.header("Connection"), Some("close"));
    client.assert_closed();
}

#[test]
fn clients_idling_and_sending_at_once_are_all_served_in_order() {
    // 24 clients, half of them pause past IDLE_RELEASE between their requests (parked and
    // resumed while the others keep the server busy), each checks every answer
    let server = std::sync::Arc::new(serve(hello()));
    let threads: Vec<_> = (0..24)
        .map(|n| {
            let server = server.clone();
            std::thread::spawn(move || {
                let mut client = server.client();
                for round in 0..3 {
                    for k in 0..5 {
                        let path = format!("/c{n}r{round}k{k}");
                        assert_eq!(client.get(&path).body_text(), format!("path={path}"));
                    }
                    if n % 2 == 0 {
                        idle_past_release();
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a client failed");
    }
    assert_eq!(server.access_lines(24 * 15).len(), 24 * 15);
}
