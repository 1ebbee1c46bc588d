//! Shared helpers for the integration tests: real sockets on 127.0.0.1, every wait bounded.
#![allow(dead_code, unreachable_pub)]

pub mod child;
mod join;
pub mod udp;
pub mod watchdog;

#[allow(unused_imports)] // not every test binary joins
pub use join::{join_coroutine_within, join_within};

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// What can tell the IP address it is bound to: every server type and `ServerHandle`.
pub trait LocalAddr {
    fn local(&self) -> Option<SocketAddr>;
}

macro_rules! local_addr {
    ($($ty:ty),*) => {$(
        impl LocalAddr for $ty {
            fn local(&self) -> Option<SocketAddr> {
                self.local_addr()
            }
        }
    )*};
}
local_addr!(
    may_gevent::StreamServer,
    may_gevent::DatagramServer,
    may_gevent::WsgiServer,
    may_gevent::ServerHandle
);

impl<T: LocalAddr> LocalAddr for std::sync::Arc<T> {
    fn local(&self) -> Option<SocketAddr> {
        (**self).local()
    }
}

/// The bound IP address of a started server.
pub fn inet(server: &impl LocalAddr) -> SocketAddr {
    watchdog::arm();
    server.local().expect("server has an IP address")
}

/// Connect with read/write timeouts set.
pub fn connect(addr: SocketAddr) -> TcpStream {
    watchdog::arm();
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Read until EOF; fails the test if a read waits longer than the stream's read timeout (WAIT
/// if it has none) or the whole read takes longer than WAIT.
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    if stream.read_timeout().expect("read timeout").is_none() {
        stream.set_read_timeout(Some(WAIT)).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => panic!("read to EOF failed after {} bytes: {err}", out.len()),
        }
        assert!(
            Instant::now() < deadline,
            "no EOF within {WAIT:?} ({} bytes read)",
            out.len()
        );
    }
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

/// A TCP connection to `addr` from the loopback address `source` (e.g. 127.0.0.2: a client
/// the server can tell from 127.0.0.1), read and write timeouts set to WAIT.
pub fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    watchdog::arm();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let from: SocketAddr = (source, 0).into();
    socket
        .bind(&from.into())
        .expect("bind the client's source address");
    socket.connect_timeout(&addr.into(), WAIT).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Poll `cond` (with a short park) until it holds or WAIT passes.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    watchdog::arm();
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A free port on 127.0.0.1, held by a bound socket that does not listen: connects to it are
/// refused, and no port-0 bind (of this or another process) is given it while the
/// reservation lives. A server can still bind and listen on it (servers set SO_REUSEADDR, as
/// does the reservation), so "refused before start / after stop" checks cannot be fooled by
/// someone else taking the port in between.
pub struct ReservedPort {
    _socket: socket2::Socket,
    pub addr: SocketAddr,
}

impl ReservedPort {
    pub fn new() -> ReservedPort {
        watchdog::arm();
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&any.into()).expect("bind 127.0.0.1:0");
        let addr = socket
            .local_addr()
            .expect("local address")
            .as_socket()
            .expect("an IP address");
        ReservedPort {
            _socket: socket,
            addr,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Run `f` on its own thread and return its result; fails the test if it has not returned
/// within `within` (the thread is left behind: the test fails instead of hanging). A panic in
/// `f` is re-raised here.
pub fn within<T: Send + 'static>(
    what: &str,
    within: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    watchdog::arm();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(what.to_owned())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result);
        })
        .expect("spawn a thread");
    match rx.recv_timeout(within) {
        Ok(Ok(value)) => {
            let _ = thread.join();
            value
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not return within {within:?}"),
    }
}

/// How long the threads of a [`Rendezvous`] wait for the last one (e.g. 200 TLS handshakes on
/// a loaded machine).
pub const RENDEZVOUS_WAIT: Duration = Duration::from_secs(60);

/// A barrier for `n` threads whose wait gives up after a deadline: a client that never arrives
/// (it failed or panicked) makes the others fail instead of hanging them.
#[derive(Debug)]
pub struct Rendezvous {
    n: usize,
    arrived: Mutex<usize>,
    changed: Condvar,
}

impl Rendezvous {
    pub fn new(n: usize) -> Rendezvous {
        Rendezvous {
            n,
            arrived: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    /// Arrive and wait (at most `within`) until all `n` have arrived.
    pub fn wait(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.changed.notify_all();
        while *arrived < self.n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "only {} of {} arrived within {within:?}",
                    *arrived, self.n
                ));
            }
            arrived = self.changed.wait_timeout(arrived, left).unwrap().0;
        }
        Ok(())
    }
}

/// A slog drain that sends every record's level and message to a channel.
struct Records(Mutex<mpsc::Sender<(slog::Level, String)>>);

impl slog::Drain for Records {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        let _ = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((record.level(), record.msg().to_string()));
        Ok(())
    }
}

/// A logger whose records (level and message) arrive on the returned channel.
pub fn recording_logger() -> (slog::Logger, mpsc::Receiver<(slog::Level, String)>) {
    let (tx, rx) = mpsc::channel();
    let logger = slog::Logger::root(slog::Drain::fuse(Records(Mutex::new(tx))), slog::o!());
    (logger, rx)
}
