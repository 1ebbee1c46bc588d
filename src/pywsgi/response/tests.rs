//! Tests of the response writer (all of `response`).

use super::super::head::{self, Limits, RequestHead};
use super::super::input::tests::{mem_link, MemState};
use super::encode::push_content_length;
use super::validate::is_printable_ascii;
use super::*;

fn limits() -> Limits {
    Limits::new(8192, 65536, None)
}

fn response_for(request: &[u8]) -> (Response, std::sync::Arc<std::sync::Mutex<MemState>>) {
    let mut rh = RequestHead::default();
    head::parse(request, &mut rh, &limits()).unwrap().unwrap();
    let (link, state) = mem_link(b"", 1);
    let mut resp = Response::new(link);
    resp.begin(&rh, rh.keep_alive);
    (resp, state)
}

fn wire(resp: &mut Response, state: &std::sync::Arc<std::sync::Mutex<MemState>>) -> String {
    resp.flush().unwrap();
    let out = std::mem::take(&mut state.lock().unwrap().output);
    let text = String::from_utf8(out).unwrap();
    // blank out the date
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_owned).collect();
    for line in &mut lines {
        if line.starts_with("Date: ") {
            *line = "Date: X".to_owned();
        }
    }
    lines.join("\r\n")
}

const GET11: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const GET10: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
const GET10KA: &[u8] = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
const HEAD11: &[u8] = b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn buffered_body_gets_content_length() {
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[("Content-Type", "text/plain")])
        .unwrap();
    resp.send_body(vec![b"hello ".to_vec(), b"world".to_vec()].into())
        .ok()
        .unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 11\r\n\r\nhello world"
    );
    assert!(!resp.close);
    assert_eq!(resp.bytes_sent, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sat, 21 Nov 2026 15:00:31 GMT\r\nContent-Length: 11\r\n\r\nhello world".len() as u64);
}

#[test]
fn repeated_responses_are_built_alike() {
    let (mut resp, st) = response_for(GET11);
    let headers = [("Content-Type", "text/plain")];
    let send = |resp: &mut Response, request: &[u8], body: &'static str| {
        let mut rh = RequestHead::default();
        head::parse(request, &mut rh, &limits()).unwrap().unwrap();
        resp.begin(&rh, rh.keep_alive);
        resp.start("200 OK", &headers).unwrap();
        resp.send_body(Body::from(body)).ok().unwrap();
    };
    let plain =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 2\r\n\r\nhi";
    send(&mut resp, GET11, "hi");
    assert_eq!(wire(&mut resp, &st), plain);
    // the same response again
    send(&mut resp, GET11, "hi");
    assert_eq!(wire(&mut resp, &st), plain);
    assert_eq!(resp.bytes_sent, (plain.len() + 28) as u64);
    // another length, HEAD, HTTP/1.0, other headers: built again
    send(&mut resp, GET11, "hey");
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
    );
    send(&mut resp, HEAD11, "hey");
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 3\r\n\r\n"
    );
    send(&mut resp, GET10KA, "hey");
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
    );
    send(&mut resp, GET10, "hey");
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
    );
    resp.begin(&RequestHead::default(), true);
    resp.start("404 Not Found", &headers).unwrap();
    resp.send_body(Body::from("hey")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nDate: X\r\nContent-Length: 3\r\n\r\nhey"
    );
}

#[test]
fn http10_connection_headers() {
    let (mut resp, st) = response_for(GET10);
    resp.start("200 OK", &[]).unwrap();
    resp.send_body(Body::from("hi")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\nContent-Length: 2\r\n\r\nhi"
    );
    assert!(resp.close);
    let (mut resp, st) = response_for(GET10KA);
    resp.start("200 OK", &[]).unwrap();
    resp.send_body(Body::from("hi")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nDate: X\r\nContent-Length: 2\r\n\r\nhi"
    );
    assert!(!resp.close);
    // streamed on 1.0: close-delimited, even if keep-alive was asked
    let (mut resp, st) = response_for(GET10KA);
    resp.start("200 OK", &[]).unwrap();
    resp.send_body(Body::stream(vec![b"a".to_vec(), b"b".to_vec()]))
        .ok()
        .unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\n\r\nab"
    );
    assert!(resp.close);
}

#[test]
fn streamed_body_is_chunked() {
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[]).unwrap();
    resp.send_body(Body::stream(vec![
        b"this".to_vec(),
        Vec::new(),
        b"is".to_vec(),
        b"chunked".to_vec(),
    ]))
    .ok()
    .unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nthis\r\n2\r\nis\r\n7\r\nchunked\r\n0\r\n\r\n"
    );
    // an empty stream has a known length after all
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[]).unwrap();
    resp.send_body(Body::stream(vec![Vec::new(), Vec::new()]))
        .ok()
        .unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn head_responses_never_carry_a_body() {
    let (mut resp, st) = response_for(HEAD11);
    resp.start("200 OK", &[]).unwrap();
    resp.send_body(Body::from("hello")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nDate: X\r\nContent-Length: 5\r\n\r\n"
    );
    let (mut resp, st) = response_for(HEAD11);
    resp.start("200 OK", &[("Content-Length", "100")]).unwrap();
    resp.send_body(Body::empty()).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nDate: X\r\n\r\n"
    );
    let (mut resp, st) = response_for(HEAD11);
    resp.start("200 OK", &[]).unwrap();
    let ran = std::rc::Rc::new(std::cell::Cell::new(false));
    let ran2 = ran.clone();
    resp.send_body(Body::stream(std::iter::from_fn(move || {
        ran2.set(true);
        None::<Vec<u8>>
    })))
    .ok()
    .unwrap();
    assert_eq!(wire(&mut resp, &st), "HTTP/1.1 200 OK\r\nDate: X\r\n\r\n");
    assert!(!ran.get(), "the iterator of a HEAD response is not run");
    assert!(!resp.close);
}

#[test]
fn no_body_statuses() {
    for status in ["204 No Content", "304 Not Modified"] {
        let (mut resp, st) = response_for(GET11);
        resp.start(status, &[]).unwrap();
        resp.send_body(Body::stream(vec![Vec::new(), Vec::new()]))
            .ok()
            .unwrap();
        assert_eq!(
            wire(&mut resp, &st),
            format!("HTTP/1.1 {status}\r\nDate: X\r\n\r\n")
        );
        let (mut resp, _) = response_for(GET11);
        resp.start(status, &[]).unwrap();
        let err = resp.send_body(Body::from("body")).err().unwrap();
        let code = &status[..3];
        assert!(
            matches!(err, Failure::Protocol(ref e) if e.to_string() == format!("The {code} response must have no body"))
        );
        let (mut resp, _) = response_for(GET11);
        let err = resp
            .start(status, &[("Content-Length", "100")])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Invalid Content-Length for {code} response: '100' (must be absent or zero)")
        );
    }
    // 204 + Content-Length: 0 -> header dropped; 304 + Content-Length: 0 -> kept
    let (mut resp, st) = response_for(GET11);
    resp.start("204 No Content", &[("Content-Length", "0")])
        .unwrap();
    resp.send_body(Body::empty()).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 204 No Content\r\nDate: X\r\n\r\n"
    );
    let (mut resp, st) = response_for(GET11);
    resp.start("304 Not Modified", &[("Content-Length", "0")])
        .unwrap();
    resp.send_body(Body::empty()).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\nDate: X\r\n\r\n"
    );
}

#[test]
fn header_injection_is_refused() {
    let (mut resp, _) = response_for(GET11);
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 3] = [
        (
            "200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            &[],
            "carriage return or newline in status",
        ),
        (
            "200 OK",
            &[("Test", "Hi\r\nConnection: close")],
            "carriage return or newline in header value",
        ),
        (
            "200 OK",
            &[("Test\r\n", "Hi")],
            "carriage return or newline in header name",
        ),
    ];
    for (status, headers, message) in cases {
        assert_eq!(
            resp.start(status, headers).unwrap_err().to_string(),
            message
        );
    }
    assert!(matches!(
        resp.start("200 OK", &[("X", "a\0b")]),
        Err(ResponseError::InvalidHeaderValue(_))
    ));
    assert!(matches!(
        resp.start("200 OK", &[("X Y", "a")]),
        Err(ResponseError::InvalidHeaderName(_))
    ));
    assert!(matches!(
        resp.start("200 OK", &[("", "a")]),
        Err(ResponseError::InvalidHeaderName(_))
    ));
    assert!(matches!(
        resp.start("200 OK", &[("X", "\u{1f4a3}")]),
        Err(ResponseError::NonLatin1(_))
    ));
    assert!(matches!(
        resp.start("200 OK", &[("Transfer-Encoding", "chunked")]),
        Err(ResponseError::ForbiddenHeader(_))
    ));
    assert!(matches!(
        resp.start("200 OK", &[("Content-Length", "abc")]),
        Err(ResponseError::InvalidContentLength(_))
    ));
    assert!(matches!(
        resp.start(
            "200 OK",
            &[("Content-Length", "1"), ("content-length", "1")]
        ),
        Err(ResponseError::InvalidContentLength(_))
    ));
    for bad in [
        "abc",
        "20",
        "2000 OK",
        "200OK",
        "099 X",
        "100 Continue",
        "101 Switching Protocols",
        "200 O\u{1}K",
    ] {
        assert!(
            matches!(resp.start(bad, &[]), Err(ResponseError::InvalidStatus(_))),
            "{bad}"
        );
    }
    assert!(!resp.phase().started(), "failed calls change nothing");
}

#[test]
fn status_alone_and_latin1() {
    let (mut resp, st) = response_for(GET11);
    resp.start("200", &[("X-Name", "caf\u{e9}")]).unwrap();
    resp.send_body(Body::empty()).ok().unwrap();
    let out = {
        resp.flush().unwrap();
        std::mem::take(&mut st.lock().unwrap().output)
    };
    assert!(out.starts_with(b"HTTP/1.1 200\r\nX-Name: caf\xe9\r\n"));
}

#[test]
fn start_response_replaces_until_sent() {
    let (mut resp, st) = response_for(GET11);
    resp.start("500 Oops", &[("X-A", "1")]).unwrap();
    resp.start("200 OK", &[("X-B", "2")]).unwrap();
    resp.write_data(b"", true).ok().unwrap();
    assert_eq!(
        resp.start("404 Not Found", &[]).unwrap_err(),
        ResponseError::HeadersAlreadySent
    );
    resp.send_body(Body::from("x")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nX-B: 2\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
    );
}

#[test]
fn write_with_declared_length() {
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[("Content-Length", "8")]).unwrap();
    resp.write_data(b"abcde", true).ok().unwrap();
    resp.send_body(Body::from("end")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nDate: X\r\n\r\nabcdeend"
    );
    assert!(!resp.close);
    // too long: truncated and closed
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[("Content-Length", "3")]).unwrap();
    assert!(resp.write_data(b"abcde", true).is_err());
    assert!(resp.close);
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDate: X\r\n\r\nabc"
    );
    // too short: closed
    let (mut resp, _) = response_for(GET11);
    resp.start("200 OK", &[("Content-Length", "10")]).unwrap();
    resp.write_data(b"abc", true).ok().unwrap();
    assert!(resp.send_body(Body::empty()).is_err());
    assert!(resp.close);
    // a buffered body that contradicts its Content-Length is refused before anything is sent
    let (mut resp, _) = response_for(GET11);
    resp.start("200 OK", &[("Content-Length", "10")]).unwrap();
    assert!(resp.send_body(Body::from("abc")).is_err());
    assert!(!resp.head_sent());
}

#[test]
fn connection_header_rules() {
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[("Connection", "close")]).unwrap();
    resp.send_body(Body::from("x")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\nContent-Length: 1\r\n\r\nx"
    );
    assert!(resp.close);
    let (mut resp, st) = response_for(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    resp.start("200 OK", &[("Connection", "keep-alive")])
        .unwrap();
    resp.send_body(Body::from("x")).ok().unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: X\r\nContent-Length: 1\r\n\r\nx"
    );
    assert!(resp.close);
}

#[test]
fn upgrade() {
    let (mut resp, _) = response_for(GET11);
    assert!(resp.start("101 Switching Protocols", &[]).is_err());
    let (mut resp, st) = response_for(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    resp.start(
        "101 Switching Protocols",
        &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
    )
    .unwrap();
    resp.write_data(b"", true).ok().unwrap();
    resp.send_body(vec![b"upgrading to".to_vec(), b"websocket".to_vec()].into())
        .ok()
        .unwrap();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nDate: X\r\n\r\nupgrading towebsocket"
    );
    assert!(resp.close);
    assert!(resp.link.borrow().phase.upgraded());
}

#[test]
fn start_response_cache() {
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[("Content-Type", "text/plain")])
        .unwrap();
    resp.send_body(Body::from("a")).ok().unwrap();
    let first = wire(&mut resp, &st);
    // same arguments: served from the cache, same bytes
    let mut rh = RequestHead::default();
    head::parse(GET11, &mut rh, &limits()).unwrap().unwrap();
    resp.begin(&rh, true);
    assert!(resp.head.key_valid());
    resp.start("200 OK", &[("Content-Type", "text/plain")])
        .unwrap();
    resp.send_body(Body::from("a")).ok().unwrap();
    assert_eq!(wire(&mut resp, &st), first);
    // any difference misses the cache (and errors are still reported)
    for (status, headers) in [
        ("200 OK", &[("Content-Type", "text/plai")][..]),
        ("200 OK", &[("Content-Type", "text/plain"), ("X", "y")][..]),
        ("200 OK", &[][..]),
        ("201 OK", &[("Content-Type", "text/plain")][..]),
        ("200 OK\0", &[("Content-Type", "text/plain")][..]),
    ] {
        resp.begin(&rh, true);
        let res = resp.start(status, headers);
        assert_eq!(
            res.is_ok(),
            !status.contains('\0'),
            "{status:?} {headers:?}"
        );
    }
    resp.begin(&rh, true);
    assert!(resp.start("200 OK", &[("X", "a\rb")]).is_err());
    resp.start("200 OK", &[("Content-Length", "1")]).unwrap();
    resp.begin(&rh, true);
    resp.start("200 OK", &[("Content-Length", "1")]).unwrap();
    assert_eq!(resp.head.app.length, Some(1));
    assert!(
        resp.send_body(Body::from("ab")).is_err(),
        "the cached Content-Length is enforced"
    );
}

#[test]
fn printable_ascii_check() {
    assert!(is_printable_ascii(b""));
    assert!(is_printable_ascii(b" ~ ~ ~ ~ ~ ~ ~ ~ ~"));
    for bad in [0x00u8, 0x09, 0x0a, 0x0d, 0x1f, 0x7f, 0x80, 0xc3, 0xff] {
        for pos in 0..17 {
            let mut text = vec![b'a'; 17];
            text[pos] = bad;
            assert!(!is_printable_ascii(&text), "{bad:#x} at {pos}");
        }
    }
    let all: Vec<u8> = (0x20..0x7f).collect();
    assert!(is_printable_ascii(&all));
}

#[test]
fn content_length_lines() {
    for n in [0u64, 7, 13, 100, 300_005, u64::MAX] {
        let mut line = b"x".to_vec();
        push_content_length(&mut line, n);
        assert_eq!(line, format!("xContent-Length: {n}\r\n\r\n").as_bytes());
    }
}

#[test]
fn canned_responses() {
    let (mut resp, st) = response_for(GET11);
    resp.send_error(414);
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Length: 0\r\nDate: X\r\n\r\n"
    );
    let (mut resp, st) = response_for(GET11);
    resp.send_internal_error();
    assert_eq!(
        wire(&mut resp, &st),
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 21\r\nDate: X\r\n\r\nInternal Server Error"
    );
    let (mut resp, st) = response_for(HEAD11);
    resp.send_internal_error();
    assert!(wire(&mut resp, &st).ends_with("Content-Length: 21\r\nDate: X\r\n\r\n"));
}

#[test]
fn large_chunks_are_written_through() {
    let (mut resp, st) = response_for(GET11);
    resp.start("200 OK", &[]).unwrap();
    let big = vec![b'a'; 8192];
    resp.send_body(Body::stream(vec![big.clone(), big.clone(), big.clone()]))
        .ok()
        .unwrap();
    let text = wire(&mut resp, &st);
    let body_start = text.find("\r\n\r\n").unwrap() + 4;
    let expected: String = (0..3)
        .map(|_| format!("2000\r\n{}\r\n", "a".repeat(8192)))
        .collect::<String>()
        + "0\r\n\r\n";
    assert_eq!(&text[body_start..], expected);
    assert_eq!(
        resp.bytes_sent as usize,
        text.len() - "Date: X".len() + "Date: Sat, 21 Nov 2026 15:00:31 GMT".len()
    );
}
