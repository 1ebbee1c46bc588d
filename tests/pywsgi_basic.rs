//! gevent test__pywsgi scenarios: keep-alive, pipelining, framing, HEAD/204/304, upgrade, write().
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use may_gevent::pywsgi::{from_fn, AppResult, Body, Environ, StartResponse};
use support::{serve, serve_with};

/// gevent's default test app: `/` → `hello world`, anything else → 404 `not found`, both as
/// two-item lists.
fn hello(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        return Ok(vec![b"hello ".to_vec(), b"world".to_vec()].into());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/plain")])?;
    Ok(vec![b"not ".to_vec(), b"found".to_vec()].into())
}

/// The same app with a generator body (gevent TestYield).
fn hello_yield(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        return Ok(Body::stream(vec![b"hello world".to_vec()]));
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/plain")])?;
    Ok(Body::stream(vec![b"not found".to_vec()]))
}

#[test]
fn basic_keep_alive() {
    let server = serve(hello);
    let mut client = server.client();
    let resp = client.get("/");
    assert_eq!((resp.status, resp.reason.as_str()), (200, "OK"));
    assert_eq!(resp.body, b"hello world");
    assert_eq!(resp.header("Content-Length"), Some("11"));
    assert_eq!(resp.header("Connection"), None);
    assert!(resp.chunks.is_none());
    let resp = client.get("/notexist");
    assert_eq!((resp.status, resp.reason.as_str()), (404, "Not Found"));
    assert_eq!(resp.body, b"not found");
    assert_eq!(resp.header("Content-Length"), Some("9"));
    let resp = client.get("/");
    assert_eq!(resp.body, b"hello world");
}

#[test]
fn exact_wire_bytes_one_write() {
    let server = serve(hello);
    let text = server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\nContent-Length: 11\r\n\r\nhello world"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = serve(hello);
    let mut client = server.client();
    client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /notexist HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(client.read(false).unwrap().body, b"hello world");
    assert_eq!(client.read(false).unwrap().body, b"not found");
    // a deep pipeline in one write
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    }
    batch.extend_from_slice(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    client.send(&batch);
    for _ in 0..50 {
        assert_eq!(client.read(false).unwrap().status, 404);
    }
    assert_eq!(client.read(false).unwrap().status, 200);
}

#[test]
fn pipelined_bodies_and_heads_split_anywhere() {
    let server = serve(from_fn(|env, start_response| {
        let body = env.input().read_all()?;
        start_response.call("200 OK", &[])?;
        Ok(body.into())
    }));
    let mut batch = Vec::new();
    for i in 0..10 {
        let body = format!("body-{i}");
        batch.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        batch.extend_from_slice(
            format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
                .as_bytes(),
        );
    }
    // split into odd pieces
    let mut client = server.client();
    for piece in batch.chunks(7) {
        client.send(piece);
    }
    for i in 0..10 {
        assert_eq!(client.read(false).unwrap().body_text(), format!("body-{i}"));
        assert_eq!(client.read(false).unwrap().body_text(), format!("body-{i}"));
    }
}

#[test]
fn connection_close_request_header() {
    let server = serve(hello);
    let mut client = server.client();
    assert_eq!(client.get("/").status, 200);
    client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let resp = client.read(false).unwrap();
    assert_eq!(resp.header("Connection"), Some("close"));
    client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    client.assert_closed();
}

#[test]
fn connection_close_from_the_application() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[("Connection", "close")])?;
        Ok("bye".into())
    }));
    let mut client = server.client();
    let resp = client.get("/");
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.body, b"bye");
    client.assert_closed();
}

#[test]
fn http10_closes_by_default() {
    let server = serve(hello);
    let text = server.raw_text(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\nContent-Length: 11\r\n\r\nhello world"
    );
    // gevent TestLeakInput: no Host header on HTTP/1.0 is fine
    let text = server.raw_text(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
}

#[test]
fn http10_keep_alive_is_echoed() {
    let server = serve(hello);
    let mut client = server.client();
    for path in ["/", "/notexist", "/"] {
        client.send(
            format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
                .as_bytes(),
        );
        let resp = client.read(false).unwrap();
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
        assert_eq!(resp.version, "HTTP/1.1");
    }
}

#[test]
fn explicit_content_length_is_used() {
    let server = serve(from_fn(|env, start_response| {
        assert!(env.input_terminated());
        start_response.call(
            "200 OK",
            &[("Content-Type", "text/plain"), ("Content-Length", "11")],
        )?;
        Ok(vec![b"hello ".to_vec(), b"world".to_vec()].into())
    }));
    let resp = server.client().get("/");
    assert_eq!(resp.header("Content-Length"), Some("11"));
    assert_eq!(resp.body, b"hello world");
}

#[test]
fn generator_body_is_chunked_on_http11() {
    let server = serve(hello_yield);
    let mut client = server.client();
    let resp = client.get("/");
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(resp.chunks, Some(vec![b"hello world".to_vec()]));
    let resp = client.get("/x");
    assert_eq!(resp.body, b"not found");
}

#[test]
fn generator_body_is_close_delimited_on_http10() {
    let chunks = ["this", "is", "chunked"];
    let server = serve(
        move |_env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            Ok(Body::stream(chunks))
        },
    );
    let text =
        server.raw_text(b"GET / HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(text, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\n\r\nthisischunked");
    let mut client = server.client();
    client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let resp = client.read(false).unwrap();
    assert_eq!(
        resp.chunks.unwrap(),
        vec![b"this".to_vec(), b"is".to_vec(), b"chunked".to_vec()]
    );
}

#[test]
fn big_chunks() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[])?;
        Ok(Body::stream(vec![vec![b'a'; 8192]; 3]))
    }));
    let resp = server.client().get("/");
    assert_eq!(resp.chunks.unwrap(), vec![vec![b'a'; 8192]; 3]);
}

#[test]
fn large_buffered_body() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[])?;
        Ok(vec![vec![b'x'; 300_000], vec![b'y'; 5]].into())
    }));
    let mut client = server.client();
    for _ in 0..2 {
        let resp = client.get("/");
        assert_eq!(resp.header("Content-Length"), Some("300005"));
        assert_eq!(resp.body.len(), 300_005);
        assert!(resp.body.ends_with(b"xyyyyy"));
    }
}

#[test]
fn body_close_runs_exactly_once() {
    struct Tracked(Arc<AtomicUsize>, std::vec::IntoIter<Vec<u8>>);
    impl Iterator for Tracked {
        type Item = Vec<u8>;
        fn next(&mut self) -> Option<Vec<u8>> {
            self.1.next()
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let closed = Arc::new(AtomicUsize::new(0));
    let on_close = Arc::new(AtomicUsize::new(0));
    let (c1, c2) = (closed.clone(), on_close.clone());
    let server = serve(
        move |_env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            let c2 = c2.clone();
            Ok(Body::stream(Tracked(
                c1.clone(),
                vec![b"Hello World".to_vec(), b"!".to_vec()].into_iter(),
            ))
            .on_close(move || {
                c2.fetch_add(1, Ordering::SeqCst);
            }))
        },
    );
    let mut client = server.client();
    let resp = client.get("/");
    assert_eq!(
        resp.chunks.unwrap(),
        vec![b"Hello World".to_vec(), b"!".to_vec()]
    );
    assert_eq!(server.access_lines(1).len(), 1);
    assert_eq!(closed.load(Ordering::SeqCst), 1);
    assert_eq!(on_close.load(Ordering::SeqCst), 1);
}

fn use_write(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    match env.path_info() {
        "/explicit-content-length" => {
            let mut write = start_response.call(
                "200 OK",
                &[("Content-Type", "text/plain"), ("Content-Length", "8")],
            )?;
            write.write(b"abcde")?;
        }
        "/no-content-length" => {
            let mut write = start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            write.write(b"abcde")?;
        }
        "/no-content-length-twice" => {
            let mut write = start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            write.write(b"abcde")?;
            write.write(b"abcde")?;
        }
        _ => return Err("Invalid url".into()),
    }
    Ok(vec![b"end".to_vec()].into())
}

#[test]
fn write_callable() {
    let server = serve(use_write);
    let mut client = server.client();
    let resp = client.get("/explicit-content-length");
    assert_eq!(resp.body, b"abcdeend");
    assert_eq!(resp.header("Content-Length"), Some("8"));
    assert_eq!(resp.header("Transfer-Encoding"), None);
    let resp = client.get("/no-content-length");
    assert_eq!(resp.body, b"abcdeend");
    assert_eq!(resp.header("Content-Length"), None);
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    let resp = client.get("/no-content-length-twice");
    assert_eq!(
        resp.chunks.unwrap(),
        vec![b"abcde".to_vec(), b"abcde".to_vec(), b"end".to_vec()]
    );
    let resp = client.get("/other");
    assert_eq!(resp.status, 500);
    client.assert_closed();
}

#[test]
fn head_requests_get_headers_but_never_a_body() {
    let server = serve(hello);
    let mut client = server.client();
    client.send(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = client.read(true).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Length"), Some("11"));
    // the connection is still in sync: the next response starts right away
    let resp = client.get("/");
    assert_eq!(resp.body, b"hello world");
    let yielded = serve(hello_yield);
    let text = yielded.raw_text(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\n\r\n"
    );
    let writer = serve(use_write);
    let text = writer.raw_text(
        b"HEAD /no-content-length HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\n\r\n"
    );
}

#[test]
fn empty_yields() {
    let server = serve(from_fn(|env, start_response| {
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        if env.path_info() == "/first-empty" {
            return Ok(Body::stream(vec![Vec::new(), b"hello".to_vec()]));
        }
        Ok(Body::stream(vec![Vec::<u8>::new(), Vec::new()]))
    }));
    let text = server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(text, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\nContent-Length: 0\r\n\r\n");
    let mut client = server.client();
    let resp = client.get("/first-empty");
    assert_eq!(resp.chunks.unwrap(), vec![b"hello".to_vec()]);
}

#[test]
fn empty_writes_send_only_the_head() {
    let server = serve(from_fn(|_env, start_response| {
        let mut write = start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        write.write(b"")?;
        write.write(b"")?;
        Ok(Body::empty())
    }));
    let text = server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
}

#[test]
fn not_modified_and_no_content() {
    let server = serve(from_fn(|env, start_response| match env.path_info() {
        "/304-empty-yields" => {
            start_response.call("304 Not modified", &[])?;
            Ok(Body::stream(vec![Vec::<u8>::new(), Vec::new()]))
        }
        "/304-content-length" => {
            match start_response.call("304 Not modified", &[("Content-Length", "100")]) {
                Err(err) => {
                    start_response.call("200 Raised", &[])?;
                    Ok(err.to_string().into())
                }
                Ok(_) => Err("start_response did not fail".into()),
            }
        }
        "/304-body" => {
            start_response.call("304 Not modified", &[])?;
            Ok("body".into())
        }
        "/304-write" => {
            let mut write = start_response.call("304 Not modified", &[])?;
            let err = write.write(b"body").unwrap_err();
            assert_eq!(err.to_string(), "The 304 response must have no body");
            Err(err.into())
        }
        _ => {
            start_response.call("204 No Content", &[("Content-Length", "0")])?;
            Ok(Body::empty())
        }
    }));
    let text = server.raw_text(
        b"GET /304-empty-yields HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        text,
        "HTTP/1.1 304 Not modified\r\nConnection: close\r\nDate: X\r\n\r\n"
    );
    let mut client = server.client();
    let resp = client.get("/304-content-length");
    assert_eq!((resp.status, resp.reason.as_str()), (200, "Raised"));
    assert_eq!(
        resp.body_text(),
        "Invalid Content-Length for 304 response: '100' (must be absent or zero)"
    );
    let resp = client.get("/204");
    assert_eq!(resp.status, 204);
    assert_eq!(
        resp.header("Content-Length"),
        None,
        "RFC 9110 8.6: no Content-Length on 204"
    );
    let resp = client.get("/304-body");
    assert_eq!(resp.status, 500);
    let resp = server.client().get("/304-write");
    assert_eq!(resp.status, 500);
    let record = server.record_containing("The 304 response must have no body");
    assert!(record.starts_with("ERROR"), "{record}");
}

fn websocket(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/echo" {
        assert!(!env.input_terminated());
        let mut write = start_response.call(
            "101 Switching Protocols",
            &[("Upgrade", "echo"), ("Connection", "Upgrade")],
        )?;
        write.write(b"")?;
        // raw echo of each line until "bye"
        let mut line = Vec::new();
        loop {
            line.clear();
            std::io::BufRead::read_until(env.input(), b'\n', &mut line)?;
            let mut write = start_response.writer()?;
            write.write(&line)?;
            if line.is_empty() || line == b"bye\n" {
                break;
            }
        }
        return Ok(Body::empty());
    }
    let mut write = start_response.call(
        "101 Switching Protocols",
        &[("Content-Type", "text/plain"), ("Connection", "close")],
    )?;
    write.write(b"")?;
    Ok(vec![b"upgrading to".to_vec(), b"websocket".to_vec()].into())
}

#[test]
fn connection_upgrade() {
    let server = serve(websocket);
    for header in ["Connection: upgrade", "Upgrade: websocket"] {
        let text = server.raw_text(
            format!("GET /websocket HTTP/1.1\r\nHost: localhost\r\n{header}\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\n\r\nupgrading towebsocket"
        );
    }
}

#[test]
fn upgrade_hands_over_the_raw_connection() {
    let server = serve(websocket);
    let mut client = server.client();
    // the first raw bytes arrive together with the request head
    client.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello\n");
    let resp = client.read(true).unwrap();
    assert_eq!(resp.status, 101);
    assert_eq!(resp.header("Upgrade"), Some("echo"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut client.reader, &mut line).unwrap();
    assert_eq!(line, "hello\n");
    client.send(b"0\r\n\r\nnot chunked\n");
    line.clear();
    std::io::BufRead::read_line(&mut client.reader, &mut line).unwrap();
    assert_eq!(line, "0\r\n");
    client.send(b"bye\n");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut client.reader, &mut rest).unwrap();
    assert_eq!(rest, "\r\nnot chunked\nbye\n");
}

#[test]
fn switching_protocols_needs_an_upgrade_request() {
    let server = serve(websocket);
    let resp = server.client().get("/websocket");
    assert_eq!(resp.status, 500);
    assert!(server
        .record_containing("only for an HTTP/1.1 request asking for an upgrade")
        .starts_with("ERROR"));
}

#[test]
fn start_response_can_be_replaced_before_the_head_is_sent() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("500 Oops", &[("X-First", "1")])?;
        start_response.call("200 OK", &[("X-Second", "2")])?;
        Ok("ok".into())
    }));
    let resp = server.client().get("/");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("X-First"), None);
    assert_eq!(resp.header("X-Second"), Some("2"));
}

#[test]
fn serve_with_keep_alive_disabled() {
    let server = serve_with(|c| c.keep_alive(false), hello);
    let mut client = server.client();
    let resp = client.get("/");
    assert_eq!(resp.header("Connection"), Some("close"));
    client.assert_closed();
}
