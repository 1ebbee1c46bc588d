//! Timeouts and size limits: header read timeout (slow clients), keep-alive idle timeout, body
//! read timeout, maximum body size, discard limit.
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{from_fn, AppResult, Environ, StartResponse};
use support::{chunk_encode, read_to_close, serve_with};

const SHORT: Duration = Duration::from_millis(300);

fn hello(_env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    start_response.call("200 OK", &[])?;
    Ok("hello".into())
}

fn canned(code: &str) -> String {
    format!("HTTP/1.1 {code}\r\nConnection: close\r\nContent-Length: 0\r\nDate: X\r\n\r\n")
}

#[test]
fn incomplete_head_gets_408_after_the_header_timeout() {
    let server = serve_with(|c| c.header_read_timeout(SHORT), hello);
    // Timed from before the connect: the server's deadline cannot start earlier.
    let start = Instant::now();
    let mut stream = server.connect();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();
    let text = support::normalize(&read_to_close(&mut stream));
    assert_eq!(text, canned("408 Request Timeout"));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= SHORT - Duration::from_millis(50) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[test]
fn a_trickling_client_is_cut_off_by_the_total_header_deadline() {
    let server = serve_with(|c| c.header_read_timeout(SHORT), hello);
    let start = Instant::now();
    let stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    // one byte every 20 ms: each read succeeds, but the whole head would take seconds
    let trickle = std::thread::spawn(move || {
        for &b in b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut stream = stream;
    let text = support::normalize(&read_to_close(&mut stream));
    assert_eq!(text, canned("408 Request Timeout"));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    support::join_within("the trickling client", support::CLIENT_TIMEOUT, trickle);
}

#[test]
fn a_silent_new_connection_is_closed_without_a_response() {
    let server = serve_with(|c| c.header_read_timeout(SHORT), hello);
    let start = Instant::now();
    let mut stream = server.connect();
    assert!(read_to_close(&mut stream).is_empty());
    // closed by the header timeout, not at once
    let elapsed = start.elapsed();
    assert!(
        elapsed >= SHORT - Duration::from_millis(50) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed_silently() {
    let server = serve_with(|c| c.keepalive_timeout(SHORT), hello);
    let mut client = server.client();
    // Timed from before the request: the idle wait starts after its response.
    let start = Instant::now();
    assert_eq!(client.get("/").body, b"hello");
    client.assert_closed();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= SHORT - Duration::from_millis(50) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(server.access_lines(1).len(), 1);
}

#[test]
fn body_read_timeout_is_a_408() {
    let server = serve_with(
        |c| c.body_read_timeout(SHORT),
        from_fn(|env, start_response| {
            let body = env.input().read_all()?;
            start_response.call("200 OK", &[])?;
            Ok(body.into())
        }),
    );
    let mut stream = server.connect();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let text = support::normalize(&read_to_close(&mut stream));
    assert_eq!(text, canned("408 Request Timeout"));
    assert!(server.records.errors().is_empty());
}

#[test]
fn content_length_over_the_maximum_is_413_before_the_app_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    let server = serve_with(
        |c| c.max_body_size(1000),
        move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            calls2.fetch_add(1, Ordering::SeqCst);
            let body = env.input().read_all()?;
            start_response.call("200 OK", &[])?;
            Ok(body.len().to_string().into())
        },
    );
    let mut stream = server.connect();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let text = support::normalize(&read_to_close(&mut stream));
    assert_eq!(text, canned("413 Content Too Large"));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // within the limit: fine
    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
    client.send(&[b'x'; 1000]);
    assert_eq!(client.read(false).unwrap().body, b"1000");
    // a chunked body growing past the limit
    let body = chunk_encode(&[&"y".repeat(600), &"y".repeat(600), ""], "");
    let mut request = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&body);
    let text = server.raw_text(&request);
    assert_eq!(text, canned("413 Content Too Large"));
}

#[test]
fn unread_bodies_are_discarded_up_to_the_limit() {
    let server = serve_with(|c| c.max_discard(1000), hello);
    let mut client = server.client();
    // small unread body: discarded, the connection goes on
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 500\r\n\r\n");
    client.send(&[b'x'; 500]);
    assert_eq!(client.read(false).unwrap().body, b"hello");
    let body = chunk_encode(&[&"z".repeat(400), ""], "");
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    client.send(&body);
    assert_eq!(client.read(false).unwrap().body, b"hello");
    assert_eq!(client.get("/").body, b"hello");
    // a large unread body: answered, then the connection is closed instead of reading it all
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
    client.send(&[b'x'; 2000]);
    assert_eq!(client.read(false).unwrap().body, b"hello");
    let mut rest = Vec::new();
    let res = client.reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{res:?}");
}

#[test]
fn request_line_and_header_limits_are_configurable() {
    let server = serve_with(|c| c.max_request_line(100).max_header_block(200), hello);
    let text =
        server.raw_text(format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100)).as_bytes());
    assert_eq!(text, canned("414 URI Too Long"));
    let text = server.raw_text(
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(200)
        )
        .as_bytes(),
    );
    assert_eq!(text, canned("431 Request Header Fields Too Large"));
    let text = server.raw_text(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert!(text.ends_with("hello"));
}

#[test]
fn slow_clients_do_not_block_others() {
    // Far beyond the client's timeout: the other client is served while the slow ones are
    // still pending, not once they have timed out.
    let server = serve_with(
        |c| c.header_read_timeout(support::CLIENT_TIMEOUT * 6),
        hello,
    );
    // 50 connections each holding half a request
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = server.connect();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: a").unwrap();
        slow.push(stream);
    }
    let mut client = server.client();
    assert_eq!(client.get("/").body, b"hello");
    // finishing a half-sent request gets it served (gevent example test)
    slow[0].write_all(b"\r\nConnection: close\r\n\r\n").unwrap();
    let text = support::normalize(&read_to_close(&mut slow[0]));
    assert!(text.ends_with("hello"), "{text}");
}
