//! WsgiServer over TLS (gevent: `WSGIServer(..., keyfile=, certfile=)`): HTTP/1.1 behaves as
//! over TCP — keep-alive, pipelining, chunked bodies both ways, `100 Continue`, limits,
//! timeouts, `stop(timeout)` — and `wsgi.url_scheme` is `https`. Certificates are generated at
//! test time (rcgen); every wait is bounded.
#![cfg(feature = "tls")]
#![allow(missing_docs)]

mod support;
#[path = "support/tls.rs"]
mod tls_support;
mod wsgi_support;

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AppResult, Body, Environ, StartResponse, WsgiConfig, WsgiServer};
use native_tls::TlsStream;
use support::{Rendezvous, RENDEZVOUS_WAIT};
use tls_support::TestCert;
use wsgi_support::{chunk_encode, read_response, test_config, Resp};

type TlsClient = BufReader<TlsStream<TcpStream>>;

/// `/scheme`: the URL scheme twice (accessor and key); `/echo`: the body back; `/stream`: three
/// streamed chunks; anything else: the path.
fn app(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let path = env.path_info().to_owned();
    match path.as_str() {
        "/scheme" => {
            let scheme = format!(
                "{} {}",
                env.url_scheme(),
                env.get("wsgi.url_scheme").unwrap_or("-")
            );
            start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            Ok(scheme.into())
        }
        "/echo" => {
            let body = env.input().read_all()?;
            start_response.call("200 OK", &[("Content-Type", "application/octet-stream")])?;
            Ok(body.into())
        }
        "/stream" => {
            start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            Ok(Body::stream(["a", "bb", "ccc"]))
        }
        _ => {
            start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
            Ok(path.into())
        }
    }
}

/// A started TLS WsgiServer (test config adjusted by `tweak`) and its address.
fn serve_tls(
    cert: &TestCert,
    tweak: impl FnOnce(WsgiConfig) -> WsgiConfig,
    app: impl may_gevent::pywsgi::Application,
) -> (WsgiServer, SocketAddr) {
    serve_tls_on("127.0.0.1:0".parse().unwrap(), cert, tweak, app)
}

/// [`serve_tls`] on `addr`.
fn serve_tls_on(
    addr: SocketAddr,
    cert: &TestCert,
    tweak: impl FnOnce(WsgiConfig) -> WsgiConfig,
    app: impl may_gevent::pywsgi::Application,
) -> (WsgiServer, SocketAddr) {
    wsgi_support::init();
    let (config, _access, _records) = test_config();
    let server = WsgiServer::builder(addr, app)
        .config(tweak(config))
        .tls_files(&cert.certfile, &cert.keyfile)
        .backlog(1024)
        .build()
        .expect("build");
    server.start().expect("start");
    let addr = server.address().and_then(|a| a.as_inet()).expect("bound");
    (server, addr)
}

fn tls_client(cert: &TestCert, addr: SocketAddr) -> TlsClient {
    BufReader::new(cert.connect(addr))
}

fn send(client: &mut TlsClient, bytes: &[u8]) {
    client.get_mut().write_all(bytes).unwrap();
    client.get_mut().flush().unwrap();
}

fn get(client: &mut TlsClient, path: &str) -> Resp {
    send(
        client,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
    );
    read_response(client, false).expect("a response")
}

/// The TLS peer closed the connection (EOF, with or without close_notify, or a reset): not a
/// timeout and no more bytes.
fn assert_tls_closed(client: &mut TlsClient) {
    let mut buf = [0u8; 64];
    match client.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected the connection closed, read {:?}", &buf[..n]),
        Err(err) => assert!(
            !matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "expected the connection closed, still open: {err}"
        ),
    }
}

#[test]
fn url_scheme_is_https_over_tls_and_http_without() {
    let cert = TestCert::generate();
    let (_server, addr) = serve_tls(&cert, |c| c, app);
    let mut client = tls_client(&cert, addr);
    let resp = get(&mut client, "/scheme");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "https https");

    let plain = wsgi_support::serve(app);
    let resp = plain.client().get("/scheme");
    assert_eq!(resp.body_text(), "http http");
}

#[test]
fn keep_alive_over_tls() {
    let cert = TestCert::generate();
    let (_server, addr) = serve_tls(&cert, |c| c, app);
    let mut client = tls_client(&cert, addr);
    for i in 0..5 {
        let resp = get(&mut client, &format!("/ka/{i}"));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Connection"), None);
        assert_eq!(resp.body_text(), format!("/ka/{i}"));
    }
    // HTTP/1.0 keep-alive when asked, then Connection: close honoured
    send(
        &mut client,
        b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let resp = read_response(&mut client, false).unwrap();
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    assert_eq!(resp.body_text(), "/ten");
    send(
        &mut client,
        b"GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let resp = read_response(&mut client, false).unwrap();
    assert_eq!(resp.body_text(), "/last");
    assert_tls_closed(&mut client);
}

#[test]
fn an_idle_tls_connection_keeps_its_coroutine_and_is_served_after_idle() {
    // TLS records may hold input the socket no longer shows: never parked without a
    // coroutine (plain connections are, after IDLE_RELEASE)
    let cert = TestCert::generate();
    let (server, addr) = serve_tls(&cert, |c| c, app);
    let mut client = tls_client(&cert, addr);
    assert_eq!(get(&mut client, "/before").body_text(), "/before");
    std::thread::sleep(may_gevent::pywsgi::IDLE_RELEASE + std::time::Duration::from_millis(300));
    assert_eq!(server.parked_connections(), 0);
    assert_eq!(server.pool().len(), 1);
    assert_eq!(get(&mut client, "/after").body_text(), "/after");
}

#[test]
fn pipelined_requests_are_answered_in_order_over_tls() {
    let cert = TestCert::generate();
    let (_server, addr) = serve_tls(&cert, |c| c, app);
    let mut client = tls_client(&cert, addr);
    let mut batch = Vec::new();
    for i in 0..16 {
        batch.extend(format!("GET /p/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").bytes());
    }
    batch.extend(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody");
    batch.extend(b"GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n");
    send(&mut client, &batch);
    for i in 0..16 {
        let resp = read_response(&mut client, false).unwrap();
        assert_eq!(resp.body_text(), format!("/p/{i}"));
    }
    assert_eq!(
        read_response(&mut client, false).unwrap().body_text(),
        "body"
    );
    assert_eq!(
        read_response(&mut client, false).unwrap().body_text(),
        "/after"
    );
}

#[test]
fn chunked_request_and_response_bodies_over_tls() {
    let cert = TestCert::generate();
    let (_server, addr) = serve_tls(&cert, |c| c, app);
    let mut client = tls_client(&cert, addr);
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend(chunk_encode(&["hello ", "over ", "tls", ""], ";ext=1"));
    send(&mut client, &request);
    let resp = read_response(&mut client, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "hello over tls");

    let resp = get(&mut client, "/stream");
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(
        resp.chunks.unwrap(),
        [b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]
    );
    // still usable afterwards
    assert_eq!(get(&mut client, "/x").body_text(), "/x");
}

#[test]
fn expect_100_continue_over_tls() {
    let cert = TestCert::generate();
    let (_server, addr) = serve_tls(&cert, |c| c, app);
    let mut client = tls_client(&cert, addr);
    send(
        &mut client,
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    let interim = read_response(&mut client, false).unwrap();
    assert_eq!((interim.status, interim.reason.as_str()), (100, "Continue"));
    send(&mut client, b"hello");
    let resp = read_response(&mut client, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "hello");
    // an app that does not read the body gets no 100 sent
    send(
        &mut client,
        b"POST /nobody HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
          Expect: 100-continue\r\n\r\n",
    );
    let resp = read_response(&mut client, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_text(), "/nobody");
}

#[test]
fn limits_over_tls() {
    let cert = TestCert::generate();
    let (_server, addr) = serve_tls(&cert, |c| c, app);

    let mut client = tls_client(&cert, addr);
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(9000)
    );
    send(&mut client, long.as_bytes());
    let resp = read_response(&mut client, false).unwrap();
    assert_eq!((resp.status, resp.reason.as_str()), (414, "URI Too Long"));
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_tls_closed(&mut client);

    let mut client = tls_client(&cert, addr);
    let mut many = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    send(&mut client, many.as_bytes());
    let resp = read_response(&mut client, false).unwrap();
    assert_eq!(resp.status, 431);
    assert_tls_closed(&mut client);

    // a strictness rule: CL and TE together
    let mut client = tls_client(&cert, addr);
    send(
        &mut client,
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(read_response(&mut client, false).unwrap().status, 400);
    assert_tls_closed(&mut client);

    // and the server still serves
    let mut client = tls_client(&cert, addr);
    assert_eq!(get(&mut client, "/ok").body_text(), "/ok");
}

#[test]
fn header_read_timeout_over_tls() {
    const TIMEOUT: Duration = Duration::from_millis(400);
    let cert = TestCert::generate();
    let (_server, addr) = serve_tls(&cert, |c| c.header_read_timeout(TIMEOUT), app);
    // Timed from before the connect: the server's deadline cannot start earlier.
    let begin = Instant::now();
    let mut slow = tls_client(&cert, addr);
    send(&mut slow, b"GET / HTTP/1.1\r\nHost: loc");
    // others are served meanwhile
    let mut other = tls_client(&cert, addr);
    assert_eq!(get(&mut other, "/other").body_text(), "/other");
    let resp = read_response(&mut slow, false).unwrap();
    let took = begin.elapsed();
    assert_eq!(
        (resp.status, resp.reason.as_str()),
        (408, "Request Timeout")
    );
    assert!(
        took >= TIMEOUT - Duration::from_millis(50) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_tls_closed(&mut slow);

    // a connection that sends nothing after its handshake is closed silently
    let begin = Instant::now();
    let mut idle = tls_client(&cert, addr);
    assert_tls_closed(&mut idle);
    let took = begin.elapsed();
    assert!(
        took >= TIMEOUT - Duration::from_millis(50) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn two_hundred_concurrent_tls_connections_with_several_requests_each() {
    const CLIENTS: usize = 200;
    const REQUESTS: usize = 5;
    let cert = Arc::new(TestCert::generate());
    // one connector for every client: OpenSSL 3 stalls when each thread builds its own
    let _ = cert.connector();
    let (server, addr) = serve_tls(&cert, |c| c, app);
    let begin = Instant::now();
    // every client holds its connection open at the barrier: all 200 are open at once
    let barrier = Arc::new(Rendezvous::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (cert, barrier) = (cert.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<(), String> {
                    let first =
                        cert.try_connect(addr)
                            .map(BufReader::new)
                            .and_then(|mut client| {
                                let request =
                                    format!("GET /c{c}/0 HTTP/1.1\r\nHost: localhost\r\n\r\n");
                                client.get_mut().write_all(request.as_bytes())?;
                                let resp = read_response(&mut client, false)?;
                                Ok((client, resp))
                            });
                    barrier.wait(RENDEZVOUS_WAIT)?;
                    let (mut client, resp) = first.map_err(|err| format!("client {c}: {err}"))?;
                    let mut bodies = vec![resp.body_text()];
                    for r in 1..REQUESTS {
                        let request = format!("GET /c{c}/{r} HTTP/1.1\r\nHost: localhost\r\n\r\n");
                        client
                            .get_mut()
                            .write_all(request.as_bytes())
                            .map_err(|err| format!("client {c} request {r}: {err}"))?;
                        let resp = read_response(&mut client, false)
                            .map_err(|err| format!("client {c} request {r}: {err}"))?;
                        bodies.push(resp.body_text());
                    }
                    for (r, body) in bodies.iter().enumerate() {
                        if *body != format!("/c{c}/{r}") {
                            return Err(format!("client {c} request {r}: {body:?}"));
                        }
                    }
                    Ok(())
                })
                .unwrap()
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap().err())
        .collect();
    let took = begin.elapsed();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    support::eventually("all handlers returned", || server.pool().is_empty());
}

/// Signals on a channel when dropped (observes that a cancelled application unwound).
struct DropSignal(mpsc::Sender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

#[test]
fn stop_ends_an_app_blocked_reading_a_tls_request_body() {
    let cert = TestCert::generate();
    let (tx, rx) = mpsc::channel::<&'static str>();
    let blocked_app =
        move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
            let _guard = DropSignal(tx.clone());
            tx.send("started").unwrap();
            let body = env.input().read_all(); // SSL_read: the client never sends the body
            let _ = tx.send("read returned");
            start_response.call("200 OK", &[])?;
            Ok(body?.into())
        };
    // A reserved port: once the listener is closed, connects are refused for sure.
    let reserved = support::ReservedPort::new();
    let (server, addr) = serve_tls_on(reserved.addr, &cert, |c| c, blocked_app);
    let mut client = tls_client(&cert, addr);
    send(
        &mut client,
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n",
    );
    assert_eq!(rx.recv_timeout(tls_support::TLS_WAIT).unwrap(), "started");
    let begin = Instant::now();
    server.stop(Duration::from_millis(300));
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "stop returned after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    // stop()'s shutdown ends the read (an error: the body is cut short); the application
    // returns through its normal path and its Drop guard runs.
    assert_eq!(
        rx.recv_timeout(tls_support::TLS_WAIT).unwrap(),
        "read returned"
    );
    assert_eq!(
        rx.recv_timeout(tls_support::TLS_WAIT).unwrap(),
        "dropped",
        "the application's Drop guard ran"
    );
    assert!(server.pool().is_empty());
    assert_tls_closed(&mut client);
    // the listener is closed too
    support::assert_connection_refused(addr);
}
