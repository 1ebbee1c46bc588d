//! Idle keep-alive connections give their buffers back after `IDLE_RELEASE` and wait on
//! without one: the next request, a pipelined batch, the keep-alive timeout, a client close
//! and `stop()` all behave as before the release.
//!
//! The client sleeps to *be idle* (the behaviour under test needs that much idle time), never
//! to wait for the server: every server-side effect is read from the socket.

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{from_fn, handle_connection, Connection, IDLE_RELEASE};
use support::{read_response, serve, serve_with};

/// Idle long enough for the release, with room for a loaded machine.
fn idle_past_release() {
    std::thread::sleep(IDLE_RELEASE + Duration::from_millis(400));
}

fn hello() -> impl may_gevent::pywsgi::Application {
    from_fn(|env, start_response| {
        let body = format!("path={}", env.path_info());
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Ok(body.into())
    })
}

#[test]
fn a_request_after_the_release_is_served_on_the_same_connection() {
    let server = serve(hello());
    let mut client = server.client();
    assert_eq!(client.get("/one").body_text(), "path=/one");
    idle_past_release();
    assert_eq!(client.get("/two").body_text(), "path=/two");
    // and again right away (buffers allocated again), then after a second release
    assert_eq!(client.get("/three").body_text(), "path=/three");
    idle_past_release();
    assert_eq!(client.get("/four").body_text(), "path=/four");
    assert_eq!(server.access_lines(4).len(), 4);
}

#[test]
fn a_pipelined_batch_after_the_release_is_served_in_order() {
    let server = serve(hello());
    let mut client = server.client();
    assert_eq!(client.get("/first").body_text(), "path=/first");
    idle_past_release();
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    // a large head split over two writes, the first ends mid-line
    batch.extend_from_slice(b"GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: ");
    client.send(&batch);
    client.send(&[b"y".repeat(3000).as_slice(), b"\r\n\r\n"].concat());
    for i in 0..20 {
        let resp = client.read(false).expect("response");
        assert_eq!(resp.body_text(), format!("path=/p{i}"));
    }
    assert_eq!(
        client.read(false).expect("response").body_text(),
        "path=/big"
    );
}

#[test]
fn the_keepalive_timeout_still_counts_from_the_last_response() {
    const KEEPALIVE: Duration = Duration::from_millis(1800);
    let server = serve_with(|c| c.keepalive_timeout(KEEPALIVE), hello());
    let mut client = server.client();
    assert_eq!(client.get("/").body_text(), "path=/");
    let begin = Instant::now();
    client.assert_closed();
    let took = begin.elapsed();
    // closed at the keep-alive timeout, not at IDLE_RELEASE and not a release later
    assert!(
        took >= KEEPALIVE - Duration::from_millis(100) && took < KEEPALIVE + IDLE_RELEASE / 2,
        "idle connection closed after {took:?} (keep-alive timeout {KEEPALIVE:?})"
    );
}

#[test]
fn a_client_close_while_released_ends_the_connection() {
    let server = serve(hello());
    let mut client = server.client();
    assert_eq!(client.get("/").body_text(), "path=/");
    idle_past_release();
    client.shutdown_write();
    client.assert_closed();
    // the server goes on serving
    let mut other = server.client();
    assert_eq!(other.get("/after").body_text(), "path=/after");
}

#[test]
fn stop_closes_a_released_idle_connection_at_once() {
    let server = serve(hello());
    let mut clients: Vec<_> = (0..3).map(|_| server.client()).collect();
    for client in &mut clients {
        assert_eq!(client.get("/").body_text(), "path=/");
    }
    idle_past_release();
    let begin = Instant::now();
    server.server.stop(support::CLIENT_TIMEOUT * 3);
    assert!(
        begin.elapsed() < support::CLIENT_TIMEOUT,
        "stop waited {:?} for released idle connections",
        begin.elapsed()
    );
    for client in &mut clients {
        client.assert_closed();
    }
}

/// A connection that counts `wait_input` calls, and can refuse them (as a TLS connection does).
struct Counted {
    stream: may::net::TcpStream,
    waits: Arc<AtomicUsize>,
    can_wait: bool,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Connection for Counted {
    fn set_read_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(dur)
    }
    fn set_write_timeout(&mut self, dur: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(dur)
    }
    fn wait_input(&mut self) -> io::Result<Option<usize>> {
        self.waits.fetch_add(1, Ordering::SeqCst);
        if self.can_wait {
            Connection::wait_input(&mut self.stream)
        } else {
            Ok(None)
        }
    }
}

/// Serves one connection with `handle_connection` over `Counted`; returns the client side and
/// the wait counter.
fn serve_counted(can_wait: bool) -> (std::net::TcpStream, Arc<AtomicUsize>) {
    support::init();
    // may's listener (port 0: its SO_REUSEPORT cannot share a port with anyone)
    let listener = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let waits = Arc::new(AtomicUsize::new(0));
    let counter = waits.clone();
    let (config, _access, _records) = support::test_config();
    may::go!(move || {
        if let Ok((stream, peer)) = listener.accept() {
            let conn = Counted {
                stream,
                waits: counter,
                can_wait,
            };
            handle_connection(conn, Some(peer), &config, &hello());
        }
    });
    let client = std::net::TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(support::CLIENT_TIMEOUT))
        .unwrap();
    (client, waits)
}

fn get(client: &mut std::net::TcpStream, path: &str) -> String {
    client
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut reader = io::BufReader::new(client.try_clone().unwrap());
    read_response(&mut reader, false)
        .expect("response")
        .body_text()
}

/// Waits (bounded) until the engine made `n` buffer-less waits; returns how long that took.
fn wait_count(waits: &AtomicUsize, n: usize) -> Duration {
    let begin = Instant::now();
    while waits.load(Ordering::SeqCst) < n {
        assert!(
            begin.elapsed() < support::CLIENT_TIMEOUT,
            "no buffer-less wait {n} after {:?}",
            begin.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    begin.elapsed()
}

#[test]
fn the_engine_waits_without_a_buffer_only_after_idle_release() {
    let (mut client, waits) = serve_counted(true);
    for i in 0..5 {
        assert_eq!(get(&mut client, &format!("/{i}")), format!("path=/{i}"));
    }
    // a busy connection (each request sent as soon as the last response arrived): no release
    assert_eq!(waits.load(Ordering::SeqCst), 0);
    let took = wait_count(&waits, 1);
    assert!(
        took >= IDLE_RELEASE - Duration::from_millis(50),
        "released after {took:?}, before IDLE_RELEASE"
    );
    assert_eq!(get(&mut client, "/late"), "path=/late");
    assert_eq!(waits.load(Ordering::SeqCst), 1);
    wait_count(&waits, 2);
    assert_eq!(get(&mut client, "/later"), "path=/later");
}

#[test]
fn a_connection_that_cannot_wait_without_reading_is_served_after_idle() {
    let (mut client, waits) = serve_counted(false);
    assert_eq!(get(&mut client, "/a"), "path=/a");
    wait_count(&waits, 1);
    assert_eq!(get(&mut client, "/b"), "path=/b");
    assert_eq!(get(&mut client, "/c"), "path=/c");
    assert_eq!(waits.load(Ordering::SeqCst), 1);
}
