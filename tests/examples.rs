//! Each example started as a process and driven like a user would (gevent's
//! test__example_*.py). Examples are built by `cargo test`; they bind port 0 here.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use may_gevent::{Address, Stream, StreamServer};
use support::child::{self, Finished, Running};
use support::*;

fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// How long an example may take to start, answer or exit.
const EXAMPLE_WAIT: Duration = Duration::from_secs(30);

/// A running example; killed when dropped (also when the test panics).
struct Example(Running);

impl Example {
    fn start(name: &str, args: &[&str]) -> Example {
        let mut command = Command::new(example(name));
        command.args(args);
        Example(Running::spawn(name, &mut command).unwrap_or_else(|err| {
            panic!("cannot run example {name} ({err}): `cargo test` builds the examples; with --test, run `cargo build --examples` first")
        }))
    }

    /// The first stdout line that contains `marker` (waiting at most WAIT).
    fn line_with(&mut self, marker: &str) -> String {
        match self.0.stdout.wait_for(WAIT, |line| line.contains(marker)) {
            Some(line) => line.trim().to_owned(),
            None => panic!(
                "example {} exited before printing {marker:?}; stderr: {:?}",
                self.0.name,
                self.0.stderr.all()
            ),
        }
    }

    /// The address printed at the end of the line that contains `marker`.
    fn address(&mut self, marker: &str) -> SocketAddr {
        let line = self.line_with(marker);
        let last = line.split_whitespace().last().unwrap();
        last.parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"))
    }
}

/// Run an example to completion (killed, and the test failed, after EXAMPLE_WAIT).
fn run_example(name: &str, command: &mut Command) -> Finished {
    child::run(name, command, EXAMPLE_WAIT)
}

fn read_line(reader: &mut BufReader<std::net::TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

#[test]
fn echoserver_welcomes_echoes_two_clients_and_quits() {
    let mut ex = Example::start("echoserver", &["127.0.0.1:0"]);
    let addr = ex.address("Starting echo server on");
    let mut clients: Vec<_> = (0..2).map(|_| BufReader::new(connect(addr))).collect();
    for c in &mut clients {
        assert_eq!(
            read_line(c),
            "Welcome to the echo server! Type quit to exit.\r\n"
        );
    }
    for (i, c) in clients.iter_mut().enumerate() {
        writeln!(c.get_mut(), "hello {i}").unwrap();
        assert_eq!(read_line(c), format!("hello {i}\n"));
    }
    let mut first = clients.remove(0);
    first.get_mut().write_all(b"quit\r\n").unwrap();
    assert_eq!(read_line(&mut first), "", "closed after quit");
    writeln!(clients[0].get_mut(), "still here").unwrap();
    assert_eq!(read_line(&mut clients[0]), "still here\n");
}

#[test]
fn udp_server_replies_received_n_bytes() {
    let mut ex = Example::start("udp_server", &["127.0.0.1:0"]);
    let addr = ex.address("Receiving datagrams on");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    sock.send_to(b"Test udp_server", addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"Received 15 bytes");
}

#[test]
fn udp_client_sends_and_prints_the_reply() {
    // gevent's test runs a DatagramServer in the test and points the client at it.
    let server = may_gevent::DatagramServer::builder(
        "127.0.0.1:0",
        |data: Vec<u8>, addr: SocketAddr, sock: &may_gevent::DatagramSocket| {
            let mut reply = b"reply: ".to_vec();
            reply.extend_from_slice(&data);
            sock.sendto(&reply, addr).map(|_| ())
        },
    )
    .build()
    .unwrap();
    server.start().unwrap();
    let out = run_example(
        "udp_client",
        Command::new(example("udp_client"))
            .args(["Test", "udp_client"])
            .env("UDP_CLIENT_ADDRESS", inet(&server).to_string()),
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = out.stdout;
    // gevent prints the reply with %r: b'...'
    assert_eq!(
        stdout,
        format!(
            "Sending 15 bytes to {addr}\n{addr}: got b'reply: Test udp_client'",
            addr = inet(&server)
        )
    );
}

#[test]
fn udp_client_fails_at_once_when_nothing_listens() {
    // A port nobody can bind meanwhile, and where datagrams find no socket: ours is connected
    // elsewhere, so the kernel answers port-unreachable (as for a closed port).
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    taken.connect("127.0.0.1:9").unwrap();
    let addr = taken.local_addr().unwrap();
    let begin = std::time::Instant::now();
    let out = run_example(
        "udp_client",
        Command::new(example("udp_client"))
            .args(["ping"])
            .env("UDP_CLIENT_ADDRESS", addr.to_string()),
    );
    let took = begin.elapsed();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("Connection refused"), "{out:?}");
    assert_eq!(out.stdout, format!("Sending 4 bytes to {addr}"));
    // Not the 5-second read timeout: the refusal arrives at once.
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn udp_server_answers_a_burst_from_ten_clients() {
    let mut ex = Example::start("udp_server", &["127.0.0.1:0"]);
    let addr = ex.address("Receiving datagrams on");
    support::udp::assert_burst_answered(addr, || 0);
}

#[test]
fn portforwarder_forwards_and_drains_after_sigterm() {
    let backend = StreamServer::builder("127.0.0.1:0", |s: Stream, _a: Address| {
        let mut reader = BufReader::new(s.try_clone()?);
        let mut writer = s;
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            writer.write_all(line.as_bytes())?;
            line.clear();
        }
        Ok::<(), std::io::Error>(())
    })
    .build()
    .unwrap();
    backend.start().unwrap();
    let dest = inet(&backend).to_string();
    // A reserved port: once the forwarder's listener closes, connects are refused for sure.
    let port = ReservedPort::new();
    let source = port.addr.to_string();
    let mut ex = Example::start("portforwarder", &[&source, &dest]);
    let line = ex.line_with("Starting port forwarder");
    let addr: SocketAddr = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(addr, port.addr);

    let mut client = BufReader::new(connect(addr));
    client.get_mut().write_all(b"msg1\n").unwrap();
    assert_eq!(read_line(&mut client), "msg1\n");

    ex.0.signal(libc::SIGTERM);
    // The listener closes...
    eventually(
        "the forwarder's listener is closed",
        || match std::net::TcpStream::connect_timeout(&addr, WAIT) {
            Ok(_) => false,
            // A connect caught in the listener's queue as it closes is reset: try again.
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(err) => {
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
                true
            }
        },
    );
    // ...but the open connection keeps forwarding.
    client.get_mut().write_all(b"msg2\n").unwrap();
    assert_eq!(read_line(&mut client), "msg2\n");
    client
        .get_mut()
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    assert_eq!(read_line(&mut client), "");
    drop(client);
    assert!(
        ex.0.wait_exit(WAIT).success(),
        "exits 0 once the last connection ended"
    );
}

#[test]
fn bounded_pool_never_exceeds_its_size() {
    let out = run_example(
        "bounded_pool",
        Command::new(example("bounded_pool")).args(["200", "7"]),
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = out.stdout;
    assert!(stdout.contains("finished 200 of 200 jobs"), "{stdout}");
    assert!(stdout.contains("at most 7 ran at once"), "{stdout}");
}
