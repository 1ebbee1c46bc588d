//! The PROXY protocol (v1 and v2) on StreamServer and WsgiServer: real sockets on 127.0.0.1
//! (clients bound to other loopback addresses where the peer matters), every wait bounded.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
use may_gevent::{Address, Error, IpAllowList, Stream, StreamServer};
use support::*;

const SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A PROXY v2 header.
fn v2(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = SIG.to_vec();
    out.extend_from_slice(&[cmd, fam]);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A v2 PROXY header for a TCP connection from `src` to `dst`, with `tlvs` appended.
fn v2_tcp(src: SocketAddr, dst: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    let fam = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            payload.extend_from_slice(&s.ip().octets());
            payload.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            payload.extend_from_slice(&s.ip().octets());
            payload.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => unreachable!("mixed families"),
    };
    payload.extend_from_slice(&src.port().to_be_bytes());
    payload.extend_from_slice(&dst.port().to_be_bytes());
    payload.extend_from_slice(tlvs);
    v2(0x21, fam, &payload)
}

/// Tells the handler's view of the connection in a first line, then echoes lines.
fn describe(calls: Arc<AtomicUsize>) -> impl Fn(Stream, Address) -> io::Result<()> + Send + Sync {
    move |stream: Stream, addr: Address| {
        calls.fetch_add(1, Ordering::SeqCst);
        let proxy = stream
            .proxy_addr()
            .map_or("-".to_owned(), ToString::to_string);
        let first = format!(
            "addr={addr} peer={} proxy={proxy} tls={}\n",
            stream.peer_addr()?,
            stream.is_tls()
        );
        let mut reader = BufReader::new(stream);
        reader.get_mut().write_all(first.as_bytes())?;
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            reader.get_mut().write_all(line.as_bytes())?;
            line.clear();
        }
        Ok(())
    }
}

struct Server {
    server: StreamServer,
    calls: Arc<AtomicUsize>,
    logs: mpsc::Receiver<(slog::Level, String)>,
}

impl Server {
    fn addr(&self) -> SocketAddr {
        inet(&self.server)
    }

    /// Every log message so far.
    fn messages(&self) -> Vec<String> {
        self.logs.try_iter().map(|(_, m)| m).collect()
    }
}

fn server(
    setup: impl FnOnce(may_gevent::StreamServerBuilder) -> may_gevent::StreamServerBuilder,
) -> Server {
    let calls = Arc::new(AtomicUsize::new(0));
    let (logger, logs) = recording_logger();
    let server = setup(StreamServer::builder(
        "127.0.0.1:0",
        describe(calls.clone()),
    ))
    .logger(logger)
    .build()
    .expect("build");
    server.start().expect("start");
    Server {
        server,
        calls,
        logs,
    }
}

fn proxied() -> Server {
    server(|b| b.proxy_protocol("127.0.0.0/8, ::1"))
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a line");
    line
}

/// Send `header` followed by a line, in one write; return the handler's description line and
/// the echoed line.
fn round_trip(stream: TcpStream, header: &[u8]) -> (String, String) {
    let mut reader = BufReader::new(stream);
    let mut out = header.to_vec();
    out.extend_from_slice(b"after the header\n");
    reader.get_mut().write_all(&out).unwrap();
    let first = read_line(&mut reader);
    let echo = read_line(&mut reader);
    (first, echo)
}

/// The server closes the connection without a byte (EOF or reset).
fn assert_closed_unserved(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed unserved, got {other:?}"),
    }
}

#[test]
fn v1_tcp4_and_tcp6_give_the_client_address() {
    let s = proxied();
    let c = connect(s.addr());
    let own = c.local_addr().unwrap();
    let (first, echo) = round_trip(c, b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    assert_eq!(
        first,
        format!("addr=192.0.2.1:56324 peer=192.0.2.1:56324 proxy={own} tls=false\n")
    );
    assert_eq!(echo, "after the header\n");

    let c = connect(s.addr());
    let own = c.local_addr().unwrap();
    let (first, echo) = round_trip(c, b"PROXY TCP6 2001:db8::1 ::1 65535 8080\r\n");
    assert_eq!(
        first,
        format!("addr=[2001:db8::1]:65535 peer=[2001:db8::1]:65535 proxy={own} tls=false\n")
    );
    assert_eq!(echo, "after the header\n");
    assert_eq!(s.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn v1_unknown_keeps_the_socket_peer() {
    let s = proxied();
    for header in [&b"PROXY UNKNOWN\r\n"[..], b"PROXY UNKNOWN ::1 ::2 1 2\r\n"] {
        let c = connect(s.addr());
        let own = c.local_addr().unwrap();
        let (first, echo) = round_trip(c, header);
        assert_eq!(
            first,
            format!("addr={own} peer={own} proxy={own} tls=false\n")
        );
        assert_eq!(echo, "after the header\n");
    }
}

#[test]
fn v2_ipv4_and_ipv6_with_tlvs_skipped() {
    let s = proxied();
    // ALPN "h2", an empty NOOP, an authority, a 300-byte custom TLV
    let mut tlvs = vec![0x01, 0, 2, b'h', b'2', 0x04, 0, 0, 0x02, 0, 4];
    tlvs.extend_from_slice(b"a.bc");
    tlvs.extend_from_slice(&[0xe0, 0x01, 0x2c]);
    tlvs.extend_from_slice(&[b'z'; 300]);
    let src: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let dst: SocketAddr = "198.51.100.1:443".parse().unwrap();
    let c = connect(s.addr());
    let own = c.local_addr().unwrap();
    let (first, echo) = round_trip(c, &v2_tcp(src, dst, &tlvs));
    assert_eq!(
        first,
        format!("addr={src} peer={src} proxy={own} tls=false\n")
    );
    assert_eq!(echo, "after the header\n");

    let src: SocketAddr = "[2001:db8::42]:1234".parse().unwrap();
    let dst: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let c = connect(s.addr());
    let own = c.local_addr().unwrap();
    let (first, echo) = round_trip(c, &v2_tcp(src, dst, &[]));
    assert_eq!(
        first,
        format!("addr={src} peer={src} proxy={own} tls=false\n")
    );
    assert_eq!(echo, "after the header\n");
}

#[test]
fn v2_local_and_unspecified_keep_the_socket_peer() {
    let s = proxied();
    let src: SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let inet = v2_tcp(src, src, &[]);
    for header in [
        v2(0x20, 0x00, &[]),          // LOCAL (a health check)
        v2(0x20, 0x11, &inet[16..]),  // LOCAL with addresses: ignored
        v2(0x21, 0x00, &[]),          // PROXY, UNSPEC
        v2(0x21, 0x31, &[b'/'; 216]), // PROXY over a Unix socket
        v2(0x21, 0x12, &inet[16..]),  // PROXY, UDP over IPv4
    ] {
        let c = connect(s.addr());
        let own = c.local_addr().unwrap();
        let (first, echo) = round_trip(c, &header);
        assert_eq!(
            first,
            format!("addr={own} peer={own} proxy={own} tls=false\n"),
            "{header:?}"
        );
        assert_eq!(echo, "after the header\n");
    }
}

#[test]
fn a_header_in_pieces_is_read_whole_and_nothing_after_it_is_lost() {
    let s = proxied();
    for header in [
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".to_vec(),
        v2_tcp(
            "192.0.2.1:56324".parse().unwrap(),
            "198.51.100.2:443".parse().unwrap(),
            &[0x04, 0, 3, 1, 2, 3],
        ),
    ] {
        let c = connect(s.addr());
        c.set_nodelay(true).unwrap();
        let mut reader = BufReader::new(c);
        // one byte per write, the first line of data right behind the header's last byte
        let (last, head) = header.split_last().unwrap();
        for b in head {
            reader.get_mut().write_all(&[*b]).unwrap();
        }
        let mut tail = vec![*last];
        tail.extend_from_slice(b"line one\nline two\n");
        reader.get_mut().write_all(&tail).unwrap();
        assert!(read_line(&mut reader).starts_with("addr=192.0.2.1:56324 "));
        assert_eq!(read_line(&mut reader), "line one\n");
        assert_eq!(read_line(&mut reader), "line two\n");
    }
}

#[test]
fn missing_malformed_or_oversized_headers_close_the_connection() {
    let s = proxied();
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (b"hello\n".to_vec(), "no PROXY header"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "no PROXY header",
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".to_vec(),
            "not ended by CRLF",
        ),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n".to_vec(), "malformed"),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n".to_vec(),
            "malformed",
        ),
        (b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(), "malformed"),
        (
            [&b"PROXY UNKNOWN "[..], &[b'x'; 200], b"\r\n"].concat(),
            "too long",
        ),
        (v2(0x22, 0x11, &[0; 12]), "command"),
        (v2(0x21, 0x11, &[0; 5]), "too short"),
        (v2(0x21, 0x11, &[0; 13]), "TLV"),
        (v2(0x21, 0x51, &[0; 12]), "family"),
    ];
    // a v2 length beyond the bound, followed by that much data
    let mut huge = SIG.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0x40, 0x00]);
    huge.extend_from_slice(&[0; 0x4000]);
    cases.push((huge, "too long"));
    for (bytes, why) in &cases {
        let mut c = connect(s.addr());
        // the server may close before it has read everything: a failed write is fine
        let _ = c.write_all(bytes);
        assert_closed_unserved(&mut c);
        let messages = s.messages();
        assert!(
            messages.iter().any(|m| m.contains("bad PROXY header")),
            "{why}: {messages:?}"
        );
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_slow_or_silent_header_is_cut_off_at_the_deadline() {
    let timeout = Duration::from_millis(300);
    let s = server(|b| {
        b.proxy_protocol("127.0.0.1")
            .proxy_protocol_timeout(timeout)
    });
    // silent
    let mut c = connect(s.addr());
    let t0 = Instant::now();
    assert_closed_unserved(&mut c);
    let waited = t0.elapsed();
    assert!(waited >= timeout - Duration::from_millis(20), "{waited:?}");
    assert!(waited < WAIT, "{waited:?}");
    // a byte every 50 ms: the deadline is for the whole header, not per read
    let mut c = connect(s.addr());
    c.set_nodelay(true).unwrap();
    let t0 = Instant::now();
    let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    let mut closed = false;
    for b in header {
        if c.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        if !still_open_now(&c) {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50)); // the client's pace, not a wait
        assert!(t0.elapsed() < WAIT);
    }
    assert!(closed, "the trickled header was accepted");
    // well before the whole header (45 bytes, 2.25 s) could have arrived
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
    assert!(s.messages().iter().any(|m| m.contains("bad PROXY header")));
}

/// The server has not closed `stream` (checked without waiting).
fn still_open_now(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!(stream.peek(&mut buf), Err(err) if err.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    open
}

#[test]
fn a_peer_not_on_the_list_is_refused_even_with_a_valid_header() {
    let s = server(|b| b.proxy_protocol("127.0.0.2"));
    let header = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    // from 127.0.0.1: refused
    let mut c = connect_from([127, 0, 0, 1], s.addr());
    c.write_all(header).unwrap();
    assert_closed_unserved(&mut c);
    assert!(s
        .messages()
        .iter()
        .any(|m| m.contains("not allowed to send a PROXY header")));
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
    // from 127.0.0.2: served
    let c = connect_from([127, 0, 0, 2], s.addr());
    let own = c.local_addr().unwrap();
    assert_eq!(own.ip().to_string(), "127.0.0.2");
    let (first, _) = round_trip(c, header);
    assert_eq!(
        first,
        format!("addr=192.0.2.1:56324 peer=192.0.2.1:56324 proxy={own} tls=false\n")
    );
}

#[test]
fn without_the_setting_a_header_is_just_data() {
    let s = server(|b| b);
    let mut reader = BufReader::new(connect(s.addr()));
    let own = reader.get_ref().local_addr().unwrap();
    reader
        .get_mut()
        .write_all(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n")
        .unwrap();
    assert_eq!(
        read_line(&mut reader),
        format!("addr={own} peer={own} proxy=- tls=false\n")
    );
    assert_eq!(
        read_line(&mut reader),
        "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
    );
}

#[test]
fn bad_settings_fail_the_build() {
    let handler = |_: Stream, _: Address| {};
    let err = StreamServer::builder("127.0.0.1:0", handler)
        .proxy_protocol("10.0.0.1/8")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig(ref m) if m.contains("10.0.0.1/8")),
        "{err}"
    );
    let err = StreamServer::builder("127.0.0.1:0", handler)
        .proxy_protocol("127.0.0.1")
        .proxy_protocol_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    let app = |_: &mut Environ, _: &mut StartResponse<'_>| -> AppResult { Ok(().into()) };
    let err = WsgiServer::builder("127.0.0.1:0", app)
        .proxy_protocol("nonsense")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    // a typed list is accepted as is
    StreamServer::builder("127.0.0.1:0", handler)
        .proxy_protocol(IpAllowList::localhost())
        .build()
        .expect("a typed list");
}

/// `/`: REMOTE_ADDR, REMOTE_PORT, the proxy key and the scheme, one per line.
fn environ_app(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let body = format!(
        "{} {} {} {}",
        env.remote_addr().unwrap_or("-"),
        env.remote_port().unwrap_or("-"),
        env.get("may_gevent.proxy_addr").unwrap_or("-"),
        env.url_scheme(),
    );
    start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
    Ok(body.into_bytes().into())
}

/// Read one response with a Content-Length body; return the body.
fn read_body(reader: &mut BufReader<TcpStream>) -> String {
    let mut length = None;
    let status = read_line(reader);
    assert!(status.starts_with("HTTP/1.1 "), "{status:?}");
    loop {
        let line = read_line(reader);
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0; length.expect("Content-Length")];
    reader.read_exact(&mut body).unwrap();
    format!("{} {}", status.trim_end(), String::from_utf8(body).unwrap())
}

#[test]
fn wsgi_keep_alive_reads_the_header_once() {
    let server = WsgiServer::builder("127.0.0.1:0", environ_app)
        .proxy_protocol("127.0.0.1")
        .access_log(None)
        .logger(None)
        .build()
        .unwrap();
    server.start().unwrap();
    let c = connect(inet(&server));
    let own = c.local_addr().unwrap();
    let mut reader = BufReader::new(c);
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = v2_tcp(
        "[2001:db8::7]:5555".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
        &[],
    );
    first.extend_from_slice(get);
    reader.get_mut().write_all(&first).unwrap();
    assert_eq!(
        read_body(&mut reader),
        format!("HTTP/1.1 200 OK 2001:db8::7 5555 {own} http")
    );
    reader.get_mut().write_all(get).unwrap();
    assert_eq!(
        read_body(&mut reader),
        format!("HTTP/1.1 200 OK 2001:db8::7 5555 {own} http")
    );
    // a second header on the same connection is no request
    reader
        .get_mut()
        .write_all(b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n\r\n")
        .unwrap();
    let status = read_line(&mut reader);
    assert!(status.starts_with("HTTP/1.1 400 "), "{status:?}");
}

#[test]
fn wsgi_refuses_a_connection_without_a_header() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = move |env: &mut Environ, sr: &mut StartResponse<'_>| {
        counted.fetch_add(1, Ordering::SeqCst);
        environ_app(env, sr)
    };
    let server = WsgiServer::builder("127.0.0.1:0", app)
        .proxy_protocol("127.0.0.1")
        .access_log(None)
        .logger(None)
        .build()
        .unwrap();
    server.start().unwrap();
    let mut c = connect(inet(&server));
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_closed_unserved(&mut c);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "tls")]
#[path = "support/tls.rs"]
mod tls_support;

#[cfg(feature = "tls")]
#[test]
fn tls_after_the_header() {
    let cert = tls_support::TestCert::generate();
    let s = server(|b| b.proxy_protocol("127.0.0.1").tls_acceptor(cert.acceptor()));
    let mut c = connect(s.addr());
    let own = c.local_addr().unwrap();
    let src: SocketAddr = "192.0.2.44:2222".parse().unwrap();
    c.write_all(&v2_tcp(
        src,
        "192.0.2.1:443".parse().unwrap(),
        &[0x04, 0, 0],
    ))
    .unwrap();
    let tls = cert
        .connector()
        .connect("localhost", c)
        .expect("TLS handshake after the PROXY header");
    let mut reader = BufReader::new(tls);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        format!("addr={src} peer={src} proxy={own} tls=true\n")
    );
    reader.get_mut().write_all(b"secret\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "secret\n");

    // a TLS client that skips the header is refused before any handshake
    let c = connect(s.addr());
    assert!(cert.connector().connect("localhost", c).is_err());
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_unix_listener_reads_the_header_exactly() {
    let dir = std::env::temp_dir().join(format!("may_gevent-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = StreamServer::builder(listener, describe(calls.clone()))
        .proxy_protocol("unix")
        .logger(None)
        .build()
        .unwrap();
    server.start().unwrap();
    for header in [
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n".to_vec(),
        v2_tcp(
            "192.0.2.1:56324".parse().unwrap(),
            "198.51.100.2:443".parse().unwrap(),
            &[0x04, 0, 1, 9],
        ),
    ] {
        watchdog::arm();
        let c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut reader = BufReader::new(c);
        let mut out = header.clone();
        out.extend_from_slice(b"after the header\n");
        reader.get_mut().write_all(&out).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("addr=192.0.2.1:56324 peer=192.0.2.1:56324 proxy="),
            "{line:?}"
        );
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "after the header\n");
    }
    server.stop(None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stop_ends_a_connection_waiting_for_its_header() {
    let s = server(|b| b.proxy_protocol("127.0.0.1"));
    let mut c = connect(s.addr());
    c.write_all(b"PROXY TCP4 ").unwrap(); // and nothing more
                                          // the connection's coroutine is reading the header
    eventually("the connection is taken", || s.server.pool().len() == 1);
    let server = s.server;
    let t0 = Instant::now();
    within("stop", WAIT, move || {
        server.stop(Some(Duration::from_millis(100)))
    });
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_closed_unserved(&mut c);
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
}
