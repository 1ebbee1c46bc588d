//! Strict parsing over the wire (RFC 9112) and request-smuggling scenarios (gevent CVE-2023-41419,
//! #2075 and the CL/TE family).
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use may_gevent::pywsgi::{AppResult, Environ, StartResponse};
use support::{serve, TestServer};

/// An app that counts its calls and echoes the body it reads fully (or 6 bytes on `/a`).
fn counting() -> (TestServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    let server = serve(
        move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            calls2.fetch_add(1, Ordering::SeqCst);
            let body = if env.path_info() == "/a" {
                let mut buf = vec![0u8; 6];
                let n = std::io::Read::read(env.input(), &mut buf)?;
                buf.truncate(n);
                buf
            } else {
                env.input().read_all()?
            };
            start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            Ok(body.into())
        },
    );
    (server, calls)
}

fn canned(code: &str) -> String {
    format!("HTTP/1.1 {code}\r\nConnection: close\r\nContent-Length: 0\r\nDate: X\r\n\r\n")
}

/// Sends `request`, expects exactly the canned `code` response and a close, and that the app did
/// not run.
fn assert_rejected(request: &[u8], code: &str) {
    let (server, calls) = counting();
    let text = server.raw_text(request);
    assert_eq!(
        text,
        canned(code),
        "request {:?}",
        String::from_utf8_lossy(request)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn content_length_and_transfer_encoding_together() {
    // gevent test_229_incorrect_chunk_no_newline / _non_hex: gevent lets TE win; RFC 9112 6.1
    // allows rejecting, and we do (then close)
    assert_rejected(
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n{\"hi\": \"ho\"}",
        "400 Bad Request",
    );
    assert_rejected(
        b"POST /a HTTP/1.1\r\nHost: localhost\r\ntransfer-encoding: Chunked\r\nContent-Length:0\r\n\r\n4\r\nthis\r\n0\r\n\r\n",
        "400 Bad Request",
    );
}

#[test]
fn content_length_rules() {
    for value in [
        "-100",
        "abc",
        "+3",
        "1, 1",
        " 0x10",
        "1_0",
        "99999999999999999999",
    ] {
        let request =
            format!("GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: {value}\r\n\r\n");
        assert_rejected(request.as_bytes(), "400 Bad Request");
    }
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "400 Bad Request",
    );
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "400 Bad Request",
    );
    assert_rejected(
        b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        "400 Bad Request",
    );
}

#[test]
fn transfer_encoding_rules() {
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "400 Bad Request",
    );
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "400 Bad Request",
    );
    assert_rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "400 Bad Request");
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "501 Not Implemented",
    );
    assert_rejected(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "400 Bad Request",
    );
}

#[test]
fn header_syntax_rules() {
    for request in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        // gevent #116 multi-line header: obs-fold is rejected here (RFC 9112 5.2 allows that)
        b"POST / HTTP/1.0\r\nHost: localhost\r\nContent-Type: multipart/related; boundary=\"====XXXX====\";\r\n type=\"text/xml\";start=\"test.submit\"\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    ] {
        assert_rejected(request, "400 Bad Request");
    }
}

#[test]
fn request_line_rules() {
    for request in [
        &b"GET / HTTP %\r\n\r\n"[..],
        b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / FOO/1.1\r\nHost: a\r\n\r\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
        b"<policy-file-request/>\0",
    ] {
        assert_rejected(request, "400 Bad Request");
    }
    for request in [
        &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
    ] {
        assert_rejected(request, "505 HTTP Version Not Supported");
    }
}

#[test]
fn long_request_line_is_414_and_the_client_reads_it() {
    // gevent Test414: 20 000 characters; the rest of the line is still unread when we answer
    let request = format!(
        "GET /{} HTTP/1.0\r\nHello: world\r\n\r\n",
        "x".repeat(20_000)
    );
    assert_rejected(request.as_bytes(), "414 URI Too Long");
}

#[test]
fn too_many_or_too_large_headers_is_431() {
    let mut request = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..100 {
        request.push_str(&format!("X-{i}: v\r\n"));
    }
    request.push_str("\r\n");
    assert_rejected(request.as_bytes(), "431 Request Header Fields Too Large");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(70_000)
    );
    assert_rejected(request.as_bytes(), "431 Request Header Fields Too Large");
}

#[test]
fn bad_chunked_framing_is_400() {
    for body in [
        &b"{\"hi\": \"ho\"}\r\n"[..],
        b"2 \r\noh\r\n0\r\n\r\n",
        b"2\r\nohx\r\n0\r\n\r\n",
        b"2\noh\r\n0\r\n\r\n",
    ] {
        let (server, calls) = counting();
        let mut request =
            b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        let text = server.raw_text(&request);
        assert_eq!(
            text,
            canned("400 Bad Request"),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(server.records.errors().is_empty());
    }
    // gevent test_229_incorrect_chunk_token_ext_too_long, and a NUL in an extension
    let long_ext = format!("2;token={}\r\noh\r\n0\r\n\r\n", "_oh_hi".repeat(4000));
    for body in [
        long_ext.as_bytes(),
        b"2; here is dirt\0bla\r\noh\r\n0\r\n\r\n",
    ] {
        let (server, _) = counting();
        let mut request =
            b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        assert_eq!(server.raw_text(&request), canned("400 Bad Request"));
    }
}

const CHUNKED_A: &[u8] = b"POST /a HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\noh\r\n4\r\n hai\r\n";

#[test]
fn trailers_close_ignored() {
    let (server, calls) = counting();
    let mut client = server.client();
    // as gevent's test: the request says close; the "trailers" are syntactically valid ones
    let mut data = CHUNKED_A.to_vec();
    data.splice(47..57, b"close".iter().copied());
    assert!(data.starts_with(b"POST /a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"));
    data.extend_from_slice(
        b"0\r\nGETpath2a:123 HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n",
    );
    client.send(&data);
    assert_eq!(client.read(false).unwrap().body, b"oh hai");
    client.assert_closed();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn trailers_too_long() {
    let (server, _) = counting();
    let mut client = server.client();
    let mut data = CHUNKED_A.to_vec();
    data.extend_from_slice(b"0\r\ntrailer2: value2");
    data.extend(std::iter::repeat_n(b't', 8192));
    client.send(&data);
    assert_eq!(client.read(false).unwrap().body, b"oh hai");
    client.assert_closed();
}

#[test]
fn trailers_request_smuggling_missing_last_chunk_keep_alive() {
    let (server, calls) = counting();
    let mut client = server.client();
    let mut data = CHUNKED_A.to_vec();
    data.extend_from_slice(
        b"0GET /path2?a=:123 HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n",
    );
    client.send(&data);
    assert_eq!(client.read(false).unwrap().body, b"oh hai");
    client.assert_closed();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn trailers_request_smuggling_header_first() {
    let (server, calls) = counting();
    let mut client = server.client();
    let mut data = CHUNKED_A.to_vec();
    data.extend_from_slice(b"0\r\nHeader: value\r\nGET /path2?a=:123 HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n");
    client.send(&data);
    assert_eq!(client.read(false).unwrap().body, b"oh hai");
    client.assert_closed();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn trailers_request_smuggling_request_terminates_then_header() {
    let (server, calls) = counting();
    let mut client = server.client();
    let mut data = CHUNKED_A.to_vec();
    data.extend_from_slice(b"0\r\n\r\nHeader: valueGET /path2?a=:123 HTTP/1.1\r\nHost: a.com\r\nConnection: close\r\n\r\n");
    client.send(&data);
    assert_eq!(client.read(false).unwrap().body, b"oh hai");
    assert_eq!(client.read(false).unwrap().status, 400);
    client.assert_closed();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn body_without_length_is_not_a_request() {
    // a POST without Content-Length has no body (RFC 9112 6.3): the bytes after it are the next
    // request, which here is garbage
    let (server, calls) = counting();
    let text = server.raw_text(b"POST / HTTP/1.1\r\nHost: a\r\n\r\nhello=world");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with(&canned("400 Bad Request")), "{text}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn leading_empty_lines_are_ignored() {
    let (server, calls) = counting();
    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(client.read(false).unwrap().body, b"ok");
    assert_eq!(client.read(false).unwrap().status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
