//! `WsgiServer` reads plain connections without may's per-read timer (a sweeper enforces the
//! deadlines) and skips the read that would only find the socket empty. What must hold:
//! a cancel in such a wait unwinds the handler as a may read's would, the timeouts still
//! fire, and no input is ever left unread while the server waits (requests and bodies that
//! arrive in pieces, while responses are written, with the client closing mid-stream).

#[path = "wsgi_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{from_fn, Application};
use support::{serve, serve_with};

/// Counts its drops: shows that a cancelled handler's frames were unwound.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn blocked_body_reader(started: mpsc::Sender<()>, dropped: Arc<AtomicUsize>) -> impl Application {
    let started = Mutex::new(started);
    from_fn(move |env, start_response| {
        let _guard = Guard(dropped.clone());
        started.lock().unwrap().send(()).unwrap();
        let mut body = Vec::new();
        // the client promised 10 bytes and sends none
        env.input().read_to_end(&mut body)?;
        start_response.call("200 OK", &[])?;
        Ok("never".into())
    })
}

#[test]
fn a_kill_during_a_body_read_unwinds_the_handler() {
    let (tx, rx) = mpsc::channel();
    let dropped = Arc::new(AtomicUsize::new(0));
    // no body timeout: only the kill can end the read
    let server = serve_with(
        |c| c.body_read_timeout(None),
        blocked_body_reader(tx, dropped.clone()),
    );
    let mut client = server.client();
    client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n");
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let begin = Instant::now();
    assert!(
        server.server.pool().kill(Duration::from_secs(5)),
        "the handler was not killed"
    );
    assert!(
        begin.elapsed() < Duration::from_secs(3),
        "{:?}",
        begin.elapsed()
    );
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the handler's frames did not unwind"
    );
    assert!(server.server.pool().is_empty());
    client.assert_closed();
}

/// Kills that come while a body streams in, so that the cancel meets the reader running or
/// woken by the next piece (may's `wait_io` then returns the event and drops the cancel's
/// mark): every handler must still unwind, in every round.
#[test]
fn kills_while_bodies_stream_in_unwind_every_handler() {
    const CONNECTIONS: usize = 4;
    for round in 0..8 {
        let (tx, rx) = mpsc::channel();
        let started = Mutex::new(tx);
        let dropped = Arc::new(AtomicUsize::new(0));
        let drops = dropped.clone();
        let server = serve_with(
            |c| c.body_read_timeout(None),
            from_fn(move |env, start_response| {
                let _guard = Guard(drops.clone());
                let mut piece = [0u8; 64];
                let mut first = true;
                loop {
                    if env.input().read(&mut piece)? == 0 {
                        break;
                    }
                    if first {
                        first = false;
                        started.lock().unwrap().send(()).unwrap();
                    }
                }
                start_response.call("200 OK", &[])?;
                Ok("never".into())
            }),
        );
        let writers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let mut stream = server.connect();
                stream.set_nodelay(true).unwrap();
                std::thread::spawn(move || {
                    stream
                        .write_all(
                            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n",
                        )
                        .unwrap();
                    // small pieces until the server closes the connection
                    let mut sent = 0usize;
                    while stream.write_all(b"0123456789").is_ok() {
                        sent += 10;
                        if sent >= 100_000_000 {
                            break;
                        }
                    }
                })
            })
            .collect();
        for _ in 0..CONNECTIONS {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        assert!(
            server.server.pool().kill(Duration::from_secs(5)),
            "round {round}: a handler was not killed ({} of {CONNECTIONS} unwound)",
            dropped.load(Ordering::SeqCst)
        );
        assert_eq!(dropped.load(Ordering::SeqCst), CONNECTIONS, "round {round}");
        for writer in writers {
            writer.join().unwrap();
        }
    }
}

#[test]
fn a_kill_during_a_keepalive_wait_ends_the_connection() {
    let server = serve_with(
        |c| c.keepalive_timeout(None),
        from_fn(|_env, start_response| {
            start_response.call("200 OK", &[])?;
            Ok("ok".into())
        }),
    );
    let mut client = server.client();
    assert_eq!(client.get("/").body_text(), "ok");
    // waiting for the next request (before IDLE_RELEASE: still on its coroutine)
    let begin = Instant::now();
    assert!(server.server.pool().kill(Duration::from_secs(5)));
    assert!(
        begin.elapsed() < Duration::from_secs(3),
        "{:?}",
        begin.elapsed()
    );
    client.assert_closed();
}

#[test]
fn timeouts_fire_through_the_sweeper() {
    // header timeout: 408 after it, not much later
    let server = serve_with(
        |c| c.header_read_timeout(Duration::from_millis(400)),
        from_fn(|_env, start_response| {
            start_response.call("200 OK", &[])?;
            Ok("ok".into())
        }),
    );
    let mut stream = server.connect();
    let begin = Instant::now();
    stream.write_all(b"GET / HTTP/1.1\r\nHost:").unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let took = begin.elapsed();
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_millis(1500),
        "408 after {took:?}"
    );
}

#[test]
fn input_in_small_pieces_while_responses_are_written_is_never_left_unread() {
    // Requests with bodies, Content-Length and chunked, sent in small pieces (every size
    // from 1 to 13 bytes, and all of 7) while the responses to the earlier ones are
    // written: a piece that arrives between a read and a response must still wake the next
    // read. Several connections, since the interleaving is the scheduler's.
    let server = serve(from_fn(|env, start_response| {
        let body = env.input().read_all()?;
        start_response.call("200 OK", &[])?;
        Ok(body.into())
    }));
    const REQUESTS: usize = 40;
    let mut batch = Vec::new();
    for i in 0..REQUESTS {
        let body = format!("body-{i}");
        if i % 2 == 0 {
            batch.extend_from_slice(
                format!(
                    "POST /{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        } else {
            batch.extend_from_slice(
                format!(
                    "POST /{i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
                     {:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
        }
    }
    for round in 0..16 {
        let stream = server.connect();
        let mut writer = stream.try_clone().unwrap();
        let pieces = batch.clone();
        let sender = std::thread::spawn(move || {
            let mut rest = &pieces[..];
            let mut size = 1;
            while !rest.is_empty() {
                let n = if round % 2 == 0 { size } else { 7 }.min(rest.len());
                writer.write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
                size = size % 13 + 1;
            }
        });
        let mut client = support::Client::new(stream);
        for i in 0..REQUESTS {
            let resp = client.read(false).expect("a response");
            assert_eq!(resp.body_text(), format!("body-{i}"), "round {round}");
        }
        support::join_within("sender", Duration::from_secs(10), sender);
    }
}

#[test]
fn an_idle_connection_in_a_bounded_pool_waits_without_a_buffer_over_tcp_and_unix() {
    // With a bounded pool nothing is parked: past IDLE_RELEASE the connection waits on its
    // coroutine for input without reading (a peek), then serves the next request.
    use may_gevent::pywsgi::{WsgiServer, IDLE_RELEASE};
    support::init();
    let sock = support::UnixPath::new("pywsgi-sweep");
    let app = || {
        from_fn(|env, start_response| {
            start_response.call("200 OK", &[])?;
            Ok(format!("path={}", env.path_info()).into())
        })
    };
    let (config, _access, _records) = support::test_config();
    let tcp = WsgiServer::builder("127.0.0.1:0", app())
        .config(config)
        .spawn(may_gevent::Pool::new(4))
        .build()
        .unwrap();
    tcp.start().unwrap();
    let (config, _access, _records) = support::test_config();
    let unix = WsgiServer::builder(
        std::os::unix::net::UnixListener::bind(&sock.path).unwrap(),
        app(),
    )
    .config(config)
    .spawn(may_gevent::Pool::new(4))
    .build()
    .unwrap();
    unix.start().unwrap();

    let mut tcp_client = support::Client::new(support::connect_to(tcp.local_addr().unwrap()));
    let mut unix_client = support::UnixClient::connect(&sock.path);
    assert_eq!(tcp_client.get("/t1").body_text(), "path=/t1");
    assert_eq!(unix_client.get("/u1"), "path=/u1");
    std::thread::sleep(IDLE_RELEASE + Duration::from_millis(300));
    assert_eq!(tcp.parked_connections() + unix.parked_connections(), 0);
    assert_eq!(tcp.pool().len() + unix.pool().len(), 2);
    assert_eq!(tcp_client.get("/t2").body_text(), "path=/t2");
    assert_eq!(unix_client.get("/u2"), "path=/u2");
}

#[test]
fn timeouts_too_long_for_a_deadline_mean_no_timeout() {
    use may_gevent::pywsgi::{WsgiServer, IDLE_RELEASE};
    support::init();
    let huge = |c: may_gevent::pywsgi::WsgiConfig| {
        c.header_read_timeout(Duration::MAX)
            .keepalive_timeout(Duration::MAX)
            .body_read_timeout(Duration::MAX)
    };
    let app = || {
        from_fn(|env, start_response| {
            let body = env.input().read_all()?;
            start_response.call("200 OK", &[])?;
            Ok(body.into())
        })
    };
    // default spawn (parked when idle) and a bounded pool (waits on its coroutine)
    let parked = serve_with(huge, app());
    let (config, _access, _records) = support::test_config();
    let pooled = WsgiServer::builder("127.0.0.1:0", app())
        .config(huge(config))
        .spawn(may_gevent::Pool::new(2))
        .build()
        .unwrap();
    pooled.start().unwrap();
    let mut clients = [
        parked.client(),
        support::Client::new(support::connect_to(pooled.local_addr().unwrap())),
    ];
    let post = |client: &mut support::Client, body: &str| {
        client.send(
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        client.read(false).expect("a response").body_text()
    };
    for client in &mut clients {
        assert_eq!(post(client, "one"), "one");
    }
    std::thread::sleep(IDLE_RELEASE + Duration::from_millis(300));
    for client in &mut clients {
        assert_eq!(post(client, "two"), "two");
    }
}
