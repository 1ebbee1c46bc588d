//! `may_gevent::wsgi::WsgiServer` (may_minihttp's engine) serving pywsgi applications: routing,
//! environ keys, bodies, errors, keep-alive, pipelining, response headers, stop/close/bind.
//! Real sockets on 127.0.0.1; every wait is bounded.
#![allow(missing_docs)]

mod wsgi_minihttp_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{from_fn, AppResult, Body, Environ, StartResponse};
use may_gevent::wsgi::WsgiServer;
use wsgi_minihttp_support::{init, read_response, read_to_close, serve, serve_with};

fn hello(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

#[test]
fn routes_and_answers_404() {
    let s = serve(hello);
    let mut c = s.client();
    let ok = c.get("/");
    assert_eq!(
        (ok.status, ok.body_text().as_str()),
        (200, "<b>hello world</b>")
    );
    assert_eq!(ok.header("Content-Type"), Some("text/html"));
    assert_eq!(ok.header("Content-Length"), Some("18"));
    assert_eq!(ok.header("Server"), Some("M"), "may_minihttp's own header");
    assert!(ok.header("Date").is_some());
    let missing = c.get("/missing");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.reason, "Not Found");
    assert_eq!(missing.body_text(), "<h1>Not Found</h1>");
    // the access log is pywsgi's
    let lines = s.access_lines_like(2);
    assert!(lines[0].contains("\"GET / HTTP/1.1\" 200 "), "{lines:?}");
    assert!(
        lines[1].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{lines:?}"
    );
}

trait AccessLines {
    fn access_lines_like(&self, n: usize) -> Vec<String>;
}

impl AccessLines for wsgi_minihttp_support::Mini {
    fn access_lines_like(&self, n: usize) -> Vec<String> {
        self.access
            .0
            .wait_for(|v| v.iter().filter(|&&b| b == b'\n').count() >= n);
        self.access.text().lines().map(str::to_owned).collect()
    }
}

fn environ_dump(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let mut out = String::new();
    for key in [
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "RAW_URI",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "HTTP_HOST",
        "HTTP_X_CUSTOM",
        "HTTP_COOKIE",
        "wsgi.url_scheme",
        "EXTRA",
    ] {
        out.push_str(&format!("{key}={}\n", env.get(key).unwrap_or("<none>")));
    }
    let body = env.input().read_all()?;
    out.push_str(&format!("body={}\n", String::from_utf8_lossy(&body)));
    start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
    Ok(out.into())
}

#[test]
fn environ_keys_are_pywsgis() {
    let s = serve_with(|b| b.environ("EXTRA", "yes"), environ_dump);
    let mut c = s.client();
    let local_port = c.writer.local_addr().unwrap().port();
    c.send(
        b"POST /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.org:81\r\nX-Custom: v1\r\n\
          Cookie: a=1\r\nCookie: b=2\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    );
    let resp = c.read(false).unwrap();
    assert_eq!(resp.status, 200);
    let text = resp.body_text();
    let port = s.addr.port();
    for line in [
        "REQUEST_METHOD=POST".to_owned(),
        "SCRIPT_NAME=".to_owned(),
        "PATH_INFO=/a b/c".to_owned(),
        "QUERY_STRING=x=1&y=%20".to_owned(),
        "RAW_URI=/a%20b/c?x=1&y=%20".to_owned(),
        "SERVER_NAME=localhost".to_owned(),
        format!("SERVER_PORT={port}"),
        "SERVER_PROTOCOL=HTTP/1.1".to_owned(),
        "REMOTE_ADDR=127.0.0.1".to_owned(),
        format!("REMOTE_PORT={local_port}"),
        "CONTENT_TYPE=text/plain".to_owned(),
        "CONTENT_LENGTH=5".to_owned(),
        "HTTP_HOST=example.org:81".to_owned(),
        "HTTP_X_CUSTOM=v1".to_owned(),
        "HTTP_COOKIE=a=1; b=2".to_owned(),
        "wsgi.url_scheme=http".to_owned(),
        "EXTRA=yes".to_owned(),
        "body=hello".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(text.contains("SERVER_SOFTWARE=may_gevent/"), "{text}");
}

fn echo(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let body = env.input().read_all()?;
    start_response.call("200 OK", &[("Content-Type", "application/octet-stream")])?;
    Ok(body.into())
}

#[test]
fn post_bodies_with_content_length_small_and_large() {
    let s = serve(echo);
    let mut c = s.client();
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert_eq!(c.read(false).unwrap().body, b"abc");
    // 300 KB, written in pieces: read whole before the application runs
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    c.send(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    );
    for piece in big.chunks(7000) {
        c.send(piece);
    }
    let resp = c.read(false).unwrap();
    assert_eq!(resp.body.len(), big.len());
    assert!(resp.body == big);
    // empty body, then a GET on the same connection: the framing held
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read(false).unwrap().body, b"");
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read(false).unwrap().status, 200);
}

#[test]
fn an_unread_body_does_not_become_the_next_request() {
    let s = serve(hello);
    let mut c = s.client();
    // the application never reads this body: its bytes must not be parsed as a request
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read(false).unwrap().status, 200);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read(false).unwrap().status, 200);
    let lines = s.access_lines_like(2);
    assert!(!lines.iter().any(|l| l.contains("smuggled")), "{lines:?}");
}

#[test]
fn body_over_the_maximum_is_413_and_closes() {
    let s = serve_with(|b| b.max_body_size(10), echo);
    let raw = s.raw(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    let mut c = s.client();
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_eq!(c.read(false).unwrap().body, b"0123456789");
}

#[test]
fn application_errors_and_panics_are_500_and_the_server_keeps_serving() {
    let s = serve(from_fn(|env, start_response| {
        match env.path_info() {
            "/error" => return Err("application failed".into()),
            "/panic" => panic!("application panicked on purpose"),
            "/late" => {
                start_response.call("200 OK", &[])?;
                return Ok(Body::try_stream(vec![
                    Ok(b"part".to_vec()),
                    Err(std::io::Error::other("stream failed")),
                ]));
            }
            _ => {}
        }
        hello(env, start_response)
    }));
    for path in ["/error", "/panic", "/late"] {
        let mut c = s.client();
        let resp = c.get(path);
        assert_eq!(resp.status, 500, "{path}: {resp:?}");
        assert!(
            !resp.body_text().contains("failed"),
            "no error text to the client"
        );
        s.assert_serving();
    }
    let errors = s.records.errors();
    assert!(
        errors.iter().any(|l| l.contains("application failed")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|l| l.contains("panicked on purpose")),
        "{errors:?}"
    );
}

#[test]
fn streamed_bodies_and_write_calls_are_collected() {
    let s = serve(from_fn(|env, start_response| {
        if env.path_info() == "/write" {
            let mut write = start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            write.write(b"written ")?;
            return Ok(Body::stream(vec!["and ", "returned"]));
        }
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Ok(Body::stream(vec!["a", "", "bc", "def"]))
    }));
    let mut c = s.client();
    let resp = c.get("/");
    assert_eq!(resp.header("Content-Length"), Some("6"));
    assert!(resp.header("Transfer-Encoding").is_none());
    assert_eq!(resp.body_text(), "abcdef");
    let resp = c.get("/write");
    assert_eq!(resp.body_text(), "written and returned");
}

#[test]
fn keep_alive_and_pipelining() {
    let s = serve(from_fn(|env, start_response| {
        let path = env.path_info().to_owned();
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Ok(path.into())
    }));
    let mut c = s.client();
    for i in 0..5 {
        assert_eq!(c.get(&format!("/k{i}")).body_text(), format!("/k{i}"));
    }
    let mut batch = Vec::new();
    for i in 0..16 {
        batch.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    c.send(&batch);
    for i in 0..16 {
        assert_eq!(c.read(false).unwrap().body_text(), format!("/p{i}"));
    }
}

#[test]
fn response_headers_differ_per_response_and_may_exceed_16() {
    let counter = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&counter);
    let s = serve(from_fn(move |_env, start_response| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let cookie = format!("session={n}");
        let location = format!("/next/{n}");
        let mut headers: Vec<(String, String)> = (0..30)
            .map(|i| (format!("X-H{i}"), format!("{n}-{i}")))
            .collect();
        headers.push(("Set-Cookie".into(), cookie));
        headers.push(("Location".into(), location));
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        start_response.call("302 Found", &refs)?;
        Ok(format!("body {n}").into())
    }));
    let mut c = s.client();
    let mut batch = Vec::new();
    for _ in 0..40 {
        batch.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    c.send(&batch);
    for _ in 0..40 {
        let resp = c.read(false).unwrap();
        assert_eq!((resp.status, resp.reason.as_str()), (302, "Found"));
        let n: usize = resp.body_text()["body ".len()..].parse().unwrap();
        assert_eq!(
            resp.header("Set-Cookie"),
            Some(format!("session={n}").as_str())
        );
        assert_eq!(resp.header("Location"), Some(format!("/next/{n}").as_str()));
        for i in 0..30 {
            assert_eq!(
                resp.header(&format!("X-H{i}")),
                Some(format!("{n}-{i}").as_str())
            );
        }
    }
}

#[test]
fn head_has_no_body() {
    let s = serve(hello);
    let mut c = s.client();
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = c.read(true).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Length"),
        Some("0"),
        "may_minihttp's framing"
    );
    assert_eq!(
        c.get("/").body_text(),
        "<b>hello world</b>",
        "nothing was left behind"
    );
}

#[test]
fn connection_close_and_http10_close_after_the_response() {
    let s = serve(hello);
    for request in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\n\r\n",
    ] {
        let raw = s.raw(request);
        let resp = read_response(&mut &raw[..], false).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Connection"), Some("close"));
        assert_eq!(resp.body_text(), "<b>hello world</b>");
    }
    // HTTP/1.0 with keep-alive stays open
    let mut c = s.client();
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read(false).unwrap().status, 200);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read(false).unwrap().status, 200);
}

#[test]
fn requests_pipelined_after_a_close_do_not_reach_the_application() {
    let s = serve(hello);
    let raw = s.raw(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let mut reader = &raw[..];
    assert_eq!(read_response(&mut reader, false).unwrap().status, 200);
    if !reader.is_empty() {
        assert_eq!(read_response(&mut reader, false).unwrap().status, 400);
    }
    let lines = s.access_lines_like(1);
    assert!(!lines.iter().any(|l| l.contains("/after")), "{lines:?}");
}

#[test]
fn port_in_use_is_a_bind_error() {
    init();
    // a plain listener
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = WsgiServer::builder(taken.local_addr().unwrap(), hello)
        .access_log(None)
        .build()
        .unwrap();
    let err = server.start().unwrap_err();
    assert!(err.is_addr_in_use(), "{err:?}");
    // another may_minihttp-based server (SO_REUSEPORT): not shared silently
    let first = WsgiServer::builder("127.0.0.1:0", hello)
        .access_log(None)
        .build()
        .unwrap();
    first.start().unwrap();
    let second = WsgiServer::builder(first.local_addr().unwrap(), hello)
        .access_log(None)
        .build()
        .unwrap();
    let err = second.start().unwrap_err();
    assert!(err.is_addr_in_use(), "{err:?}");
    assert!(!second.started());
    first.stop(None);
}

fn connect_refused(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err()
}

#[test]
fn close_refuses_new_connections_and_stop_ends_idle_ones() {
    let s = serve(hello);
    let mut idle = s.client();
    assert_eq!(idle.get("/").status, 200);
    s.server.close();
    assert!(!s.server.started());
    assert!(connect_refused(s.addr), "the listener is closed");
    // an open connection is still served after close(), told to close
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = idle.read(false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Connection"), Some("close"));
    idle.assert_closed();

    let s = serve(hello);
    let mut idle = s.client();
    assert_eq!(idle.get("/").status, 200);
    let t0 = Instant::now();
    s.server.stop(Duration::from_secs(5));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "idle connections end at once"
    );
    idle.assert_closed();
    assert_eq!(s.server.connections(), 0);
}

#[test]
fn stop_lets_a_running_request_finish_with_connection_close() {
    let (entered_tx, entered_rx) = may::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = may::sync::mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let s = serve(from_fn(move |_env, start_response| {
        let _ = entered_tx.send(());
        let _ = release_rx.lock().unwrap().recv();
        start_response.call("200 OK", &[])?;
        Ok("finished".into())
    }));
    let mut busy = s.client();
    busy.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    entered_rx.recv().unwrap();
    let handle = s.server.handle();
    let stopper = std::thread::spawn(move || handle.stop(Duration::from_secs(8)));
    // the listener closes first
    let deadline = Instant::now() + Duration::from_secs(5);
    while !connect_refused(s.addr) {
        assert!(Instant::now() < deadline, "listener still open");
        std::thread::yield_now();
    }
    release_tx.send(()).unwrap();
    let resp = busy.read(false).unwrap();
    assert_eq!(resp.body_text(), "finished");
    assert_eq!(resp.header("Connection"), Some("close"));
    busy.assert_closed();
    stopper.join().unwrap();
    assert_eq!(s.server.connections(), 0);
}

#[test]
fn serve_forever_returns_after_a_handle_stops_it() {
    init();
    let server = WsgiServer::builder("127.0.0.1:0", hello)
        .access_log(None)
        .handle_signals(false)
        .build()
        .unwrap();
    server.start().unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let client = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let reply = read_to_close(&mut stream);
        handle.stop(None);
        reply
    });
    server.serve_forever().unwrap();
    let reply = client.join().unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 200 Ok\r\n"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(!server.started());
    assert!(connect_refused(addr));
}

#[test]
fn restart_after_stop_on_the_same_port() {
    let s = serve(hello);
    s.server.stop(None);
    s.server.start().unwrap();
    assert_eq!(s.server.local_addr(), Some(s.addr));
    let mut stream = s.connect();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 200 Ok\r\n"));
    // closed (not stopped), then started again
    s.server.close();
    assert!(connect_refused(s.addr));
    s.server.start().unwrap();
    let mut stream = s.connect();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 200 Ok\r\n"));
}

#[test]
fn init_socket_resolves_the_port_before_start() {
    init();
    let server = WsgiServer::builder("127.0.0.1:0", hello)
        .access_log(None)
        .build()
        .unwrap();
    server.init_socket().unwrap();
    let addr = server.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    assert!(!server.started());
    server.start().unwrap();
    assert_eq!(server.local_addr(), Some(addr));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(read_to_close(&mut stream).starts_with(b"HTTP/1.1 200 Ok\r\n"));
}

#[test]
fn an_upgrade_cannot_be_served_and_becomes_a_500() {
    let s = serve(from_fn(|env, start_response| {
        if env.header("upgrade").is_some() {
            start_response.call("101 Switching Protocols", &[("Upgrade", "websocket")])?;
            return Ok(Body::empty());
        }
        hello(env, start_response)
    }));
    let mut c = s.client();
    c.send(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    let resp = c.read(false).unwrap();
    assert_eq!(resp.status, 500, "{resp:?}");
    assert!(resp.header("Upgrade").is_none());
    s.assert_serving();
}
