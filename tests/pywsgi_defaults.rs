//! The defaults a user relies on: their values (through the config getters and the public
//! constants) and, over real sockets, what the server does when each timeout or limit is hit
//! (short configured values where the default is long; the 64 KiB discard limit as it is).
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;
#[cfg(feature = "tls")]
#[path = "support/tls.rs"]
mod tls_support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{
    from_fn, AccessLog, AppResult, Body, Environ, StartResponse, WsgiConfig, WsgiServer,
    BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, KEEPALIVE_TIMEOUT, MAX_DISCARD, WRITE_TIMEOUT,
};
use support::{read_to_close, serve, serve_with, Sink};

/// The configured value of the timeout under test.
const SHORT: Duration = Duration::from_millis(300);
/// The other timeouts, so that only the one under test can expire.
const LONG: Duration = Duration::from_secs(5);
/// A timer may fire a little early (coarse clocks), and a few of the clocks below start just
/// after the server's.
const SLACK: Duration = Duration::from_millis(100);
/// Generous upper margin over a timeout on a loaded machine.
const MARGIN: Duration = Duration::from_secs(3);

fn hello(_env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    start_response.call("200 OK", &[])?;
    Ok("hello".into())
}

fn canned(code: &str) -> String {
    format!("HTTP/1.1 {code}\r\nConnection: close\r\nContent-Length: 0\r\nDate: X\r\n\r\n")
}

fn assert_within(took: Duration, timeout: Duration, what: &str) {
    assert!(
        took >= timeout - SLACK && took < timeout + MARGIN,
        "{what} after {took:?} (timeout {timeout:?})"
    );
}

const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

// the values ----------------------------------------------------------------------------------

#[test]
fn default_timeouts_and_limits_have_their_documented_values() {
    assert_eq!(HEADER_READ_TIMEOUT, Duration::from_secs(10));
    assert_eq!(KEEPALIVE_TIMEOUT, Duration::from_secs(75));
    assert_eq!(BODY_READ_TIMEOUT, Duration::from_secs(30));
    assert_eq!(WRITE_TIMEOUT, Duration::from_secs(30));
    assert_eq!(MAX_DISCARD, 64 * 1024);
    #[cfg(feature = "tls")]
    assert_eq!(may_gevent::HANDSHAKE_TIMEOUT, Duration::from_secs(10));
    for config in [WsgiConfig::new(), WsgiConfig::default()] {
        assert_eq!(
            config.settings().header_read_timeout(),
            Some(HEADER_READ_TIMEOUT)
        );
        assert_eq!(
            config.settings().keepalive_timeout(),
            Some(KEEPALIVE_TIMEOUT)
        );
        assert_eq!(
            config.settings().body_read_timeout(),
            Some(BODY_READ_TIMEOUT)
        );
        assert_eq!(config.settings().write_timeout(), Some(WRITE_TIMEOUT));
        assert_eq!(config.settings().max_discard(), MAX_DISCARD);
        assert_eq!(config.settings().max_body_size(), None);
    }
    // the setters used by the tests below reach the config
    let config = WsgiConfig::new()
        .header_read_timeout(SHORT)
        .keepalive_timeout(SHORT)
        .body_read_timeout(SHORT)
        .write_timeout(SHORT)
        .max_discard(10);
    assert_eq!(config.settings().header_read_timeout(), Some(SHORT));
    assert_eq!(config.settings().keepalive_timeout(), Some(SHORT));
    assert_eq!(config.settings().body_read_timeout(), Some(SHORT));
    assert_eq!(config.settings().write_timeout(), Some(SHORT));
    assert_eq!(config.settings().max_discard(), 10);
}

// header timeout ------------------------------------------------------------------------------

#[test]
fn header_timeout_answers_408_and_counts_from_the_first_byte_of_a_request() {
    let server = serve_with(
        |c| c.header_read_timeout(SHORT).keepalive_timeout(LONG),
        hello,
    );
    // first request of a connection: counted from the connection's start
    let begin = Instant::now();
    let mut stream = server.connect();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();
    let text = support::normalize(&read_to_close(&mut stream));
    assert_eq!(text, canned("408 Request Timeout"));
    assert_within(begin.elapsed(), SHORT, "408 on a new connection");

    // a later request: idle longer than the header timeout is fine (keep-alive timeout), then
    // its head has the whole header timeout from its first byte
    let mut client = server.client();
    assert_eq!(client.get("/").body, b"hello");
    assert_open_and_silent(&client.writer, SHORT * 2);
    let begin = Instant::now();
    client.send(b"GET / HTTP/1.1\r\nHost: loc");
    let resp = client.read(false).unwrap();
    assert_eq!(
        (resp.status, resp.header("Connection")),
        (408, Some("close"))
    );
    assert_within(begin.elapsed(), SHORT, "408 on a keep-alive connection");
    client.assert_closed();
}

/// Nothing arrives on `stream` (neither bytes nor a close) for `quiet`.
fn assert_open_and_silent(stream: &TcpStream, quiet: Duration) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 16];
    let res = (&*stream).read(&mut buf);
    stream
        .set_read_timeout(Some(support::CLIENT_TIMEOUT))
        .unwrap();
    match res {
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected the connection to stay open and silent, got {other:?}"),
    }
}

// keep-alive idle -----------------------------------------------------------------------------

#[test]
fn an_idle_keep_alive_connection_is_closed_silently_after_the_keepalive_timeout() {
    let server = serve_with(
        |c| c.keepalive_timeout(SHORT).header_read_timeout(LONG),
        hello,
    );
    let mut client = server.client();
    let resp = client.get("/");
    assert_eq!(resp.body, b"hello");
    assert_ne!(resp.header("Connection"), Some("close"));
    let begin = Instant::now();
    client.assert_closed(); // EOF with no bytes: no 408 for an idle connection
    assert_within(begin.elapsed(), SHORT, "idle connection closed");
    assert_eq!(server.access_lines(1).len(), 1);
}

// body read timeout ---------------------------------------------------------------------------

#[test]
fn body_read_timeout_fails_the_apps_read_and_ends_the_request_with_408() {
    let (kind_tx, kinds) = mpsc::channel::<io::ErrorKind>();
    let server = serve_with(
        |c| c.body_read_timeout(SHORT).header_read_timeout(LONG),
        move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            let body = env.input().read_all().inspect_err(|err| {
                kind_tx.send(err.kind()).unwrap();
            })?;
            start_response.call("200 OK", &[])?;
            Ok(body.into())
        },
    );
    let mut stream = server.connect();
    let begin = Instant::now();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let text = support::normalize(&read_to_close(&mut stream));
    assert_eq!(text, canned("408 Request Timeout"));
    assert_within(begin.elapsed(), SHORT, "408 for a stalled body");
    // the application saw the timeout before the response was written
    assert_eq!(kinds.try_recv(), Ok(io::ErrorKind::TimedOut));
    assert!(
        server.records.errors().is_empty(),
        "{:?}",
        server.records.errors()
    );
}

// write timeout -------------------------------------------------------------------------------

#[test]
fn write_timeout_closes_a_connection_whose_client_never_reads() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 10_000; // 640 MiB: far more than any socket buffers
    let server = serve_with(
        |c| c.write_timeout(SHORT),
        from_fn(|_env, start_response| {
            start_response.call("200 OK", &[])?;
            Ok(Body::stream((0..CHUNKS).map(|_| vec![b'x'; CHUNK])))
        }),
    );
    let mut stream = server.connect();
    let begin = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // never read: once the socket buffers are full a write blocks, times out, and the server
    // gives up on the connection
    let record = server.record_containing("client disconnected");
    assert_within(begin.elapsed(), SHORT, "write timed out");
    assert!(record.starts_with("DEBUG"), "{record}");
    assert!(
        server.records.errors().is_empty(),
        "{:?}",
        server.records.errors()
    );

    // the connection is closed: reading now gives what the buffers held, then the end
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                assert!(got < 64 * 1024 * 1024, "the server is still sending");
            }
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => break,
            Err(err) => panic!("connection not closed after {got} bytes: {err}"),
        }
    }
    assert!(got > 0, "nothing of the response arrived");
    assert!(
        begin.elapsed() < SHORT * 2 + MARGIN,
        "closed after {:?}",
        begin.elapsed()
    );
}

// discard limit (the default, 64 KiB) ---------------------------------------------------------

/// `POST /` announcing `len` body bytes; the body is sent (or not) separately.
fn post_head(len: u64) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n").into_bytes()
}

#[test]
fn an_unread_body_of_64_kib_is_discarded_and_the_connection_kept_alive() {
    let server = serve(hello); // default max_discard; `hello` never reads the body
    let mut client = server.client();
    client.send(&post_head(MAX_DISCARD));
    // answered before the body is sent: the application did not wait for it
    let resp = client.read(false).unwrap();
    assert_eq!(resp.body, b"hello");
    assert_ne!(resp.header("Connection"), Some("close"));
    client.send(&vec![b'x'; MAX_DISCARD as usize]);
    // the body was thrown away, not parsed as a request: the next request is served
    assert_eq!(client.get("/next").body, b"hello");
    assert_eq!(server.access_lines(2).len(), 2);
}

#[test]
fn an_unread_body_over_64_kib_closes_the_connection_after_the_response() {
    let server = serve(hello);
    let mut client = server.client();
    client.send(&post_head(MAX_DISCARD + 1));
    let resp = client.read(false).unwrap();
    assert_eq!(resp.body, b"hello");
    // closed without the server waiting for the body (none was sent)
    client.assert_closed();
}

// TLS handshake timeout -----------------------------------------------------------------------

#[cfg(feature = "tls")]
#[test]
fn tls_handshake_timeout_drops_a_silent_client_before_the_app_runs() {
    use tls_support::{wait_closed, Closed, TestCert};

    // long enough for the good client's handshake below on a loaded machine (a debug build's
    // handshake took more than 300 ms there)
    const HANDSHAKE: Duration = Duration::from_secs(1);
    support::init();
    let cert = TestCert::generate();
    let records = support::Records::default();
    let (called_tx, called) = mpsc::channel::<()>();
    let (config, _access, _errors) = support::test_config();
    let server = WsgiServer::builder(
        "127.0.0.1:0",
        move |_env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            called_tx.send(()).unwrap();
            start_response.call("200 OK", &[])?;
            Ok("hello".into())
        },
    )
    .config(config.header_read_timeout(LONG))
    .tls_files(&cert.certfile, &cert.keyfile)
    .handshake_timeout(HANDSHAKE)
    .logger(slog::Logger::root(records.clone(), slog::o!()))
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = server.address().and_then(|a| a.as_inet()).unwrap();

    let begin = Instant::now();
    let mut silent = TcpStream::connect(addr).unwrap();
    let closed = wait_closed(&mut silent, support::CLIENT_TIMEOUT);
    assert_within(begin.elapsed(), HANDSHAKE, "silent TLS client dropped");
    assert_eq!(
        closed,
        Closed::Eof(Vec::new()),
        "no bytes for a silent client"
    );
    records
        .0
        .wait_for(|v| v.iter().any(|l| l.contains("tls handshake timed out")));
    let line = records
        .lines()
        .into_iter()
        .find(|l| l.contains("tls handshake timed out"))
        .unwrap();
    assert!(line.starts_with("DEBUG"), "{line}");
    assert!(called.try_recv().is_err(), "the application ran");

    // a client that does its handshake is served
    let mut tls = cert.connect(addr);
    tls.write_all(GET_CLOSE).unwrap();
    let mut reply = Vec::new();
    let _ = tls.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("hello"), "{reply}");
    assert!(called.try_recv().is_ok());
}

// access log off ------------------------------------------------------------------------------

#[test]
fn access_log_off_writes_no_line() {
    // control: with the sink as the access log, each request writes a line to it before the
    // connection is closed
    let sink = Sink::default();
    let on = {
        let sink = sink.clone();
        serve_with(move |c| c.access_log(AccessLog::writer(sink)), hello)
    };
    assert!(support::normalize(&on.raw(GET_CLOSE)).ends_with("hello"));
    assert_eq!(sink.text().lines().count(), 1, "{}", sink.text());

    // the same sink, switched off in the config
    let config_off = |c: WsgiConfig| {
        c.access_log(AccessLog::writer(sink.clone()))
            .access_log(AccessLog::Off)
    };
    assert!(config_off(WsgiConfig::new())
        .settings()
        .access_log()
        .is_off());
    let off = serve_with(config_off, hello);
    let mut client = off.client();
    assert_eq!(client.get("/a").body, b"hello");
    assert!(support::normalize(&off.raw(GET_CLOSE)).ends_with("hello"));

    // and through the builder (gevent: `log=None`)
    support::init();
    let (config, _access, _records) = support::test_config();
    let builder_off = WsgiServer::builder("127.0.0.1:0", hello)
        .config(config.access_log(AccessLog::writer(sink.clone())))
        .access_log(None)
        .build()
        .unwrap();
    builder_off.start().unwrap();
    let addr = builder_off.address().and_then(|a| a.as_inet()).unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(support::CLIENT_TIMEOUT))
        .unwrap();
    stream.write_all(GET_CLOSE).unwrap();
    assert!(support::normalize(&read_to_close(&mut stream)).ends_with("hello"));

    // every response was complete, and the connection closed, after its log line would
    // have been written: still the one line of the control server
    drop(client);
    assert_eq!(sink.text().lines().count(), 1, "{}", sink.text());
    assert_eq!(off.access.text(), "");
    assert!(
        !off.records.lines().iter().any(|l| l.contains("GET /")),
        "{:?}",
        off.records.lines()
    );
}

#[test]
fn access_log_to_a_slog_logger_is_info_records() {
    let records = support::Records::default();
    let logger = slog::Logger::root(records.clone(), slog::o!());
    let server = serve_with(move |c| c.access_log(AccessLog::Logger(logger)), hello);
    server.raw(GET_CLOSE);
    records.0.wait_for(|v| !v.is_empty());
    let line = records.lines().remove(0);
    assert!(line.starts_with("INFO 127.0.0.1 - - ["), "{line}");
    assert!(line.contains("\"GET / HTTP/1.1\" 200 "), "{line}");
    assert_eq!(server.access.text(), "", "the writer was replaced");
}

#[test]
fn every_protocol_setting_is_on_the_builder_and_reaches_the_wire() {
    // Set on the builder itself (no WsgiConfig): a short header timeout answers 408 in time.
    let server = WsgiServer::builder("127.0.0.1:0", hello)
        .header_read_timeout(Duration::from_millis(300))
        .keepalive_timeout(Duration::from_secs(5))
        .body_read_timeout(Duration::from_secs(5))
        .write_timeout(Duration::from_secs(5))
        .max_request_line(4096)
        .max_header_block(32 * 1024)
        .max_body_size(1024u64)
        .max_discard(1024)
        .read_buffer_size(2048)
        .keep_alive(true)
        .server_name("example")
        .server_port("80")
        .server_software("test/1")
        .url_scheme("http")
        .access_log(None)
        .build()
        .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let begin = Instant::now();
    client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let reply = read_to_close(&mut client);
    assert_within(
        begin.elapsed(),
        Duration::from_millis(300),
        "header timeout",
    );
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408 "),
        "{reply:?}"
    );
    // A request line over the builder's limit is a 414.
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(5000));
    client.write_all(long.as_bytes()).unwrap();
    let reply = read_to_close(&mut client);
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 414 "),
        "{reply:?}"
    );
    server.stop(None);
}

#[test]
fn config_after_a_setting_it_would_discard_is_an_error_not_a_silent_overwrite() {
    let err = WsgiServer::builder("127.0.0.1:0", hello)
        .access_log(None)
        .environ("X_ONE", "1")
        .config(WsgiConfig::new())
        .build()
        .unwrap_err();
    assert!(err.is_invalid_config(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("access_log") && message.contains("environ"),
        "{message}"
    );
    // First config(), then settings on top of it: fine.
    let server = WsgiServer::builder("127.0.0.1:0", hello)
        .config(WsgiConfig::new().max_discard(10))
        .access_log(None)
        .build()
        .unwrap();
    drop(server);
    // Two config() calls: the second would discard the first.
    let err = WsgiServer::builder("127.0.0.1:0", hello)
        .config(WsgiConfig::new())
        .config(WsgiConfig::new())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("config"), "{err}");
}
