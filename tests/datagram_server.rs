//! DatagramServer over real UDP sockets on 127.0.0.1.

mod support;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use may::sync::SyncFlag;
use may_gevent::{
    Address, DatagramServer, DatagramSocket, HandlerError, Pool, Spawn, DATAGRAM_SIZE, KILL_TIMEOUT,
};
use support::{inet, WAIT};

/// How long a test watches for something that must not happen.
const QUIET: Duration = Duration::from_millis(300);

/// Sends on its channel when dropped: shows that a handler's stack was unwound or returned.
struct DropGuard(mpsc::Sender<()>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

fn client() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock
}

fn echo(data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket) -> std::io::Result<()> {
    sock.sendto(&data, addr).map(|_| ())
}

fn run_echo(spawn: Spawn) {
    let server = DatagramServer::builder("127.0.0.1:0", echo)
        .spawn(spawn)
        .build()
        .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    let sock = client();
    for msg in [&b"hello"[..], b"", b"x"] {
        sock.send_to(msg, addr).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = sock.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (msg, addr));
    }
    server.stop(None);
}

#[test]
fn udp_echo_default_spawn() {
    run_echo(Spawn::Default);
}

#[test]
fn udp_echo_pool_spawn() {
    run_echo(Spawn::Pool(Pool::new(4)));
}

#[test]
fn udp_echo_inline_spawn() {
    run_echo(Spawn::Inline);
}

#[test]
fn a_20000_byte_datagram_arrives_whole() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
            tx.lock().unwrap().send(data.clone()).unwrap();
            sock.sendto(format!("Received {} bytes", data.len()).as_bytes(), addr)
                .map(|_| ())
        },
    )
    .build()
    .unwrap();
    server.start().unwrap();
    let sock = client();
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    sock.send_to(&payload, inet(&server)).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), payload);
    let mut buf = [0u8; 64];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Received 20000 bytes");
}

#[test]
fn many_handlers_send_concurrently() {
    // Each handler waits until all N are running at once, then replies: the replies come only
    // if N handlers overlapped, and every one of their concurrent sends arrives.
    const N: usize = 50;
    let running = Arc::new(AtomicUsize::new(0));
    let all_in = Arc::new(SyncFlag::new());
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
            if running.fetch_add(1, Ordering::SeqCst) + 1 == N {
                all_in.fire();
            }
            let overlapped = all_in.wait_timeout(WAIT);
            sock.sendto(&[data[0], u8::from(overlapped)], addr)
                .map(|_| ())
        },
    )
    .build()
    .unwrap();
    server.start().unwrap();
    let sock = client();
    for i in 0..N as u8 {
        sock.send_to(&[i], inet(&server)).unwrap();
    }
    let mut seen = [false; N];
    for _ in 0..N {
        let mut buf = [0u8; 4];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            buf[1], 1,
            "handler {} ran without {N} others at once",
            buf[0]
        );
        assert!(!seen[buf[0] as usize], "reply {} twice", buf[0]);
        seen[buf[0] as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
}

#[test]
fn bound_udp_socket_and_stream_socket_mismatch() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let server = DatagramServer::builder(sock, echo).build().unwrap();
    server.start().unwrap();
    assert_eq!(inet(&server), addr);
    let c = client();
    c.send_to(b"pre-bound", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pre-bound");

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert!(DatagramServer::builder(tcp, echo).build().is_err());
}

#[test]
fn handle_request_receives_one_datagram() {
    let server = DatagramServer::builder("127.0.0.1:0", echo)
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    server.init_socket().unwrap();
    assert!(!server.handle_request().unwrap());
    let sock = client();
    sock.send_to(b"once", inet(&server)).unwrap();
    assert!(server.handle_request().unwrap());
    let mut buf = [0u8; 8];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"once");
}

#[test]
fn a_65507_byte_datagram_is_received_whole_and_echoed() {
    // 65 507 bytes is the largest UDP payload over IPv4; the default buffer takes it whole.
    assert_eq!(DATAGRAM_SIZE, 65_535);
    let (tx, rx) = mpsc::channel();
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
            tx.send(data.len()).unwrap();
            sock.sendto(&data, addr).map(|_| ())
        },
    )
    .build()
    .unwrap();
    server.start().unwrap();
    let sock = client();
    let payload: Vec<u8> = (0..65_507u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(sock.send_to(&payload, inet(&server)).unwrap(), 65_507);
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), 65_507);
    let mut buf = vec![0u8; 70_000];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(from, inet(&server));
    assert_eq!(n, 65_507);
    assert!(buf[..n] == payload[..], "the echoed datagram differs");
}

#[test]
fn stop_cancels_a_handler_still_running_after_the_timeout() {
    const STOP: Duration = Duration::from_millis(200);
    let (entered_tx, entered) = mpsc::channel();
    let (dropped_tx, dropped) = mpsc::channel();
    let finished = Arc::new(AtomicBool::new(false));
    let never = Arc::new(SyncFlag::new());
    let done = finished.clone();
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |_data: Vec<u8>, _addr: SocketAddr, _sock: &DatagramSocket| {
            let _guard = DropGuard(dropped_tx.clone());
            entered_tx.send(()).unwrap();
            // Blocks far longer than the stop timeout; only a cancel ends it early.
            never.wait_timeout(WAIT);
            done.store(true, Ordering::SeqCst);
        },
    )
    .build()
    .unwrap();
    server.start().unwrap();
    client().send_to(b"work", inet(&server)).unwrap();
    entered.recv_timeout(WAIT).unwrap();

    let begin = Instant::now();
    server.stop(STOP);
    let took = begin.elapsed();
    assert!(
        took >= STOP - Duration::from_millis(20),
        "stop returned after {took:?}"
    );
    assert!(
        took < STOP + KILL_TIMEOUT + Duration::from_secs(2),
        "stop returned after {took:?}"
    );
    assert!(
        dropped.try_recv().is_ok(),
        "the handler was not unwound when stop returned"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "the handler ran to its end"
    );
    assert!(server.pool().is_empty());
    assert!(server.closed());
}

#[test]
fn a_full_pool_pauses_receiving_until_its_handler_finishes() {
    let (events_tx, events) = mpsc::channel::<String>();
    let release = Arc::new(SyncFlag::new());
    let rel = release.clone();
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| -> io::Result<()> {
            let name = String::from_utf8(data).unwrap();
            events_tx.send(format!("start {name}")).unwrap();
            if name == "first" && !rel.wait_timeout(WAIT) {
                return Err(io::Error::other("never released"));
            }
            events_tx.send(format!("end {name}")).unwrap();
            sock.sendto(name.as_bytes(), addr).map(|_| ())
        },
    )
    .spawn(Pool::new(1))
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    let sock = client();
    sock.send_to(b"first", addr).unwrap();
    assert_eq!(events.recv_timeout(WAIT).unwrap(), "start first");
    sock.send_to(b"second", addr).unwrap();
    sock.send_to(b"third", addr).unwrap();
    // The pool is full: the next datagrams wait in the socket's receive buffer.
    assert_eq!(
        events.recv_timeout(QUIET),
        Err(mpsc::RecvTimeoutError::Timeout),
        "a datagram was handled while the pool was full"
    );
    assert!(server.pool().full());

    release.fire();
    let order: Vec<String> = (0..5).map(|_| events.recv_timeout(WAIT).unwrap()).collect();
    assert_eq!(
        order,
        [
            "end first",
            "start second",
            "end second",
            "start third",
            "end third"
        ]
    );
    // Nothing was lost: every datagram was answered, in order.
    for expected in [&b"first"[..], b"second", b"third"] {
        let mut buf = [0u8; 16];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
    }
}

#[test]
fn verify_request_false_drops_the_datagram_unhandled() {
    let rejected = client();
    let accepted = client();
    let rejected_addr = rejected.local_addr().unwrap();
    let (verify_tx, verified) = mpsc::channel::<SocketAddr>();
    let (handled_tx, handled) = mpsc::channel::<Vec<u8>>();
    // Inline: each datagram is verified and handled before the next one is received.
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
            handled_tx.send(data.clone()).unwrap();
            sock.sendto(&data, addr).map(|_| ())
        },
    )
    .spawn(Spawn::Inline)
    .verify_request(move |addr: &Address| {
        let addr = addr.as_inet().unwrap();
        verify_tx.send(addr).unwrap();
        addr != rejected_addr
    })
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);

    rejected.send_to(b"no", addr).unwrap();
    assert_eq!(verified.recv_timeout(WAIT).unwrap(), rejected_addr);
    accepted.send_to(b"yes", addr).unwrap();
    let mut buf = [0u8; 8];
    let (n, _) = accepted.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"yes");
    assert_eq!(verified.try_recv().unwrap(), accepted.local_addr().unwrap());
    assert!(
        verified.try_recv().is_err(),
        "verify_request called too often"
    );
    // Only the accepted datagram reached the handler, and the rejected client got nothing.
    assert_eq!(handled.try_recv().unwrap(), b"yes");
    assert!(
        handled.try_recv().is_err(),
        "the rejected datagram was handled"
    );
    rejected.set_nonblocking(true).unwrap();
    let err = rejected.recv_from(&mut buf).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
}

#[test]
fn handle_error_gets_handler_errors_and_panics_and_the_server_keeps_serving() {
    let (errors_tx, errors) = mpsc::channel::<(String, bool, SocketAddr)>();
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| -> io::Result<()> {
            match &data[..] {
                b"err" => Err(io::Error::other("handler said no")),
                b"panic" => panic!("handler blew up"),
                _ => sock.sendto(&data, addr).map(|_| ()),
            }
        },
    )
    .handle_error(move |err: &HandlerError, addr: &Address| {
        let panicked = matches!(err, HandlerError::Panic(_));
        errors_tx
            .send((err.to_string(), panicked, addr.as_inet().unwrap()))
            .unwrap();
    })
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    let sock = client();
    let me = sock.local_addr().unwrap();

    sock.send_to(b"err", addr).unwrap();
    assert_eq!(
        errors.recv_timeout(WAIT).unwrap(),
        ("handler said no".to_owned(), false, me)
    );
    sock.send_to(b"panic", addr).unwrap();
    assert_eq!(
        errors.recv_timeout(WAIT).unwrap(),
        ("handler panicked: handler blew up".to_owned(), true, me)
    );
    sock.send_to(b"ok", addr).unwrap();
    let mut buf = [0u8; 8];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ok");
    assert!(
        errors.try_recv().is_err(),
        "handle_error called for a good datagram"
    );
}
