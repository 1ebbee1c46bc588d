//! Shared helpers for the integration tests: real sockets on 127.0.0.1, every wait bounded.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// The bound IP address of a started server.
pub fn inet(server: &may_gevent::BaseServer) -> SocketAddr {
    server
        .address()
        .and_then(|addr| addr.as_inet())
        .expect("server has an IP address")
}

/// Connect with read/write timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Read until EOF (or fail the test after WAIT).
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Read exactly `n` bytes.
pub fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    stream.read_exact(&mut out).expect("read_exact");
    out
}

/// Assert that a connect to `addr` is refused at once.
pub fn assert_connection_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, WAIT) {
        Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}"),
        Ok(_) => panic!("connection to {addr} was accepted, expected refused"),
    }
}

/// Assert that nothing is received on `stream` within `quiet` (the connection is queued in
/// the backlog or stalled, not served).
pub fn assert_no_response(stream: &mut TcpStream, quiet: Duration) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected no response, got {other:?}"),
    }
    stream.set_read_timeout(Some(WAIT)).unwrap();
}

/// Send `request` and read the whole reply until the server closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    read_to_end(&mut stream)
}

/// Poll `cond` (with a short park) until it holds or WAIT passes.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
