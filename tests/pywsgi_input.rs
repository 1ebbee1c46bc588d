//! wsgi.input over the wire: Content-Length and chunked bodies, lines, 100-continue.
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::{BufRead, Read};

use may_gevent::pywsgi::{from_fn, AppResult, Body, Environ, StartResponse};
use support::{chunk_encode, serve};

fn reader(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let path = env.path_info().to_owned();
    let input = env.input();
    let body: Vec<Vec<u8>> = match path.as_str() {
        "/read" => vec![input.read_all()?],
        "/a" => {
            let mut buf = vec![0u8; 6];
            let n = input.read(&mut buf)?;
            buf.truncate(n);
            vec![buf]
        }
        "/b" | "/c" => {
            let size = if path == "/b" { 6 } else { 1 };
            let mut parts = Vec::new();
            loop {
                let mut buf = vec![0u8; size];
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                parts.push(buf);
            }
            parts
        }
        "/readline" => vec![input.readline(None)?],
        "/sizes" => {
            let bounded = input.readline(Some(10))?.len();
            let unbounded = input.readline(None)?.len();
            let rest = input.read_all()?.len();
            vec![format!("{bounded} {unbounded} {rest}").into_bytes()]
        }
        "/lines" => input
            .lines()
            .map(|line| line.map(|l| format!("{l:?} ").into_bytes()))
            .collect::<Result<_, _>>()?,
        "/split" => {
            let mut lines = Vec::new();
            loop {
                let line = input.readline(None)?;
                if line.is_empty() {
                    break;
                }
                lines.push(format!("{:?} ", String::from_utf8_lossy(&line)).into_bytes());
            }
            lines
        }
        "/short-read" => {
            let mut buf = vec![0u8; 10];
            let mut got = 0;
            while got < 10 {
                let n = input.read(&mut buf[got..])?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            vec![buf]
        }
        "/ping" => {
            let mut one = [0u8; 1];
            let _ = input.read(&mut one)?;
            vec![b"pong".to_vec()]
        }
        "/ignore" => vec![b"ignored".to_vec()],
        other => return Err(format!("bad path {other}").into()),
    };
    start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
    Ok(body.into())
}

fn post(path: &str, framing: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{framing}\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

fn chunked_oh_hai() -> Vec<u8> {
    b"2\r\noh\r\n4\r\n hai\r\n0\r\n\r\n".to_vec()
}

#[test]
fn content_length_body_with_trailing_junk() {
    let server = serve(from_fn(|env, start_response| {
        let mut body = [0u8; 3];
        env.input().read_exact(&mut body)?;
        let text = String::from_utf8_lossy(&body).into_owned();
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Ok(format!("a is a, body is {text}").into())
    }));
    let mut client = server.client();
    client.send(b"POST / HTTP/1.0\r\nHost: localhost\r\nContent-Length: 3\r\n\r\na=a");
    client.send(b"01234567890123456789");
    assert_eq!(client.read(false).unwrap().body, b"a is a, body is a=a");
}

#[test]
fn chunked_post_read_whole_in_6_and_in_1_byte_reads() {
    let server = serve(reader);
    for path in ["/a", "/b", "/c", "/read"] {
        let text = server.raw_text(&post(path, "Transfer-Encoding: chunked", &chunked_oh_hai()));
        assert!(text.ends_with("\r\n\r\noh hai"), "{path}: {text}");
    }
}

/// gevent's `read(-1)`, `readline(-1)` and `readlines()` are `read_all()`, `readline(None)` and
/// `lines()` here: each reads without a size limit, under both framings.
#[test]
fn unbounded_read_readline_and_lines_like_gevents_negative_sizes() {
    let server = serve(reader);
    for framing in ["Transfer-Encoding: chunked", "Content-Length: 6"] {
        let body = if framing.starts_with("Transfer") {
            chunked_oh_hai()
        } else {
            b"oh hai".to_vec()
        };
        for (path, expected) in [
            ("/read", "oh hai"),
            ("/readline", "oh hai"),
            ("/lines", "\"oh hai\" "),
        ] {
            let text = server.raw_text(&post(path, framing, &body));
            assert!(
                text.ends_with(&format!("\r\n\r\n{expected}")),
                "{path} {framing}: {text}"
            );
        }
    }
    // a 100 000-byte line: `readline(Some(10))` stops at 10 bytes, `readline(None)` takes the
    // rest of the line whole, `read_all()` the rest of the body
    let line = format!("{}\ntail", "x".repeat(100_000));
    let chunked = chunk_encode(&[&line[..40_000], &line[40_000..], ""], "");
    for (framing, body) in [
        (format!("Content-Length: {}", line.len()), line.as_bytes()),
        ("Transfer-Encoding: chunked".to_owned(), &chunked[..]),
    ] {
        let text = server.raw_text(&post("/sizes", &framing, body));
        assert!(text.ends_with("\r\n\r\n10 99991 4"), "{framing}: {text}");
    }
}

#[test]
fn readline_iteration_and_readlines() {
    let server = serve(reader);
    let content = "hello\n\nworld\n123";
    let framing = format!("Content-Length: {}", content.len());
    let text = server.raw_text(&post("/split", &framing, content.as_bytes()));
    assert!(
        text.ends_with("\"hello\\n\" \"\\n\" \"world\\n\" \"123\" "),
        "{text}"
    );
    let text = server.raw_text(&post("/lines", &framing, content.as_bytes()));
    assert!(
        text.ends_with("\"hello\" \"\" \"world\" \"123\" "),
        "{text}"
    );
    // the same through a chunked body cut across lines
    let body = chunk_encode(&["hel", "lo\n\nwo", "rld\n1", "23", ""], "");
    let text = server.raw_text(&post("/split", "Transfer-Encoding: chunked", &body));
    assert!(
        text.ends_with("\"hello\\n\" \"\\n\" \"world\\n\" \"123\" "),
        "{text}"
    );
}

#[test]
fn read_on_a_get_without_body() {
    let server = serve(from_fn(|env, start_response| {
        let mut buf = [0u8; 5];
        assert_eq!(env.input().read(&mut buf)?, 0);
        start_response.call("200 OK", &[])?;
        Ok(Body::empty())
    }));
    let mut client = server.client();
    assert_eq!(client.get("/").status, 200);
    assert_eq!(client.get("/").status, 200);
}

#[test]
fn chunked_short_reads_keep_the_connection_in_sync() {
    let server = serve(reader);
    let body = chunk_encode(
        &["this", " is ", "chunked", "\nline", " 2", "\n", "line3", ""],
        "",
    );
    let mut client = server.client();
    let mut req =
        b"POST /short-read HTTP/1.1\r\nHost: localhost\r\ntransfer-encoding: Chunked\r\n\r\n"
            .to_vec();
    req.extend_from_slice(&body);
    client.send(&req);
    assert_eq!(client.read(false).unwrap().body, b"this is ch");
    // the unread rest of the body was discarded: the next request works
    client.send(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(client.read(false).unwrap().body, b"pong");
    let mut req =
        b"POST /lines HTTP/1.1\r\nHost: localhost\r\ntransfer-encoding: Chunked\r\n\r\n".to_vec();
    req.extend_from_slice(&body);
    client.send(&req);
    assert_eq!(
        client.read(false).unwrap().body_text(),
        "\"this is chunked\" \"line 2\" \"line3\" "
    );
}

#[test]
fn chunk_extensions() {
    let server = serve(reader);
    for ext in [
        ";token=\"oh hi\"",
        ";token=oh_hi",
        "; here is dirt",
        " ;a=b",
    ] {
        let body = chunk_encode(&["oh", " hai", ""], ext);
        let text = server.raw_text(&post("/read", "Transfer-Encoding: chunked", &body));
        assert!(text.ends_with("\r\n\r\noh hai"), "{ext:?}: {text}");
    }
}

#[test]
fn trailers_are_ignored_and_keep_alive_continues() {
    let server = serve(reader);
    let mut client = server.client();
    client.send(
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
          2\r\noh\r\n4\r\n hai\r\n0\r\ntrailer1: value1\r\ntrailer2: value2\r\n\r\n",
    );
    assert_eq!(client.read(false).unwrap().body, b"oh hai");
    client.send(
        b"POST /a HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
          2\r\noh\r\n4\r\n bye\r\n0\r\n\r\n",
    );
    assert_eq!(client.read(false).unwrap().body, b"oh bye");
    client.assert_closed();
}

#[test]
fn expect_100_continue() {
    // gevent Expect100ContinueTests
    let server = serve(from_fn(|env, start_response| {
        let length: usize = env.content_length().unwrap_or("0").parse()?;
        if length > 1024 {
            start_response.call(
                "417 Expectation Failed",
                &[("Content-Length", "7"), ("Content-Type", "text/plain")],
            )?;
            return Ok("failure".into());
        }
        let mut text = vec![0u8; 1];
        env.input().read_exact(&mut text)?;
        let mut rest = vec![0u8; length - 1];
        env.input().read_exact(&mut rest)?;
        text.extend_from_slice(&rest);
        start_response.call(
            "200 OK",
            &[
                ("Content-Length", &text.len().to_string()),
                ("Content-Type", "text/plain"),
            ],
        )?;
        Ok(text.into())
    }));
    let mut client = server.client();
    let padding = "a".repeat(1025);
    client.send(format!("PUT / HTTP/1.1\r\nHost: localhost\r\nContent-length: 1025\r\nExpect: 100-continue\r\n\r\n{padding}").as_bytes());
    let resp = client.read(false).unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (417, &b"failure"[..]));
    client.send(b"PUT / HTTP/1.1\r\nHost: localhost\r\nContent-length: 7\r\nExpect: 100-continue\r\n\r\ntesting");
    assert_eq!(client.read(false).unwrap().status, 100);
    assert_eq!(client.read(false).unwrap().body, b"testing");

    // a whole request inside a discarded body must not be executed (gevent #2075)
    let mut client = server.client();
    let padding = "a".repeat(947);
    let inner = format!("PUT / HTTP/1.1\r\nHost: localhost\r\nContent-length: {}\r\nExpect: 100-continue\r\n\r\n{padding}", padding.len());
    client.send(format!("PUT / HTTP/1.1\r\nHost: localhost\r\nContent-length: {}\r\nExpect: 100-continue\r\n\r\n{inner}", inner.len()).as_bytes());
    let resp = client.read(false).unwrap();
    assert_eq!(resp.status, 417);
    client.send(b"PUT / HTTP/1.1\r\nHost: localhost\r\nContent-length: 7\r\nExpect: 100-continue\r\n\r\ntesting");
    assert_eq!(client.read(false).unwrap().status, 100);
    assert_eq!(client.read(false).unwrap().body, b"testing");
}

#[test]
fn continue_rules() {
    let server = serve(reader);
    // case-insensitive
    let text = server.raw_text(&post(
        "/read",
        "Content-Length: 2\r\nExpect: 100-Continue",
        b"ok",
    ));
    assert!(
        text.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{text}"
    );
    // never to HTTP/1.0
    let text = server
        .raw_text(b"POST /read HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    // not when the application does not read
    let text = server.raw_text(&post(
        "/ignore",
        "Content-Length: 2\r\nExpect: 100-continue",
        b"ok",
    ));
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}

#[test]
fn client_closing_mid_chunk_is_an_io_error_for_the_app() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let server = serve(
        move |env: &mut Environ, _start_response: &mut StartResponse<'_>| -> AppResult {
            let err = env.input().read_all().unwrap_err();
            *seen2.lock().unwrap() = Some(err.to_string());
            Err(err.into())
        },
    );
    let mut client = server.client();
    client
        .send(b"POST / HTTP/1.1\r\nHost: localhost\r\ntransfer-encoding: Chunked\r\n\r\n4\r\nthi");
    client.shutdown_write();
    let mut rest = Vec::new();
    let _ = client.reader.read_to_end(&mut rest);
    // a 400 is attempted (the client only half-closed here), never a 500
    assert!(
        rest.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(
        seen.lock().unwrap().as_deref(),
        Some("unexpected end of file while parsing chunked data")
    );
    assert!(
        server.records.errors().is_empty(),
        "{:?}",
        server.records.errors()
    );
}

#[test]
fn large_upload_is_read_through() {
    let server = serve(from_fn(|env, start_response| {
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = env.input().read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n;
        }
        start_response.call("200 OK", &[])?;
        Ok(total.to_string().into())
    }));
    let body = vec![b'z'; 3_000_000];
    let mut client = server.client();
    let writer = client.writer.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut writer = writer;
        std::io::Write::write_all(
            &mut writer,
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        std::io::Write::write_all(&mut writer, &body).unwrap();
        let chunked: Vec<u8> = (0..100)
            .flat_map(|_| format!("{:x}\r\n{}\r\n", 10_000, "q".repeat(10_000)).into_bytes())
            .collect();
        std::io::Write::write_all(
            &mut writer,
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
        std::io::Write::write_all(&mut writer, &chunked).unwrap();
        std::io::Write::write_all(&mut writer, b"0\r\n\r\n").unwrap();
    });
    assert_eq!(client.read(false).unwrap().body_text(), "3000000");
    assert_eq!(client.read(false).unwrap().body_text(), "1000000");
    sender.join().unwrap();
}

#[test]
fn lines_api_on_bufread() {
    let server = serve(from_fn(|env, start_response| {
        let mut count = 0;
        let mut line = String::new();
        while env.input().read_line(&mut line)? > 0 {
            count += 1;
        }
        start_response.call("200 OK", &[])?;
        Ok(format!("{count} {line:?}").into())
    }));
    let text = server.raw_text(&post("/", "Content-Length: 8", b"a\nbb\nccc"));
    assert!(text.ends_with("3 \"a\\nbb\\nccc\""), "{text}");
}
