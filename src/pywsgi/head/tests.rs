//! Tests of the request-head parser (all of `head`).

use super::super::environ::values_tests::env;
use super::parse::recycle;
use super::*;

const LIMITS: Limits = Limits {
    max_request_line: 8192,
    max_header_block: 64 * 1024,
    max_body: None,
};

fn ok(raw: &[u8]) -> RequestHead {
    let mut head = RequestHead::default();
    match parse(raw, &mut head, &LIMITS) {
        Ok(Some(n)) => assert_eq!(n, raw.len(), "whole head consumed"),
        other => panic!("{:?}: {:?}", String::from_utf8_lossy(raw), other),
    }
    head
}

fn err(raw: &[u8]) -> HeadError {
    let mut head = RequestHead::default();
    match parse(raw, &mut head, &LIMITS) {
        Err(err) => err,
        other => panic!("{:?} accepted: {:?}", String::from_utf8_lossy(raw), other),
    }
}

fn status(raw: &[u8]) -> u16 {
    err(raw).status()
}

#[test]
fn simple_get() {
    let head = ok(b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(head.method(), "GET");
    assert_eq!(head.target(), "/a/b?x=1&y=%20");
    assert_eq!(head.path_info(), "/a/b");
    assert_eq!(head.query_string(), "x=1&y=%20");
    assert_eq!(head.version, Version::Http11);
    assert_eq!(head.framing, Framing::Empty);
    assert!(head.keep_alive);
    assert_eq!(head.request_line(), b"GET /a/b?x=1&y=%20 HTTP/1.1");
    assert_eq!(env(&head, "host").as_deref(), Some("example.com"));
}

#[test]
fn partial_heads() {
    let mut head = RequestHead::default();
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: a"[..],
        b"GET",
        b"GET / HTTP/1.",
        b"\r\n",
    ] {
        assert_eq!(parse(raw, &mut head, &LIMITS), Ok(None), "{raw:?}");
    }
}

#[test]
fn path_info_is_decoded_as_latin1() {
    let head = ok(b"GET /%D0%BF%D1%80?%D0%B2=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.path_info(), "/\u{d0}\u{bf}\u{d1}\u{80}");
    assert_eq!(head.query_string(), "%D0%B2=1");
    let head = ok(b"GET /env;p/a%20b%2Fc%zz%4 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.path_info(), "/env;p/a b/c%zz%4");
}

#[test]
fn query_and_path_split() {
    // a `%` or `?` in the query does not touch PATH_INFO
    let head = ok(b"GET /a?b%20=c?d HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.path_info(), "/a");
    assert_eq!(head.query_string(), "b%20=c?d");
    let head = ok(b"GET /%41?%42 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.path_info(), "/A");
    assert_eq!(head.query_string(), "%42");
    let head = ok(b"GET /a/long/path/name? HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.path_info(), "/a/long/path/name");
    assert_eq!(head.query_string(), "");
    // non-ASCII in the query is refused as in the path
    assert_eq!(status(b"GET /a?\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    // the decoded path of one request does not leak into the next
    let mut head = RequestHead::default();
    let raw = b"GET /x%20y HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(parse(raw, &mut head, &LIMITS), Ok(Some(raw.len())));
    assert_eq!(head.path_info(), "/x y");
    let raw = b"GET /z HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(parse(raw, &mut head, &LIMITS), Ok(Some(raw.len())));
    assert_eq!(head.path_info(), "/z");
}

#[test]
fn header_names_match_in_any_case_only_exactly() {
    for name in ["HOST", "hOsT", "Host"] {
        let raw = format!("GET / HTTP/1.1\r\n{name}: a\r\nhost: b\r\n\r\n");
        assert_eq!(status(raw.as_bytes()), 400, "{name}");
    }
    for name in ["Hosts", "Hos", "Xost", "Hostx"] {
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{name}: b\r\n\r\n");
        ok(raw.as_bytes());
    }
    let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH: 5\r\n\r\n");
    assert_eq!(head.framing, Framing::Length(5));
    let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Lengthx: 5\r\n\r\n");
    assert_eq!(head.framing, Framing::Empty);
    let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\ntRANSFER-eNCODING: chunked\r\n\r\n");
    assert_eq!(head.framing, Framing::Chunked);
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nCONNECTION: close\r\n\r\n").keep_alive);
    let head = ok(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n");
    assert!(!head.expect_continue, "the last Expect decides");
}

#[test]
fn leading_empty_lines_need_crlf() {
    ok(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status(b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

#[test]
fn absolute_form() {
    let head = ok(b"GET http://example.com:8080/p%20q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(head.path_info(), "/p q");
    assert_eq!(head.query_string(), "x=1");
    assert_eq!(head.target(), "http://example.com:8080/p%20q?x=1");
    assert_eq!(env(&head, "host").as_deref(), Some("example.com:8080"));
    let head = ok(b"GET https://h?x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.path_info(), "/");
    assert_eq!(head.query_string(), "x");
    assert_eq!(
        status(b"GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        400
    );
    assert_eq!(status(b"GET http:/h/ HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    assert_eq!(status(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    let head = ok(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(head.path_info(), "*");
    let head = ok(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
    assert_eq!(head.path_info(), "");
}

#[test]
fn http10_and_keep_alive() {
    assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, te\r\n\r\n").keep_alive);
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\n\r\n").keep_alive);
}

#[test]
fn body_framing() {
    let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
    assert_eq!(head.framing, Framing::Length(12));
    assert_eq!(
        ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing,
        Framing::Empty
    );
    let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!(head.framing, Framing::Chunked);
    let head = ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n");
    assert_eq!(head.framing, Framing::Chunked);
}

#[test]
fn smuggling_vectors_are_rejected() {
    // CL + TE
    assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), 400);
    // repeated / conflicting / malformed CL
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        400
    );
    for cl in [
        "1, 1",
        "+3",
        "-1",
        "abc",
        "0x10",
        "3 3",
        "1_0",
        "",
        "99999999999999999999999",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n");
        assert_eq!(status(raw.as_bytes()), 400, "Content-Length {cl:?}");
    }
    // TE whose final coding is not chunked; chunked twice; unknown codings; TE on 1.0
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
        400
    );
    assert_eq!(status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        501
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
    // whitespace before the colon, obs-fold, bare CR, bare LF, NUL, bad name characters
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
        400
    );
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n"),
        400
    );
    assert_eq!(status(b"POST / HTTP/1.0\r\nContent-Type: multipart/related;\r\n type=\"text/xml\"\r\nContent-Length: 0\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\nHost: a\n\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), 400);
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: a\r\nno-colon\r\n\r\n"),
        400
    );
    assert_eq!(status(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
    // Host rules
    assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
    ok(b"GET / HTTP/1.0\r\n\r\n");
    ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    ok(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n");
    // HEAD with a body
    assert_eq!(
        status(b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"),
        400
    );
}

#[test]
fn request_line_errors() {
    assert_eq!(status(b"GET / HTTP %\r\n\r\n"), 400);
    assert_eq!(status(b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status(b"GET /\r\n\r\n"), 400);
    assert_eq!(status(b"GET / FOO/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status(b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    assert_eq!(status(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
    assert_eq!(status(b"GET / HTTP/0.9\r\n\r\n"), 505);
    assert_eq!(
        status(b"Header: valueGET /path2?a=:123 HTTP/1.1\r\nHost: a.com\r\n\r\n"),
        400
    );
    assert_eq!(status(b"<policy-file-request/>\0"), 400);
    // methods are any token (gevent accepts lower case too)
    assert_eq!(ok(b"get / HTTP/1.1\r\nHost: a\r\n\r\n").method(), "get");
    // leading empty lines are ignored (RFC 9112 2.2)
    assert_eq!(ok(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").method(), "GET");
}

#[test]
fn limits() {
    let line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(8192));
    assert_eq!(status(line.as_bytes()), 414);
    let line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(8192 - 15));
    ok(line.as_bytes());
    // an incomplete long line is refused before it ends
    let long = format!("GET /{}", "x".repeat(9000));
    assert_eq!(status(long.as_bytes()), 414);
    let mut checked = false;
    assert_eq!(
        check_partial(
            long.as_bytes(),
            &mut RequestHead::default(),
            &LIMITS,
            &mut checked
        ),
        Err(HeadError::UriTooLong)
    );
    // 100 headers are fine, 101 are not
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..99 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    ok(format!("{raw}\r\n").as_bytes());
    raw.push_str("X-last: v\r\n\r\n");
    assert_eq!(status(raw.as_bytes()), 431);
    // a header section over 64 KiB
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "v".repeat(64 * 1024)
    );
    assert_eq!(status(big.as_bytes()), 431);
    let partial = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(64 * 1024));
    assert_eq!(status(partial.as_bytes()), 431);
    // Content-Length over the maximum
    let limits = Limits {
        max_body: Some(10),
        ..LIMITS
    };
    let mut head = RequestHead::default();
    let res = parse(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
        &mut head,
        &limits,
    );
    assert_eq!(res, Err(HeadError::ContentTooLarge));
}

#[test]
fn early_rejection_of_garbage() {
    let mut checked = false;
    assert!(check_partial(
        b"GET / HTTP/1.1\r\nHo",
        &mut RequestHead::default(),
        &LIMITS,
        &mut checked
    )
    .is_ok());
    assert!(checked);
    let mut checked = false;
    assert_eq!(
        check_partial(
            b"GET / HTTP/1.1 x\r\nHo",
            &mut RequestHead::default(),
            &LIMITS,
            &mut checked
        ),
        Err(HeadError::BadRequest("invalid line ending"))
    );
}

#[test]
fn expect_and_upgrade() {
    let head =
        ok(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n");
    assert!(head.expect_continue);
    let head = ok(b"PUT / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    assert!(!head.expect_continue);
    let head = ok(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    assert!(!head.expect_continue, "no body, nothing to continue");
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n").upgrade);
    assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").upgrade);
    assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").upgrade);
}

#[test]
fn slot_store_is_reused() {
    let mut slots: Vec<httparse::Header<'static>> = Vec::with_capacity(24);
    let ptr = slots.as_ptr() as usize;
    let other: Vec<httparse::Header<'_>> = recycle(slots);
    slots = recycle(other);
    assert!(slots.capacity() >= 24);
    assert_eq!(
        slots.as_ptr() as usize,
        ptr,
        "in-place collection reuses the allocation"
    );
    let mut head = RequestHead::default();
    // more headers than the initial slots: parsed again with the full set
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..60 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    assert_eq!(
        parse(raw.as_bytes(), &mut head, &LIMITS),
        Ok(Some(raw.len()))
    );
    assert_eq!(head.headers.len(), 61);
    let mut checked = false;
    assert_eq!(
        check_partial(
            &raw.as_bytes()[..raw.len() - 2],
            &mut head,
            &LIMITS,
            &mut checked
        ),
        Ok(())
    );
}

#[test]
fn completeness_scan() {
    assert!(may_be_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0));
    assert!(!may_be_complete(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
    let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    // a terminator split across reads is found when scanning from the previous end
    assert!(may_be_complete(raw, raw.len() - 1));
    assert!(may_be_complete(raw, raw.len() - 2));
    assert!(may_be_complete(b"GET /\n\n", 5));
}

/// Checks that whatever `fast::tokenize` takes, httparse takes and splits the same way.
/// True if the fast path took it.
fn fast_agrees(raw: &[u8]) -> bool {
    match super::fast::compare_with_httparse(raw) {
        Ok(taken) => taken,
        Err(diff) => panic!("{:?}: {diff}", String::from_utf8_lossy(raw)),
    }
}

#[test]
fn the_fast_tokenizer_takes_the_plain_heads() {
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"[..],
        b"POST /a?b=c HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\nX-Y:z\r\nEmpty:\r\nTabs:\t v \t\r\n\r\n",
        b"M-_~.! * HTTP/1.1\r\nh!#$%&'*+-.^_`|~9: x\r\n\r\n",
        b"GET /very/long/path/with/many/segments/and?a=query&string=that&goes=on HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n\r\n",
    ] {
        assert!(fast_agrees(raw), "{:?}", String::from_utf8_lossy(raw));
    }
    // not taken: httparse decides (and the checks after it refuse most of these)
    for raw in [
        &b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r",
        b"GET / HTTP/1.",
        b"",
    ] {
        assert!(!fast_agrees(raw), "{:?}", String::from_utf8_lossy(raw));
    }
    // more header lines than the slots: httparse decides (with more slots)
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..24 {
        many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(!fast_agrees(&many));
    assert_eq!(ok(&many).headers.len(), 25);
}

/// Mutated heads (bytes replaced, inserted, removed, cut): the fast tokenizer never takes one
/// that httparse refuses or splits differently.
#[test]
fn the_fast_tokenizer_agrees_with_httparse_on_mutated_heads() {
    let seeds: [&[u8]; 4] = [
        b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
        b"POST /p HTTP/1.0\r\nContent-Length: 5\r\nX:  v w  \r\nE:\r\n\r\nhello",
        b"PUT * HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, close\r\n\r\n",
        b"OPTIONS http://h:80/x%20y HTTP/1.1\r\nHost: h:80\r\nT:\ta\tb\t\r\n\r\n",
    ];
    let alphabet = b"\r\n\t :/?%#\x00\x01\x7f\x80\xff\xc3aAzZ09-_.HTTP1";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut taken = 0;
    let rounds = 100_000;
    for _ in 0..rounds {
        let mut raw = seeds[(next() % seeds.len() as u64) as usize].to_vec();
        for _ in 0..=(next() % 3) {
            let at = (next() % raw.len().max(1) as u64) as usize;
            let byte = if next() % 4 == 0 {
                next() as u8
            } else {
                alphabet[(next() % alphabet.len() as u64) as usize]
            };
            match next() % 8 {
                0..=3 if at < raw.len() => raw[at] = byte,
                4 | 5 => raw.insert(at.min(raw.len()), byte),
                6 if at < raw.len() => {
                    raw.remove(at);
                }
                _ => raw.truncate(at),
            }
        }
        if fast_agrees(&raw) {
            taken += 1;
        }
    }
    // the mutations leave many heads plain: the comparison is not vacuous
    assert!(taken > rounds / 10, "only {taken} of {rounds} taken");
}
