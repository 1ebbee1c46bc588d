//! examples/chat.rs's server in-process (its own `chat_server` and client map) with std
//! clients on 127.0.0.1: broadcast to the others only, leaving, concurrent broadcasters,
//! `stop()`. Every wait is bounded (read timeouts, deadlines).
#![allow(missing_docs)]

#[allow(dead_code, unreachable_pub)] // its main() is unused here; the rest is pub there
#[path = "../examples/chat.rs"]
mod chat;
mod support;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat::{chat_server, Clients};
use may_gevent::StreamServer;
use support::{connect, eventually, inet, join_within, within, WAIT};

fn serve() -> (StreamServer, SocketAddr, Arc<Clients>) {
    let clients = Arc::new(Clients::default());
    let server = chat_server("127.0.0.1:0", clients.clone()).expect("build");
    server.start().expect("start");
    let addr = inet(&server);
    (server, addr, clients)
}

/// A chat client (read and write timeouts: WAIT).
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// How the server names it: its address.
    peer: String,
}

impl Client {
    /// Connects and reads the welcome line: from then on it is in the map.
    fn join(addr: SocketAddr) -> Client {
        let writer = connect(addr);
        let peer = writer.local_addr().unwrap().to_string();
        let reader = BufReader::new(writer.try_clone().unwrap());
        let mut client = Client {
            reader,
            writer,
            peer,
        };
        let welcome = client.line();
        let expected = format!("Welcome to the chat, {}! ", client.peer);
        assert!(welcome.starts_with(&expected), "{welcome:?}");
        client
    }

    fn say(&mut self, text: &str) {
        writeln!(self.writer, "{text}").expect("send a line");
    }

    /// The next line, without its newline; fails on EOF or after WAIT.
    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => panic!("{}: EOF, expected a line", self.peer),
            Ok(_) => line.trim_end_matches('\n').to_owned(),
            Err(err) => panic!("{}: no line ({err})", self.peer),
        }
    }

    /// The lines left until EOF; fails if EOF does not come within WAIT.
    fn lines_until_eof(&mut self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return lines,
                Ok(_) => lines.push(line.trim_end_matches('\n').to_owned()),
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return lines,
                Err(err) => panic!("{}: no EOF ({err}); got {lines:?}", self.peer),
            }
            assert!(
                Instant::now() < deadline,
                "{}: no EOF within {WAIT:?}",
                self.peer
            );
        }
    }
}

#[test]
fn a_line_reaches_the_other_two_and_not_its_sender() {
    let (_server, addr, clients) = serve();
    let [mut a, mut b, mut c] = [(); 3].map(|_| Client::join(addr));
    assert_eq!(clients.len(), 3);

    a.say("hello");
    assert_eq!(b.line(), format!("{}: hello", a.peer));
    assert_eq!(c.line(), format!("{}: hello", a.peer));
    b.say("ping");
    assert_eq!(c.line(), format!("{}: ping", b.peer));
    // a's handler finishes broadcasting "hello" before it reads "x", which b receives before
    // it sends "pong": had "hello" been sent back to a, it would come before "pong" here.
    a.say("x");
    assert_eq!(b.line(), format!("{}: x", a.peer));
    assert_eq!(c.line(), format!("{}: x", a.peer));
    b.say("pong");
    assert_eq!(a.line(), format!("{}: ping", b.peer));
    assert_eq!(a.line(), format!("{}: pong", b.peer));
}

#[test]
fn a_client_leaving_is_announced_and_removed_and_the_others_go_on() {
    let (server, addr, clients) = serve();
    let [mut a, mut b, c] = [(); 3].map(|_| Client::join(addr));
    let gone = c.peer.clone();
    drop(c);
    assert_eq!(a.line(), format!("{gone} left"));
    assert_eq!(b.line(), format!("{gone} left"));
    // "left" is sent after the removal: later broadcasts no longer include it
    assert!(!clients.contains(&gone));
    assert_eq!(clients.len(), 2);
    eventually("its handler ended", || server.pool().len() == 2);

    a.say("still here");
    assert_eq!(b.line(), format!("{}: still here", a.peer));
    b.say("me too");
    assert_eq!(a.line(), format!("{}: me too", b.peer));
    assert_eq!(clients.len(), 2);
}

#[test]
fn lines_of_concurrent_senders_arrive_whole_and_in_order() {
    const LINES: usize = 10;
    // larger than a write's slice of the socket buffer, so writes come in parts; small enough
    // that a loaded machine stays far below the example's 10 s write timeout
    const LEN: usize = 64 * 1024;
    let (_server, addr, _clients) = serve();
    let peers: Vec<Client> = (0..3).map(|_| Client::join(addr)).collect();
    let names: Vec<String> = peers.iter().map(|c| c.peer.clone()).collect();
    let threads: Vec<_> = peers
        .into_iter()
        .enumerate()
        .map(|(me, mut client)| {
            let names = names.clone();
            std::thread::spawn(move || {
                let mut writer = client.writer.try_clone().unwrap();
                let sender = std::thread::spawn(move || {
                    for n in 0..LINES {
                        let body = char::from(b'a' + (n % 26) as u8).to_string().repeat(LEN);
                        writeln!(writer, "{n} {body}").expect("send");
                    }
                });
                // the others' lines, each whole, each sender's in order
                let mut next = [0usize; 3];
                for _ in 0..2 * LINES {
                    let line = client.line();
                    let (from, text) = line.split_once(": ").expect("PEER: text");
                    let who = names.iter().position(|n| n == from).expect("a known peer");
                    assert_ne!(who, me, "its own line came back");
                    let n = next[who];
                    let body = char::from(b'a' + (n % 26) as u8).to_string().repeat(LEN);
                    assert_eq!(text, format!("{n} {body}"), "line {n} of {from}");
                    next[who] += 1;
                }
                join_within("sender", WAIT, sender);
                // kept open until every reader is done: a client that left early would
                // send the others a "PEER left" line among the ones they are counting
                client
            })
        })
        .collect();
    let done: Vec<Client> = threads
        .into_iter()
        .map(|thread| join_within("client", 3 * WAIT, thread))
        .collect();
    drop(done);
}

#[test]
fn stop_with_clients_connected_returns_in_time_and_every_client_sees_eof() {
    let (server, addr, clients) = serve();
    let mut all: Vec<Client> = (0..3).map(|_| Client::join(addr)).collect();
    assert_eq!(clients.len(), 3);
    let control = server.handle();
    let begin = Instant::now();
    within("stop", WAIT, move || {
        control.stop(Duration::from_millis(200))
    });
    let took = begin.elapsed();
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    for client in &mut all {
        // at most the others' "left" lines, then EOF
        for line in client.lines_until_eof() {
            assert!(
                line.ends_with(" left"),
                "{}: unexpected {line:?}",
                client.peer
            );
        }
    }
    assert!(
        clients.is_empty(),
        "{} clients left in the map",
        clients.len()
    );
    assert!(
        server.pool().is_empty(),
        "{} handlers left",
        server.pool().len()
    );
}
