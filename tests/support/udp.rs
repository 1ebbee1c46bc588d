//! A burst of datagrams from many clients, each keeping a bounded window in flight, with
//! every reply accounted for (against a server that answers `Received N bytes`).

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::thread;

use super::WAIT;

pub const CLIENTS: usize = 10;
pub const WINDOW: usize = 8;
pub const PER_CLIENT: usize = 100;

/// The sizes one client sends: 100 distinct sizes between 1 and 7 200 bytes, different for
/// every client.
pub fn sizes(client: usize) -> Vec<usize> {
    (0..PER_CLIENT)
        .map(|k| 1 + (k * 72 + client * 7) % 7200)
        .collect()
}

/// One client: keeps up to WINDOW datagrams in flight until PER_CLIENT are answered; returns
/// the sizes that got no reply within WAIT (sent or, after a loss stalled the window, not).
pub fn client(server: SocketAddr, client: usize) -> BTreeSet<usize> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let sizes = sizes(client);
    let mut missing: BTreeSet<usize> = sizes.iter().copied().collect();
    let payload = vec![b'x'; 7200];
    let (mut sent, mut in_flight) = (0, 0);
    while !missing.is_empty() {
        while in_flight < WINDOW && sent < sizes.len() {
            sock.send(&payload[..sizes[sent]]).unwrap();
            sent += 1;
            in_flight += 1;
        }
        let mut buf = [0u8; 64];
        let Ok(n) = sock.recv(&mut buf) else {
            break; // no reply within WAIT: what is left is missing
        };
        let reply = std::str::from_utf8(&buf[..n]).unwrap();
        let size: usize = reply
            .strip_prefix("Received ")
            .and_then(|rest| rest.strip_suffix(" bytes"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected reply {reply:?}"));
        assert!(missing.remove(&size), "reply for {size} twice or unsent");
        in_flight -= 1;
    }
    missing
}

/// Run CLIENTS clients at once against `server`; panics naming what was not answered.
pub fn assert_burst_answered(server: SocketAddr, dropped: impl Fn() -> u64) {
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| thread::spawn(move || client(server, c)))
        .collect();
    let missing: Vec<(usize, BTreeSet<usize>)> = clients
        .into_iter()
        .enumerate()
        .map(|(c, t)| (c, t.join().unwrap()))
        .filter(|(_, missing)| !missing.is_empty())
        .collect();
    let lost: usize = missing.iter().map(|(_, m)| m.len()).sum();
    assert!(
        missing.is_empty(),
        "{lost} of {} datagrams unanswered (kernel drops: {}): {missing:?}",
        CLIENTS * PER_CLIENT,
        dropped()
    );
}
