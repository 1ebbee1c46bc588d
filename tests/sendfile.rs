//! Files sent with `sendfile(2)`: `Body::file` (gevent: `environ['wsgi.file_wrapper']`) through
//! a real WsgiServer over TCP and TLS, `Stream::wait_writable`/`wait_readable` (gevent's
//! `wait_write`/`wait_read`) on real sockets, and the geventsendfile example as a process.
//! Every wait is bounded.
#![allow(missing_docs)]

mod support;
#[cfg(feature = "tls")]
#[path = "support/tls.rs"]
mod tls_support;
mod wsgi_support;

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AppResult, Body, Environ, StartResponse, WsgiServer};
use may_gevent::{Pool, Stream};
use support::child::Running;
use support::WAIT;
use wsgi_support::{read_response, read_to_close, serve, test_config, Records, Resp};

/// The size of the test files: larger than any loopback socket buffer pair starts with.
const BIG: usize = 3 << 20;

/// `len` bytes in which every 4 KiB block differs from its neighbours (a lost, repeated or
/// reordered piece shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect()
}

/// A file in the temporary directory, removed on drop.
struct TempFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl TempFile {
    fn new(len: usize) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "may_gevent_sendfile_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let bytes = pattern(len);
        std::fs::write(&path, &bytes).expect("write the test file");
        TempFile { path, bytes }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `/file`: the file; `/notmodified`: a 304 with the file as its body; `/written`: `prefix` by
/// the `write` callable, then the file; `/truncate`: the file, cut to a third of its length
/// after `Body::file` took its length; anything else: `ok`.
fn file_app(path: PathBuf) -> impl Fn(&mut Environ, &mut StartResponse<'_>) -> AppResult {
    move |env, start_response| {
        let octets = [("Content-Type", "application/octet-stream")];
        match env.path_info() {
            "/file" => {
                let body = Body::file(File::open(&path)?)?;
                start_response.call("200 OK", &octets)?;
                Ok(body)
            }
            "/notmodified" => {
                let body = Body::file(File::open(&path)?)?;
                start_response.call("304 Not Modified", &[])?;
                Ok(body)
            }
            "/written" => {
                let body = Body::file(File::open(&path)?)?;
                start_response.call("200 OK", &octets)?.write(b"prefix")?;
                Ok(body)
            }
            "/truncate" => {
                let body = Body::file(File::open(&path)?)?;
                let len = std::fs::metadata(&path)?.len();
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(len / 3)?;
                start_response.call("200 OK", &octets)?;
                Ok(body)
            }
            _ => {
                start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
                Ok("ok".into())
            }
        }
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// A client whose receive buffer is tiny: the server's sends fill it at once and have to
/// wait for the client to read.
fn small_window_client(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect_timeout(&addr.into(), WAIT).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads at most 8 KiB at a time and pauses now and then: the sender keeps finding the
/// window full.
struct SlowReader(TcpStream, usize);

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.1 += 1;
        if self.1.is_multiple_of(8) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let n = buf.len().min(8192);
        self.0.read(&mut buf[..n])
    }
}

fn assert_file(resp: &Resp, file: &TempFile) {
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(
        resp.header("Content-Length"),
        Some(file.bytes.len().to_string().as_str())
    );
    assert!(resp.header("Transfer-Encoding").is_none());
    assert_eq!(resp.body.len(), file.bytes.len());
    assert!(resp.body == file.bytes, "the body differs from the file");
}

#[test]
fn a_file_body_arrives_whole_with_its_content_length_and_keep_alive_goes_on() {
    let file = TempFile::new(BIG);
    let server = serve(file_app(file.path.clone()));
    let mut client = server.client();
    for _ in 0..2 {
        let resp = client.get("/file");
        assert_file(&resp, &file);
        assert_eq!(resp.header("Connection"), None, "HTTP/1.1 keeps alive");
    }
    assert_eq!(client.get("/other").body_text(), "ok");
    let lines = server.access_lines(3);
    // the bytes sent, head included: the file's and a head's
    let sent: usize = lines[0]
        .split_whitespace()
        .nth_back(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        lines[0].contains("\"GET /file HTTP/1.1\" 200 ") && (BIG..BIG + 512).contains(&sent),
        "the access log counts the file's bytes: {lines:?}"
    );
}

#[test]
fn http_1_0_gets_the_content_length_and_may_keep_alive() {
    let file = TempFile::new(100_000);
    let server = serve(file_app(file.path.clone()));
    let mut client = server.client();
    for _ in 0..2 {
        client.send(b"GET /file HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = client.read(false).expect("a response");
        assert_file(&resp, &file);
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
    }
    client.send(b"GET /file HTTP/1.0\r\n\r\n");
    assert_file(&client.read(false).expect("a response"), &file);
    client.assert_closed();
}

#[test]
fn an_empty_file_is_an_empty_body() {
    let file = TempFile::new(0);
    let server = serve(file_app(file.path.clone()));
    let mut client = server.client();
    let resp = client.get("/file");
    assert_file(&resp, &file);
    assert_eq!(client.get("/other").body_text(), "ok");
}

#[test]
fn a_slow_client_with_a_small_window_gets_every_byte() {
    // beyond the largest send buffer Linux grows to by default (4 MiB): many waits
    let file = TempFile::new(4 * BIG);
    let server = serve(file_app(file.path.clone()));
    let mut stream = small_window_client(server.addr);
    stream.write_all(&get("/file")).unwrap();
    // not reading at first: the server fills the window and waits
    std::thread::sleep(Duration::from_millis(300));
    let mut reader = BufReader::new(SlowReader(stream.try_clone().unwrap(), 0));
    let started = Instant::now();
    assert_file(
        &read_response(&mut reader, false).expect("a response"),
        &file,
    );
    assert!(started.elapsed() < WAIT);
    // and the connection is still in step
    stream.write_all(&get("/other")).unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().body_text(), "ok");
}

#[test]
fn head_gets_the_content_length_and_no_body_and_304_neither() {
    let file = TempFile::new(BIG);
    let server = serve(file_app(file.path.clone()));
    let mut client = server.client();
    client.send(b"HEAD /file HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = client.read(true).expect("a response");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Length"),
        Some(BIG.to_string().as_str())
    );
    let resp = client.get("/notmodified");
    assert_eq!(resp.status, 304);
    assert_eq!(resp.header("Content-Length"), None);
    assert!(resp.body.is_empty());
    // nothing of either body was sent: the next response follows at once
    assert_eq!(client.get("/other").body_text(), "ok");
    assert!(
        server.records.errors().is_empty(),
        "{:?}",
        server.records.lines()
    );
}

#[test]
fn a_file_after_the_write_callable_goes_out_in_that_framing() {
    let file = TempFile::new(200_000);
    let server = serve(file_app(file.path.clone()));
    let mut client = server.client();
    let resp = client.get("/written");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    let mut expected = b"prefix".to_vec();
    expected.extend_from_slice(&file.bytes);
    assert!(resp.body == expected, "prefix then the file");
    assert_eq!(client.get("/other").body_text(), "ok");
}

#[test]
fn a_file_truncated_after_body_file_closes_the_connection_short_of_its_length() {
    let file = TempFile::new(BIG);
    let server = serve(file_app(file.path.clone()));
    let mut stream = server.connect();
    // a keep-alive request: only the server's close can end what the client reads
    stream.write_all(&get("/truncate")).unwrap();
    let received = read_to_close(&mut stream);
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&received[..end]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {BIG}\r\n")),
        "{head}"
    );
    let body = &received[end..];
    assert_eq!(body.len(), BIG / 3, "the bytes there were, then the close");
    assert!(body == &file.bytes[..BIG / 3]);
    let record = server.record_containing("does not match its Content-Length");
    assert!(record.starts_with("ERROR"), "{record}");
}

#[test]
fn not_a_regular_file_is_refused() {
    let dir = File::open(std::env::temp_dir()).expect("open the temporary directory");
    let err = Body::file(dir).expect_err("a directory");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let file = TempFile::new(10);
    let body = Body::file(File::open(&file.path).unwrap()).unwrap();
    assert_eq!(body.len_hint(), Some(10));
    assert!(!body.is_stream());
    // from the file's current position
    let mut opened = File::open(&file.path).unwrap();
    io::Seek::seek(&mut opened, io::SeekFrom::Start(4)).unwrap();
    assert_eq!(Body::file(opened).unwrap().len_hint(), Some(6));
}

/// A WsgiServer serving `file_app` whose server logger (the one `stop()` reports to) is
/// collected, plus that collection.
fn serve_logged(file: &TempFile) -> (WsgiServer, SocketAddr, Records) {
    wsgi_support::init();
    let (config, _access, _errors) = test_config();
    let records = Records::default();
    let server = WsgiServer::builder("127.0.0.1:0", file_app(file.path.clone()))
        .config(config)
        .logger(slog::Logger::root(records.clone(), slog::o!()))
        .build()
        .expect("build");
    server.start().expect("start");
    let addr = server.address().and_then(|a| a.as_inet()).expect("bound");
    (server, addr, records)
}

#[test]
fn stop_ends_a_send_to_a_client_that_stopped_reading_by_shutting_it_down() {
    let file = TempFile::new(BIG);
    let (server, addr, records) = serve_logged(&file);
    let mut stream = small_window_client(addr);
    stream.write_all(&get("/file")).unwrap();
    // the server sends what fits, then waits for a window that never opens
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let server = support::within("stop(100 ms)", WAIT, move || {
        server.stop(Duration::from_millis(100));
        server
    });
    let took = started.elapsed();
    assert!(!server.started());
    let lines = records.lines();
    assert!(
        lines.iter().any(|l| l.contains("stop: shutting down")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("stop: cancelling")),
        "the shutdown ended the wait, no cancel was needed ({took:?}): {lines:?}"
    );
    let received = read_to_close(&mut stream);
    assert!(
        received.len() < BIG,
        "the client never read: not all was sent"
    );
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use tls_support::TestCert;

    fn serve_tls(cert: &TestCert, file: &TempFile) -> (WsgiServer, SocketAddr) {
        wsgi_support::init();
        let (config, _access, _records) = test_config();
        let server = WsgiServer::builder("127.0.0.1:0", file_app(file.path.clone()))
            .config(config)
            .tls_files(&cert.certfile, &cert.keyfile)
            .build()
            .expect("build");
        server.start().expect("start");
        let addr = server.address().and_then(|a| a.as_inet()).expect("bound");
        (server, addr)
    }

    #[test]
    fn over_tls_the_same_bytes_arrive_and_keep_alive_goes_on() {
        let cert = TestCert::generate();
        let file = TempFile::new(BIG);
        let (_server, addr) = serve_tls(&cert, &file);
        let mut client = BufReader::new(cert.connect(addr));
        for _ in 0..2 {
            client.get_mut().write_all(&get("/file")).unwrap();
            assert_file(
                &read_response(&mut client, false).expect("a response"),
                &file,
            );
        }
        client.get_mut().write_all(&get("/other")).unwrap();
        assert_eq!(read_response(&mut client, false).unwrap().body_text(), "ok");
    }

    #[test]
    fn over_tls_stop_ends_a_send_to_a_client_that_stopped_reading() {
        let cert = TestCert::generate();
        let file = TempFile::new(BIG);
        let (server, addr) = serve_tls(&cert, &file);
        let mut client = cert.connect(addr);
        client.write_all(&get("/file")).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let server = support::within("stop(100 ms)", WAIT, move || {
            server.stop(Duration::from_millis(100));
            server
        });
        assert!(!server.started());
        // what was sent, then the end (a TLS error or EOF), within the client's timeout
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "the connection did not end");
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(err) => {
                    assert!(
                        !matches!(
                            err.kind(),
                            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                        ),
                        "still open: {err}"
                    );
                    break;
                }
            }
        }
        assert!(got < BIG + 1024, "not the whole file");
    }
}

// ---- Stream::wait_writable / wait_readable ----

/// What the coroutine under test reports.
#[derive(Debug)]
enum Event {
    Full,
    Returned(Result<(), io::ErrorKind>, Duration),
}

/// A listener whose accepted sockets have a tiny receive buffer.
fn small_window_listener() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    socket2::SockRef::from(&listener)
        .set_recv_buffer_size(4096)
        .expect("SO_RCVBUF");
    listener
}

/// Connects a may stream to `addr` (on a coroutine) with a small send buffer.
fn connect_small(addr: SocketAddr) -> Stream {
    let stream = Stream::from(may::net::TcpStream::connect(addr).expect("connect"));
    socket2::SockRef::from(&stream)
        .set_send_buffer_size(8192)
        .expect("SO_SNDBUF");
    stream
}

/// Fills the connection until neither the peer's window nor our send buffer takes another
/// byte (and stays so for a moment: data in flight frees room as it is acknowledged).
fn fill(stream: &mut Stream, file: &File, len: u64) {
    let mut offset = 0u64;
    for _ in 0..200 {
        let mut sent_now = 0;
        loop {
            match stream.try_sendfile(file, offset % len, 64 * 1024) {
                Ok(n) => {
                    offset += n as u64;
                    sent_now += n;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => panic!("sendfile: {err}"),
            }
        }
        if sent_now == 0 {
            return;
        }
        may::coroutine::sleep(Duration::from_millis(50));
    }
    panic!("the connection never filled up");
}

/// Reads whatever arrives on `peer` until `done` says the waiter returned (at most WAIT).
fn drain_until(peer: &mut TcpStream, rx: &mpsc::Receiver<Event>) -> Event {
    peer.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        assert!(Instant::now() < deadline, "the waiter did not return");
        if let Ok(event) = rx.try_recv() {
            return event;
        }
        match peer.read(&mut buf) {
            Ok(0) => panic!("the writer closed"),
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(err) => panic!("peer read: {err}"),
        }
    }
}

#[test]
fn wait_writable_returns_at_once_for_a_writable_socket() {
    wsgi_support::init();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let co = may::go!(move || {
        let mut stream = Stream::from(may::net::TcpStream::connect(addr).unwrap());
        let started = Instant::now();
        stream.wait_writable().unwrap();
        started.elapsed()
    });
    let (_peer, _) = listener.accept().unwrap();
    let took = support::join_coroutine_within("wait_writable", WAIT, co).unwrap();
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn wait_writable_waits_while_the_window_is_full_and_returns_once_the_peer_reads() {
    wsgi_support::init();
    let file = TempFile::new(1 << 20);
    let listener = small_window_listener();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let path = file.path.clone();
    let co = may::go!(move || {
        let mut stream = connect_small(addr);
        let data = File::open(&path).unwrap();
        fill(&mut stream, &data, 1 << 20);
        tx.send(Event::Full).unwrap();
        let started = Instant::now();
        let res = stream.wait_writable().map_err(|e| e.kind());
        tx.send(Event::Returned(res, started.elapsed())).unwrap();
        // once writable, a write goes through without waiting
        stream.try_sendfile(&data, 0, 1).expect("room for a byte");
    });
    let (mut peer, _) = listener.accept().unwrap();
    assert!(matches!(rx.recv_timeout(WAIT), Ok(Event::Full)));
    assert!(
        matches!(
            rx.recv_timeout(Duration::from_millis(300)),
            Err(mpsc::RecvTimeoutError::Timeout)
        ),
        "wait_writable returned while the window was full"
    );
    match drain_until(&mut peer, &rx) {
        Event::Returned(Ok(()), took) => assert!(took >= Duration::from_millis(250), "{took:?}"),
        other => panic!("{other:?}"),
    }
    support::join_coroutine_within("the writer", WAIT, co).unwrap();
}

#[test]
fn wait_writable_times_out_after_the_write_timeout() {
    wsgi_support::init();
    let file = TempFile::new(1 << 20);
    let listener = small_window_listener();
    let addr = listener.local_addr().unwrap();
    let path = file.path.clone();
    let co = may::go!(move || {
        let mut stream = connect_small(addr);
        fill(&mut stream, &File::open(&path).unwrap(), 1 << 20);
        stream
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let started = Instant::now();
        let res = stream.wait_writable().map_err(|e| e.kind());
        (res, started.elapsed())
    });
    let (_peer, _) = listener.accept().unwrap();
    let (res, took) = support::join_coroutine_within("wait_writable", WAIT, co).unwrap();
    assert_eq!(res, Err(io::ErrorKind::TimedOut));
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn wait_writable_ends_when_the_socket_is_shut_down() {
    wsgi_support::init();
    let file = TempFile::new(1 << 20);
    let listener = small_window_listener();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let (twin_tx, twin_rx) = mpsc::channel();
    let path = file.path.clone();
    let co = may::go!(move || {
        let mut stream = connect_small(addr);
        fill(&mut stream, &File::open(&path).unwrap(), 1 << 20);
        twin_tx.send(stream.try_clone().unwrap()).unwrap();
        tx.send(Event::Full).unwrap();
        let started = Instant::now();
        let res = stream.wait_writable().map_err(|e| e.kind());
        tx.send(Event::Returned(res, started.elapsed())).unwrap();
        // what a server's handler sees next: the write fails
        stream.write(b"x").map_err(|e| e.kind())
    });
    let (_peer, _) = listener.accept().unwrap();
    assert!(matches!(rx.recv_timeout(WAIT), Ok(Event::Full)));
    let mut twin = twin_rx.recv_timeout(WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    twin.shutdown(std::net::Shutdown::Both).unwrap();
    match rx.recv_timeout(WAIT) {
        Ok(Event::Returned(Ok(()), _)) => {}
        other => panic!("{other:?}"),
    }
    let write = support::join_coroutine_within("the writer", WAIT, co).unwrap();
    assert_eq!(write, Err(io::ErrorKind::BrokenPipe));
}

#[test]
fn a_cancel_unwinds_a_coroutine_waiting_for_writability() {
    wsgi_support::init();
    let file = TempFile::new(1 << 20);
    let listener = small_window_listener();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let path = file.path.clone();
    let pool = Pool::unbounded();
    pool.spawn(move || {
        let mut stream = connect_small(addr);
        fill(&mut stream, &File::open(&path).unwrap(), 1 << 20);
        tx.send(Event::Full).unwrap();
        // no timeout, never shut down: only the cancel can end this
        let res = stream.wait_writable().map_err(|e| e.kind());
        let _ = tx.send(Event::Returned(res, Duration::ZERO));
    });
    let (_peer, _) = listener.accept().unwrap();
    assert!(matches!(rx.recv_timeout(WAIT), Ok(Event::Full)));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    assert!(pool.kill(WAIT), "the waiter did not unwind");
    assert!(started.elapsed() < Duration::from_secs(2));
    // it unwound from the wait: it never got to report a return
    assert!(matches!(
        rx.recv_timeout(WAIT),
        Err(mpsc::RecvTimeoutError::Disconnected)
    ));
}

#[test]
fn wait_readable_waits_for_data_and_times_out_after_the_read_timeout() {
    wsgi_support::init();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let co = may::go!(move || {
        let mut stream = Stream::from(may::net::TcpStream::connect(addr).unwrap());
        tx.send(Event::Full).unwrap();
        let started = Instant::now();
        let res = stream.wait_readable().map_err(|e| e.kind());
        tx.send(Event::Returned(res, started.elapsed())).unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let started = Instant::now();
        let res = stream.wait_readable().map_err(|e| e.kind());
        (byte[0], res, started.elapsed())
    });
    let (mut peer, _) = listener.accept().unwrap();
    assert!(matches!(rx.recv_timeout(WAIT), Ok(Event::Full)));
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(mpsc::RecvTimeoutError::Timeout)
    ));
    peer.write_all(b"!").unwrap();
    assert!(matches!(
        rx.recv_timeout(WAIT),
        Ok(Event::Returned(Ok(()), _))
    ));
    let (byte, res, took) = support::join_coroutine_within("the reader", WAIT, co).unwrap();
    assert_eq!(byte, b'!');
    assert_eq!(res, Err(io::ErrorKind::TimedOut));
    assert!(took >= Duration::from_millis(190), "{took:?}");
}

#[test]
fn on_a_plain_thread_the_waits_block_in_poll() {
    wsgi_support::init();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut stream = Stream::from(may::net::TcpStream::connect(addr).unwrap());
    let (mut peer, _) = listener.accept().unwrap();
    stream.wait_writable().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        stream.wait_readable().unwrap_err().kind(),
        io::ErrorKind::TimedOut
    );
    assert!(started.elapsed() >= Duration::from_millis(90));
    peer.write_all(b"x").unwrap();
    stream.wait_readable().unwrap();
}

#[test]
fn stream_sendfile_sends_a_range_and_stops_at_the_end_of_the_file() {
    wsgi_support::init();
    let file = TempFile::new(BIG);
    let listener = small_window_listener();
    let addr = listener.local_addr().unwrap();
    let path = file.path.clone();
    let co = may::go!(move || {
        let mut stream = connect_small(addr);
        let data = File::open(&path).unwrap();
        let first = stream.sendfile(&data, 1000, 2 << 20).unwrap();
        // past the end: what there is
        let rest = stream.sendfile(&data, 1000 + first as u64, BIG).unwrap();
        let none = stream.sendfile(&data, BIG as u64, 10).unwrap();
        (first, rest, none)
    });
    let (peer, _) = listener.accept().unwrap();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = SlowReader(peer, 0);
    let mut got = vec![0u8; BIG - 1000];
    reader.read_exact(&mut got).unwrap();
    let (first, rest, none) = support::join_coroutine_within("sendfile", WAIT, co).unwrap();
    assert_eq!((first, rest, none), (2 << 20, BIG - 1000 - (2 << 20), 0));
    assert!(got == file.bytes[1000..]);
}

#[test]
fn stream_sendfile_over_a_unix_socket_pair() {
    wsgi_support::init();
    let file = TempFile::new(BIG);
    let path = file.path.clone();
    let co = may::go!(move || {
        let (a, b) = may::os::unix::net::UnixStream::pair().expect("socketpair");
        let reader = may::go!(move || {
            let mut b = Stream::from(b);
            let mut got = Vec::new();
            b.read_to_end(&mut got).map(|_| got)
        });
        let mut a = Stream::from(a);
        // a Unix socket buffer holds a few hundred KiB: the send waits for the reader often
        let sent = a.sendfile(&File::open(&path).unwrap(), 0, BIG).unwrap();
        drop(a);
        (sent, reader.join().unwrap().unwrap())
    });
    let (sent, got) = support::join_coroutine_within("unix sendfile", WAIT, co).unwrap();
    assert_eq!(sent, BIG);
    assert!(got == file.bytes);
}

// ---- the example ----

fn example(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// Starts the example on a free port with `args` after the address; returns it and the
/// address it prints.
fn start_example(args: &[&str]) -> (Running, String, SocketAddr) {
    let mut command = Command::new(example("geventsendfile"));
    command.arg("127.0.0.1:0").args(args);
    let ex = Running::spawn("geventsendfile", &mut command).unwrap_or_else(|err| {
        panic!("cannot run the example ({err}): `cargo test` builds the examples; with --test, run `cargo build --examples` first")
    });
    let line = ex
        .stdout
        .wait_for(Duration::from_secs(30), |line| line.starts_with("Serving "))
        .unwrap_or_else(|| panic!("no \"Serving\" line; stderr: {:?}", ex.stderr.all()));
    let addr = line.split_whitespace().last().unwrap().parse().unwrap();
    (ex, line, addr)
}

#[test]
fn the_geventsendfile_example_sends_its_own_source_to_each_client() {
    let (_ex, line, addr) = start_example(&[]);
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/geventsendfile.rs");
    assert_eq!(line, format!("Serving {source} on {addr}"));
    let on_disk = std::fs::read(source).unwrap();
    for _ in 0..2 {
        let mut client = support::connect(addr);
        assert!(support::read_to_end(&mut client) == on_disk);
    }
}

#[test]
fn the_geventsendfile_example_sends_a_big_file_to_a_slow_client() {
    let file = TempFile::new(BIG);
    let (_ex, _line, addr) = start_example(&[file.path.to_str().unwrap()]);
    let stream = small_window_client(addr);
    std::thread::sleep(Duration::from_millis(200));
    let mut reader = SlowReader(stream, 0);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), BIG);
    assert!(got == file.bytes);
    // and a fast client after it
    let mut client = support::connect(addr);
    assert!(support::read_to_end(&mut client) == file.bytes);
}
