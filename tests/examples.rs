//! Each example started as a process and driven like a user would (gevent's
//! test__example_*.py). Examples are built by `cargo test`; they bind port 0 here.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use may_gevent::{Address, Stream, StreamServer};
use support::*;

fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// A running example; killed when dropped.
struct Example {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Example {
    fn start(name: &str, args: &[&str]) -> Example {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run example {name} ({err}): `cargo test` builds the examples; with --test, run `cargo build --examples` first")
            });
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Example { child, stdout }
    }

    /// Read stdout lines until one contains `marker`; return it.
    fn line_with(&mut self, marker: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(n > 0, "example exited before printing {marker:?}");
            if line.contains(marker) {
                return line.trim().to_owned();
            }
        }
    }

    /// The address printed at the end of the line that contains `marker`.
    fn address(&mut self, marker: &str) -> SocketAddr {
        let line = self.line_with(marker);
        let last = line.split_whitespace().last().unwrap();
        last.parse()
            .unwrap_or_else(|_| panic!("no address in {line:?}"))
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "example did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let server = may_gevent::DatagramServer::new(
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
    let out = Command::new(example("udp_client"))
        .args(["Test", "udp_client"])
        .env("UDP_CLIENT_ADDRESS", inet(&server).to_string())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("got \"reply: Test udp_client\""),
        "{stdout}"
    );
}

#[test]
fn portforwarder_forwards_and_drains_after_sigterm() {
    let backend = StreamServer::new("127.0.0.1:0", |s: Stream, _a: Address| {
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
    let mut ex = Example::start("portforwarder", &["127.0.0.1:0", &dest]);
    let line = ex.line_with("Starting port forwarder");
    let addr: SocketAddr = line.split_whitespace().nth(3).unwrap().parse().unwrap();

    let mut client = BufReader::new(connect(addr));
    client.get_mut().write_all(b"msg1\n").unwrap();
    assert_eq!(read_line(&mut client), "msg1\n");

    #[allow(unsafe_code)]
    // SAFETY: kill(2) on our own child process.
    unsafe {
        libc::kill(ex.child.id() as i32, libc::SIGTERM)
    };
    // The listener closes...
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "listener still open");
        std::thread::sleep(Duration::from_millis(10));
    }
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
        ex.wait().success(),
        "exits 0 once the last connection ended"
    );
}

#[test]
fn bounded_pool_never_exceeds_its_size() {
    let out = Command::new(example("bounded_pool"))
        .args(["200", "7"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("finished 200 of 200 jobs"), "{stdout}");
    assert!(stdout.contains("at most 7 ran at once"), "{stdout}");
}
