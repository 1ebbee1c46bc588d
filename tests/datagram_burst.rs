//! DatagramServer under a burst from many clients: every datagram received and answered, under
//! every spawn strategy; and what the kernel drops when the receiver is saturated is counted
//! and logged, never silent.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{mpsc, Arc, Mutex};

use may_gevent::{DatagramServer, DatagramSocket, Pool, Spawn, RECV_BUFFER_SIZE};
use support::{inet, WAIT};

/// gevent's examples/udp_server.py handler.
fn received(data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket) -> std::io::Result<()> {
    sock.sendto(format!("Received {} bytes", data.len()).as_bytes(), addr)
        .map(|_| ())
}

fn burst(spawn: Spawn) {
    let server = DatagramServer::builder("127.0.0.1:0", received)
        .spawn(spawn)
        .build()
        .unwrap();
    server.start().unwrap();
    support::udp::assert_burst_answered(inet(&server), || server.dropped());
    assert_eq!(server.dropped(), 0);
    server.stop(None);
}

#[test]
fn a_burst_from_ten_clients_is_answered_whole_default_spawn() {
    burst(Spawn::Default);
}

#[test]
fn a_burst_from_ten_clients_is_answered_whole_pool_spawn() {
    burst(Spawn::Pool(Pool::new(4)));
}

#[test]
fn a_burst_from_ten_clients_is_answered_whole_pool_of_one() {
    burst(Spawn::Pool(Pool::new(1)));
}

#[test]
fn a_burst_from_ten_clients_is_answered_whole_inline_spawn() {
    burst(Spawn::Inline);
}

#[test]
fn the_server_asks_for_a_larger_receive_buffer_than_the_kernel_default() {
    assert_eq!(RECV_BUFFER_SIZE, 1 << 20);
    let server = DatagramServer::builder("127.0.0.1:0", received)
        .build()
        .unwrap();
    server.init_socket().unwrap();
    let default = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
        .unwrap()
        .recv_buffer_size()
        .unwrap();
    let got = server.recv_buffer_size().unwrap();
    assert!(
        got > default,
        "asked 1 MiB, got {got} (kernel default {default})"
    );

    // A socket passed in keeps its own size unless the builder sets one.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = DatagramServer::builder(sock, received).build().unwrap();
    assert_eq!(server.recv_buffer_size(), Some(default));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = DatagramServer::builder(sock, received)
        .recv_buffer_size(64 * 1024)
        .build()
        .unwrap();
    // Linux doubles what it is asked for.
    assert_eq!(server.recv_buffer_size(), Some(128 * 1024));
}

fn wait_for_record(rx: &mpsc::Receiver<(slog::Level, String)>, needle: &str) -> slog::Level {
    loop {
        let (level, msg) = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no record containing {needle:?}"));
        if msg.contains(needle) {
            return level;
        }
    }
}

#[test]
fn datagrams_dropped_by_a_saturated_receiver_are_counted_and_logged() {
    let (logger, records) = support::recording_logger();
    let (started_tx, started) = mpsc::channel();
    let started_tx = Mutex::new(started_tx);
    let release = Arc::new(may::sync::SyncFlag::new());
    let gate = release.clone();
    // One slot, and a tiny receive buffer: while the first handler is held, the server reads
    // nothing and the kernel can keep only a few datagrams.
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |data: Vec<u8>, addr: SocketAddr, sock: &DatagramSocket| {
            let _ = started_tx.lock().unwrap().send(());
            gate.wait();
            received(data, addr, sock)
        },
    )
    .spawn(Pool::new(1))
    .recv_buffer_size(4096)
    .logger(logger)
    .build()
    .unwrap();
    server.start().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(inet(&server)).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock.send(&[b'x'; 1000]).unwrap();
    started.recv_timeout(WAIT).unwrap();
    const BURST: usize = 50;
    for _ in 0..BURST {
        sock.send(&[b'y'; 1000]).unwrap();
    }
    release.fire();
    // The server drains what the kernel kept, finds the socket empty, reads the count.
    let level = wait_for_record(&records, "receive buffer full");
    assert_eq!(level, slog::Level::Warning);
    // All drops happened before the release, so the count is final.
    let dropped = server.dropped() as usize;
    assert!(
        dropped > 0 && dropped <= BURST,
        "dropped {dropped} of {BURST}"
    );
    // Every datagram is either answered or counted as dropped.
    let mut buf = [0u8; 64];
    for i in 0..BURST + 1 - dropped {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|err| panic!("reply {i}: {err} (dropped {dropped})"));
        assert_eq!(&buf[..n], b"Received 1000 bytes");
    }
    server.stop(None);
}

#[test]
fn a_datagram_longer_than_max_datagram_size_is_truncated_visibly() {
    let (logger, records) = support::recording_logger();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = DatagramServer::builder(
        "127.0.0.1:0",
        move |data: Vec<u8>, _addr: SocketAddr, _sock: &DatagramSocket| {
            tx.lock().unwrap().send(data).unwrap();
        },
    )
    .max_datagram_size(100)
    .logger(logger)
    .build()
    .unwrap();
    server.start().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(&[7u8; 100], inet(&server)).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), vec![7u8; 100]);
    assert_eq!(server.truncated(), 0);
    sock.send_to(&[8u8; 150], inet(&server)).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), vec![8u8; 100]);
    assert_eq!(server.truncated(), 1);
    assert_eq!(wait_for_record(&records, "truncated"), slog::Level::Warning);
    server.stop(None);
}
