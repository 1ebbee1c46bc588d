//! Application errors and panics, header injection, logging (access line format, error log).
#![allow(missing_docs)]

#[path = "wsgi_support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};

use may_gevent::pywsgi::{from_fn, AppResult, Body, Environ, StartResponse};
use support::serve;

const INTERNAL_ERROR: &str =
    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\
                              Content-Length: 21\r\nDate: X\r\n\r\nInternal Server Error";

#[test]
fn error_in_application_is_a_500() {
    let server = serve(from_fn(|_env, _start_response| {
        Err("TestError.application".into())
    }));
    let text = server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(text, INTERNAL_ERROR);
    let record = server.record_containing("TestError.application");
    assert!(record.starts_with("ERROR application error"), "{record}");
    // the environ is logged redacted
    assert!(record.contains("(hidden keys:"), "{record}");
    assert!(record.contains("'REMOTE_ADDR': '127.0.0.1'"), "{record}");
}

#[test]
fn error_after_start_response_is_a_500() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Err("TestError_after_start_response.application".into())
    }));
    assert_eq!(
        server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        INTERNAL_ERROR
    );
}

#[test]
fn head_request_error_has_no_body() {
    let server = serve(from_fn(|_env, _start_response| Err("boom".into())));
    let text = server.raw_text(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        text,
        INTERNAL_ERROR.trim_end_matches("Internal Server Error")
    );
}

#[test]
fn error_after_first_chunk_truncates_the_response() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        let items: Vec<Result<Vec<u8>, may_gevent::pywsgi::AppError>> =
            vec![Ok(b"hello".to_vec()), Err("TestErrorAfterChunk".into())];
        Ok(Body::try_stream(items))
    }));
    let text =
        server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    );
    assert!(server
        .record_containing("TestErrorAfterChunk")
        .starts_with("ERROR"));
}

#[test]
fn panics_are_500s_and_logged() {
    let server = serve(from_fn(|env, start_response| {
        if env.path_info() == "/after" {
            let mut write = start_response.call("200 OK", &[])?;
            write.write(b"partial")?;
        }
        panic!("boom at {}", env.path_info());
    }));
    assert_eq!(
        server.raw_text(b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        INTERNAL_ERROR
    );
    assert!(server
        .record_containing("boom at /before")
        .starts_with("ERROR application panicked"));
    let text = server.raw_text(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\nDate: X\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n"
    );
}

#[test]
fn a_panicking_body_iterator_is_caught() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[])?;
        Ok(Body::stream(std::iter::from_fn(|| -> Option<Vec<u8>> {
            panic!("iterator panic")
        })))
    }));
    assert_eq!(
        server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        INTERNAL_ERROR
    );
}

#[test]
fn application_that_never_calls_start_response() {
    let server = serve(from_fn(|_env, _start_response| Ok(Body::empty())));
    assert_eq!(
        server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        INTERNAL_ERROR
    );
    assert!(server
        .record_containing("The application did not call start_response()")
        .starts_with("ERROR"));
}

#[test]
fn non_latin1_header_value_is_an_error_in_the_app() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let errors2 = errors.clone();
    let server = serve(
        move |_env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            let res = start_response.call(
                "200 PASSED",
                &[
                    ("Content-Type", "text/plain"),
                    ("Custom-Header", "\u{1f4a3}"),
                ],
            );
            if let Err(err) = &res {
                errors2.lock().unwrap().push(err.to_string());
            }
            res?;
            Ok(Body::empty())
        },
    );
    let text = server.raw_text(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(text, INTERNAL_ERROR);
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("Non-latin1 header"), "{}", errors[0]);
}

#[test]
fn header_injection_is_refused_with_gevent_messages() {
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 3] = [
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
        let seen = Arc::new(Mutex::new(None));
        let seen2 = seen.clone();
        let server = serve(
            move |_env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
                *seen2.lock().unwrap() = start_response
                    .call(status, headers)
                    .err()
                    .map(|err| err.to_string());
                Ok(Body::empty())
            },
        );
        let text = server.raw_text(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
        assert!(!text.contains("Hi\r\nConnection"), "{text}");
        assert_eq!(seen.lock().unwrap().as_deref(), Some(message));
    }
}

#[test]
fn access_log_line_format() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
        Ok("hello".into())
    }));
    let wire = server.raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let lines = server.access_lines(1);
    let line = &lines[0];
    // 127.0.0.1 - - [2026-11-21 15:08:43] "GET / HTTP/1.1" 200 126 0.000125
    let (prefix, rest) = line.split_at("127.0.0.1 - - [".len());
    assert_eq!(prefix, "127.0.0.1 - - [");
    let (stamp, rest) = rest.split_at(19);
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { 'D' } else { c })
        .collect();
    assert_eq!(shape, "DDDD-DD-DD DD:DD:DD");
    let expected = format!("] \"GET / HTTP/1.1\" 200 {} ", wire.len());
    assert!(rest.starts_with(&expected), "{line}");
    let duration = &rest[expected.len()..];
    let (secs, micros) = duration.split_once('.').unwrap();
    assert!(
        secs.parse::<u64>().is_ok() && micros.len() == 6 && micros.parse::<u64>().is_ok(),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

/// The logged duration is the time the request took (the application's 30 ms included).
#[test]
fn access_log_duration_covers_the_application() {
    let server = serve(from_fn(|_env, start_response| {
        may::coroutine::sleep(std::time::Duration::from_millis(30));
        start_response.call("200 OK", &[])?;
        Ok("slow".into())
    }));
    server.raw(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let lines = server.access_lines(1);
    let secs: f64 = lines[0]
        .rsplit(' ')
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration: {}", lines[0]));
    assert!((0.030..5.0).contains(&secs), "{}", lines[0]);
}

#[test]
fn access_log_for_rejected_requests() {
    let server = serve(from_fn(|_env, _start_response| unreachable!()));
    let wire = server.raw(b"GET / HTTP %\r\n\r\n");
    assert!(wire.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    let line = &server.access_lines(1)[0];
    assert!(
        line.ends_with(&format!("\"GET / HTTP %\" 400 {} -", wire.len())),
        "{line}"
    );
    assert!(server
        .record_containing("invalid request")
        .starts_with("INFO"));
    assert!(server.records.errors().is_empty());
}

#[test]
fn client_disconnect_is_not_an_error() {
    let server = serve(from_fn(|_env, start_response| {
        let mut write = start_response.call("200 OK", &[])?;
        loop {
            write.write(&[b'x'; 65536])?;
        }
    }));
    let mut client = server.client();
    client.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut buf = [0u8; 1024];
    std::io::Read::read_exact(&mut client.reader, &mut buf).unwrap();
    drop(client);
    let record = server.record_containing("client disconnected");
    assert!(record.starts_with("DEBUG"), "{record}");
    assert!(
        server.records.errors().is_empty(),
        "{:?}",
        server.records.errors()
    );
}
