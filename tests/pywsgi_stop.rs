//! Stopping a WsgiServer: idle keep-alive connections end at once, requests in flight finish
//! (with `Connection: close`), stuck ones are cancelled after the timeout.

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::from_fn;
use support::{read_response, serve};

#[test]
fn stop_closes_idle_keepalive_connections_at_once() {
    let server = serve(from_fn(|_env, start_response| {
        start_response.call("200 OK", &[])?;
        Ok("hi".into())
    }));
    let mut idle: Vec<_> = (0..5).map(|_| server.client()).collect();
    for client in &mut idle {
        assert_eq!(client.get("/").body, b"hi");
    }
    let begin = Instant::now();
    // Far beyond the bound below: stop must not wait for idle connections at all.
    server.server.stop(support::CLIENT_TIMEOUT * 3);
    let took = begin.elapsed();
    assert!(
        took < support::CLIENT_TIMEOUT,
        "stop waited {took:?} for idle connections"
    );
    for client in &mut idle {
        client.assert_closed();
    }
}

#[test]
fn stop_lets_a_request_in_flight_finish_with_connection_close() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    // The application holds its response until the test lets it go, after stop() has begun.
    let proceed = Arc::new(may::sync::SyncFlag::new());
    let go_on = proceed.clone();
    let server = serve(from_fn(move |env, start_response| {
        if env.path_info() == "/slow" {
            tx.lock().unwrap().send(()).unwrap();
            if !go_on.wait_timeout(support::CLIENT_TIMEOUT) {
                start_response.call("500 Internal Server Error", &[])?;
                return Ok("the test never let the request finish".into());
            }
        }
        start_response.call("200 OK", &[])?;
        Ok("finished".into())
    }));
    // An idle keep-alive connection: its closing shows that stop() has marked the server as
    // closing (the sweep that closes it runs right after).
    let mut idle = server.client();
    assert_eq!(idle.get("/").body, b"finished");
    let mut client = server.client();
    client.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    rx.recv_timeout(support::CLIENT_TIMEOUT).unwrap();
    let control = server.server.handle();
    let stopper = std::thread::spawn(move || {
        let begin = Instant::now();
        // Far beyond the bound below: stop returns when the request has finished.
        control.stop(support::CLIENT_TIMEOUT * 3);
        begin.elapsed()
    });
    idle.assert_closed();
    proceed.fire();
    let resp = read_response(&mut client.reader, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"finished");
    assert_eq!(resp.header("Connection"), Some("close"));
    client.assert_closed();
    let took = support::join_within("stop()", support::CLIENT_TIMEOUT * 4, stopper);
    assert!(took < support::CLIENT_TIMEOUT, "stop took {took:?}");
}

#[test]
fn stop_ends_a_request_stuck_past_the_timeout() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = serve(from_fn(move |env, start_response| {
        tx.lock().unwrap().send(()).unwrap();
        let mut body = Vec::new();
        // the client promised 10 bytes and sends none: blocked in the body read until
        // stop() shuts the connection down (the read then fails and the app returns)
        std::io::Read::read_to_end(env.input(), &mut body)?;
        start_response.call("200 OK", &[])?;
        Ok("never".into())
    }));
    let mut client = server.client();
    client
        .writer
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let begin = Instant::now();
    server.server.stop(Duration::from_millis(300));
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    client.assert_closed();
    assert!(server.server.pool().is_empty());
}
