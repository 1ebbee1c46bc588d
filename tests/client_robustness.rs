//! The HTTP client against malformed upstream responses, served as raw bytes from a local TCP
//! listener: each is an `Err` that says what was wrong (never a panic, never a hang), and a
//! connection that carried a bad response is never reused.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;

use may_gevent::client::{Client, Error};
use support::{join_within, WAIT};

/// Serves `replies` in turn, one per connection: reads the request head, writes the reply,
/// closes. Returns the address and a thread that reports the requests it read.
fn raw_upstream(replies: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for reply in replies {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(WAIT)).unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            requests.push(String::from_utf8_lossy(&head).into_owned());
            let _ = conn.write_all(&reply);
        }
        requests
    });
    (addr, thread)
}

fn client() -> Client {
    Client::builder()
        .read_timeout(WAIT)
        .max_header_size(8 * 1024)
        .max_body_size(1024)
        .build()
}

/// GET one raw reply and read its body; the error (or the body) it gave.
fn fetch(reply: &[u8]) -> Result<(u16, Vec<u8>), Error> {
    let (addr, thread) = raw_upstream(vec![reply.to_vec()]);
    let result = client()
        .get(&format!("http://{addr}/x"))
        .and_then(|r| Ok((r.status(), r.bytes()?)));
    join_within("raw upstream", WAIT, thread);
    result
}

fn assert_invalid(reply: &[u8], needle: &str) {
    match fetch(reply) {
        Err(err) => {
            assert!(
                err.is_invalid_response(),
                "{:?}: {err:?}",
                String::from_utf8_lossy(reply)
            );
            let text = format!("{err:?}");
            assert!(text.contains(needle), "{text:?} lacks {needle:?}");
            assert!(
                text.contains("GET http://127.0.0.1:"),
                "context in {text:?}"
            );
        }
        Ok(ok) => panic!("{:?} gave {ok:?}", String::from_utf8_lossy(reply)),
    }
}

#[test]
fn bad_status_lines() {
    assert_invalid(b"HTTP/1.1 abc OK\r\n\r\n", "bad status line");
    assert_invalid(b"FOO 200 OK\r\n\r\n", "bad status line");
    assert_invalid(b"HTTP/2.0 200 OK\r\n\r\n", "bad status line");
    assert_invalid(b"HTTP/1.1 20 OK\r\n\r\n", "bad status line");
    assert_invalid(b"\x00\x01\x02garbage\r\n\r\n", "bad status line");
    assert_invalid(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n", "bad head");
}

#[test]
fn bad_chunking() {
    let te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_invalid(format!("{te}zz\r\n").as_bytes(), "bad chunked body");
    assert_invalid(
        format!("{te}3\r\nabcX\r\n0\r\n\r\n").as_bytes(),
        "bad chunked body",
    );
    assert_invalid(format!("{te}3\nabc\r\n").as_bytes(), "bad chunked body");
    assert_invalid(
        format!("{te}ffffffffffffffffff\r\n").as_bytes(),
        "bad chunked body",
    );
    assert_invalid(
        format!("{te}5\r\nab").as_bytes(),
        "closed inside the chunked body",
    );
    assert_invalid(
        format!("{te}2\r\nab\r\n").as_bytes(),
        "closed inside the chunked body",
    );
    let te2 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n";
    assert_invalid(te2.as_bytes(), "chunked applied twice");
    // a good one for contrast, with an extension and a trailer
    let good = format!("{te}2;x=y\r\nok\r\n0\r\nT: v\r\n\r\n");
    assert_eq!(fetch(good.as_bytes()).unwrap(), (200, b"ok".to_vec()));
}

#[test]
fn oversized_heads_and_bodies() {
    let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    match fetch(big.as_bytes()) {
        Err(Error::HeadersTooLarge { limit: 8192, .. }) => {}
        other => panic!("{other:?}"),
    }
    let many: String = (0..150).map(|i| format!("H{i}: v\r\n")).collect();
    assert_invalid(
        format!("HTTP/1.1 200 OK\r\n{many}\r\n").as_bytes(),
        "header fields",
    );
    let body = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n{}",
        "b".repeat(2000)
    );
    match fetch(body.as_bytes()) {
        Err(Error::BodyTooLarge { limit: 1024, .. }) => {}
        other => panic!("{other:?}"),
    }
    let close = format!("HTTP/1.1 200 OK\r\n\r\n{}", "c".repeat(2000));
    assert!(matches!(
        fetch(close.as_bytes()),
        Err(Error::BodyTooLarge { .. })
    ));
}

#[test]
fn early_closes() {
    assert_invalid(b"", "connection closed before any response");
    assert_invalid(
        b"HTTP/1.1 200 OK\r\nContent-Le",
        "closed inside the response head",
    );
    assert_invalid(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        "closed after 3 of 10 body bytes",
    );
}

#[test]
fn bad_content_lengths() {
    for (cl, why) in [
        ("abc", "bad Content-Length"),
        ("-1", "bad Content-Length"),
        ("+5", "bad Content-Length"),
        ("5, 6", "conflicting Content-Length"),
        ("99999999999999999999999", "bad Content-Length"),
    ] {
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\nhello");
        assert_invalid(reply.as_bytes(), why);
    }
    let both = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_invalid(both.as_bytes(), "both Transfer-Encoding and Content-Length");
    // identical repeated values are one length
    let same = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(fetch(same.as_bytes()).unwrap(), (200, b"ok".to_vec()));
}

#[test]
fn valid_odd_responses() {
    // interim 1xx responses are skipped
    let reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(fetch(reply).unwrap(), (200, b"ok".to_vec()));
    // HTTP/1.0, body delimited by the close
    let reply = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
    assert_eq!(fetch(reply).unwrap(), (200, b"until close".to_vec()));
    // 204 and 304 have no body whatever they announce
    let reply = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(fetch(reply).unwrap(), (204, Vec::new()));
    // an empty reason phrase
    let reply = b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n";
    assert_eq!(fetch(reply).unwrap(), (200, Vec::new()));
}

#[test]
fn a_connection_with_bytes_after_the_response_is_not_reused() {
    // two responses in one write; the second is not ours to read: that connection is dropped,
    // so the next request opens a new one (the upstream serves a second connection)
    let first = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\n\r\n".to_vec();
    let second = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb".to_vec();
    let (addr, thread) = raw_upstream(vec![first, second]);
    let client = client();
    let url = format!("http://{addr}/");
    assert_eq!(client.get(&url).unwrap().bytes().unwrap(), b"a");
    assert_eq!(client.idle_connections(), 0);
    assert_eq!(client.get(&url).unwrap().bytes().unwrap(), b"b");
    let requests = join_within("raw upstream", WAIT, thread);
    assert_eq!(requests.len(), 2);
    assert!(
        requests[0].starts_with("GET / HTTP/1.1\r\nHost: 127.0.0.1:"),
        "{requests:?}"
    );
}

#[test]
fn a_stale_pooled_connection_is_replaced_for_a_get() {
    // the upstream answers keep-alive, then closes the idle connection; the next GET retries
    // once on a new connection instead of failing
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        for (i, body) in [b"1", b"2"].iter().enumerate() {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(WAIT)).unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n";
            conn.write_all(reply).unwrap();
            conn.write_all(*body).unwrap();
            if i == 0 {
                drop(conn);
                closed_tx.send(()).unwrap();
            }
        }
    });
    let client = client();
    let url = format!("http://{addr}/");
    assert_eq!(client.get(&url).unwrap().bytes().unwrap(), b"1");
    closed_rx.recv_timeout(WAIT).unwrap();
    assert_eq!(client.get(&url).unwrap().bytes().unwrap(), b"2");
    join_within("raw upstream", WAIT, thread);
}

#[test]
fn endless_interim_responses_are_an_error() {
    let reply = "HTTP/1.1 100 Continue\r\n\r\n".repeat(20);
    assert_invalid(reply.as_bytes(), "interim (1xx) responses");
}
