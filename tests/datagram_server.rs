//! DatagramServer over real UDP sockets on 127.0.0.1.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use may_gevent::{DatagramServer, DatagramSocket, Pool, Spawn};
use support::{inet, WAIT};

fn client() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock
}

fn echo(data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket) -> std::io::Result<()> {
    sock.sendto(&data, addr).map(|_| ())
}

fn run_echo(spawn: Spawn) {
    let server = DatagramServer::new("127.0.0.1:0", echo)
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
    let server = DatagramServer::new(
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
    let server = DatagramServer::new(
        "127.0.0.1:0",
        |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
            may::coroutine::sleep(Duration::from_millis(5));
            sock.sendto(&data, addr).map(|_| ())
        },
    )
    .build()
    .unwrap();
    server.start().unwrap();
    let sock = client();
    for i in 0..100u8 {
        sock.send_to(&[i], inet(&server)).unwrap();
    }
    let mut seen = [false; 100];
    for _ in 0..100 {
        let mut buf = [0u8; 4];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(n, 1);
        seen[buf[0] as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
}

#[test]
fn bound_udp_socket_and_stream_socket_mismatch() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let server = DatagramServer::new(sock, echo).build().unwrap();
    server.start().unwrap();
    assert_eq!(inet(&server), addr);
    let c = client();
    c.send_to(b"pre-bound", addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pre-bound");

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    assert!(DatagramServer::new(tcp, echo).build().is_err());
}

#[test]
fn handle_request_receives_one_datagram() {
    let server = DatagramServer::new("127.0.0.1:0", echo)
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
