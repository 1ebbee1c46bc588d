//! StreamServer behaviour over real sockets, for every spawn strategy (gevent's
//! test__server.py runs one suite per spawn: TestDefaultSpawn, TestPoolSpawn, TestNoneSpawn).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::{Address, HandlerError, Pool, Spawn, Stream, StreamServer};
use support::*;

/// Sends a message when dropped: observes that a cancelled handler unwound.
struct DropSignal(mpsc::Sender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

/// gevent test__server's handler, line based: `ping` -> `PONG`, `panic` -> panic,
/// `fail` -> Err, anything else -> `?`. Returns (closing the connection) after one line.
fn ping_handler(stream: Stream, _addr: Address) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    match line.trim() {
        "ping" => reader.get_mut().write_all(b"PONG\n"),
        "panic" => panic!("asked to panic"),
        "fail" => Err(std::io::Error::other("asked to fail")),
        _ => reader.get_mut().write_all(b"?\n"),
    }
}

fn ping(addr: std::net::SocketAddr) -> Vec<u8> {
    exchange(addr, b"ping\n")
}

macro_rules! spawn_suite {
    ($name:ident, $spawn:expr) => {
        mod $name {
            use super::*;

            fn spawn() -> Spawn {
                $spawn
            }

            #[test]
            fn refused_before_start_served_after_start_refused_after_stop() {
                // A port held for this test: refused while the server does not listen.
                let reserved = ReservedPort::new();
                let (addr, port) = (reserved.addr, reserved.port());
                let server = StreamServer::builder(addr, ping_handler)
                    .spawn(spawn())
                    .build()
                    .unwrap();
                assert!(server.closed() && !server.started());
                assert_connection_refused(addr);
                server.start().unwrap();
                assert!(server.started() && !server.closed());
                assert_eq!(server.server_port(), Some(port));
                assert_eq!(ping(addr), b"PONG\n");
                assert_eq!(ping(addr), b"PONG\n");
                server.stop(None);
                assert!(!server.started() && server.closed());
                assert_connection_refused(addr);
            }

            #[test]
            fn handler_return_closes_the_connection() {
                let server = StreamServer::builder("127.0.0.1:0", |_s: Stream, _a: Address| {})
                    .spawn(spawn())
                    .build()
                    .unwrap();
                server.start().unwrap();
                let mut client = connect(inet(&server));
                assert_eq!(read_to_end(&mut client), b"");
            }

            #[test]
            fn panic_and_error_reach_handle_error_and_server_keeps_serving() {
                let (tx, rx) = mpsc::channel::<String>();
                let tx = Mutex::new(tx);
                let server = StreamServer::builder("127.0.0.1:0", ping_handler)
                    .spawn(spawn())
                    .handle_error(move |err: &HandlerError, _addr: &Address| {
                        let kind = match err {
                            HandlerError::Panic(msg) => format!("panic: {msg}"),
                            other => format!("error: {other}"),
                        };
                        tx.lock().unwrap().send(kind).unwrap();
                    })
                    .build()
                    .unwrap();
                server.start().unwrap();
                let addr = inet(&server);
                assert_eq!(exchange(addr, b"panic\n"), b"");
                assert_eq!(rx.recv_timeout(WAIT).unwrap(), "panic: asked to panic");
                assert_eq!(exchange(addr, b"fail\n"), b"");
                assert_eq!(rx.recv_timeout(WAIT).unwrap(), "error: asked to fail");
                assert_eq!(ping(addr), b"PONG\n");
            }

            #[test]
            fn stop_shuts_down_a_handler_blocked_in_read_after_the_timeout() {
                let (tx, rx) = mpsc::channel();
                let tx = Mutex::new(tx);
                let server =
                    StreamServer::builder("127.0.0.1:0", move |mut s: Stream, _a: Address| {
                        let sender = tx.lock().unwrap().clone();
                        let _guard = DropSignal(sender.clone());
                        sender.send("started").unwrap();
                        let mut buf = [0u8; 1];
                        // the client never sends: only stop()'s shutdown ends this read
                        let n = s
                            .read(&mut buf)
                            .expect("a shut-down socket reads end-of-file");
                        let _ = sender.send(if n == 0 { "read eof" } else { "read data" });
                    })
                    .spawn(spawn())
                    .build()
                    .unwrap();
                server.start().unwrap();
                let mut client = connect(inet(&server));
                assert_eq!(rx.recv_timeout(WAIT).unwrap(), "started");
                let begin = Instant::now();
                server.stop(Duration::from_millis(300));
                let took = begin.elapsed();
                assert!(
                    took >= Duration::from_millis(300),
                    "stop returned after {took:?}"
                );
                assert!(took < Duration::from_secs(3), "stop took {took:?}");
                // The handler left through its normal path, not by a cancel.
                assert_eq!(rx.recv_timeout(WAIT).unwrap(), "read eof");
                assert_eq!(rx.recv_timeout(WAIT).unwrap(), "dropped");
                assert_eq!(
                    read_to_end(&mut client),
                    b"",
                    "socket closed by the shutdown"
                );
                assert!(server.pool().is_empty());
            }

            #[test]
            fn stop_cancels_a_handler_blocked_elsewhere_after_the_grace() {
                let (tx, rx) = mpsc::channel();
                let tx = Mutex::new(tx);
                let server =
                    StreamServer::builder("127.0.0.1:0", move |_s: Stream, _a: Address| {
                        let sender = tx.lock().unwrap().clone();
                        let _guard = DropSignal(sender.clone());
                        sender.send("started").unwrap();
                        may::coroutine::sleep(Duration::from_secs(60)); // no socket to shut down
                        let _ = sender.send("sleep returned");
                    })
                    .spawn(spawn())
                    .build()
                    .unwrap();
                server.start().unwrap();
                let mut client = connect(inet(&server));
                assert_eq!(rx.recv_timeout(WAIT).unwrap(), "started");
                let begin = Instant::now();
                server.stop(Duration::from_millis(300));
                let took = begin.elapsed();
                assert!(
                    took >= Duration::from_millis(300) + may_gevent::STOP_GRACE,
                    "stop returned after {took:?}"
                );
                assert!(took < Duration::from_secs(4), "stop took {took:?}");
                assert_eq!(rx.recv_timeout(WAIT).unwrap(), "dropped");
                assert!(
                    rx.try_recv().is_err(),
                    "the handler ran on after the cancel"
                );
                assert_eq!(read_to_end(&mut client), b"", "socket closed by the cancel");
                assert!(server.pool().is_empty());
            }

            #[test]
            fn stop_lets_a_quick_handler_finish() {
                let (tx, rx) = mpsc::channel();
                let tx = Mutex::new(tx);
                let server =
                    StreamServer::builder("127.0.0.1:0", move |mut s: Stream, _a: Address| {
                        let mut buf = [0u8; 1];
                        s.read_exact(&mut buf)?;
                        tx.lock().unwrap().send(()).unwrap();
                        may::coroutine::sleep(Duration::from_millis(100));
                        s.write_all(b"done")
                    })
                    .spawn(spawn())
                    .build()
                    .unwrap();
                server.start().unwrap();
                let mut client = connect(inet(&server));
                client.write_all(b"x").unwrap();
                rx.recv_timeout(WAIT).unwrap();
                let begin = Instant::now();
                // Returns when the handler does, long before the timeout.
                server.stop(WAIT * 3);
                assert!(begin.elapsed() < WAIT, "stop took {:?}", begin.elapsed());
                assert_eq!(read_to_end(&mut client), b"done");
            }

            #[test]
            fn verify_request_false_closes_without_handling() {
                let handled = Arc::new(AtomicUsize::new(0));
                let seen = handled.clone();
                let server =
                    StreamServer::builder("127.0.0.1:0", move |mut s: Stream, _a: Address| {
                        seen.fetch_add(1, Ordering::SeqCst);
                        s.write_all(b"hello")
                    })
                    .spawn(spawn())
                    .verify_request(|addr: &Address| addr.port() == Some(1))
                    .build()
                    .unwrap();
                server.start().unwrap();
                assert_eq!(exchange(inet(&server), b""), b"");
                assert_eq!(handled.load(Ordering::SeqCst), 0);
            }

            #[test]
            fn serve_forever_returns_when_stopped_from_another_thread() {
                let reserved = ReservedPort::new();
                let server = Arc::new(
                    StreamServer::builder(reserved.addr, ping_handler)
                        .spawn(spawn())
                        .build()
                        .unwrap(),
                );
                server.init_socket().unwrap();
                let addr = inet(&server);
                let control = server.handle();
                let stopper = std::thread::spawn(move || {
                    assert_eq!(ping(addr), b"PONG\n");
                    control.stop(None);
                });
                let serving = server.clone();
                within("serve_forever", WAIT * 2, move || serving.serve_forever()).unwrap();
                join_within("the stopper", WAIT, stopper);
                assert!(!server.started());
                assert_connection_refused(addr);
            }
        }
    };
}

spawn_suite!(default_spawn, Spawn::Default);
spawn_suite!(pool_spawn, Spawn::from(2usize));
spawn_suite!(inline_spawn, Spawn::Inline);

#[test]
fn a_full_pool_accepts_nothing_until_a_slot_frees() {
    let pool = Pool::new(1);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = StreamServer::builder("127.0.0.1:0", move |s: Stream, _a: Address| {
        tx.lock().unwrap().send(()).unwrap();
        ping_handler(s, _a)
    })
    .spawn(&pool)
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    let mut first = connect(addr);
    rx.recv_timeout(WAIT).unwrap();
    assert!(pool.full());
    assert_eq!(pool.free_count(), 0);
    // The second client connects (kernel backlog) but is not accepted.
    let mut second = connect(addr);
    second.write_all(b"ping\n").unwrap();
    assert_no_response(&mut second, Duration::from_millis(300));
    assert!(
        rx.try_recv().is_err(),
        "second connection was accepted while full"
    );
    // Free the slot: the second client is served.
    first.write_all(b"ping\n").unwrap();
    assert_eq!(read_to_end(&mut first), b"PONG\n");
    assert_eq!(read_to_end(&mut second), b"PONG\n");
}

#[test]
fn pre_bound_socket_queues_until_start() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = StreamServer::builder(listener, ping_handler)
        .build()
        .unwrap();
    assert!(!server.closed());
    assert_eq!(inet(&server), addr);
    let mut client = connect(addr);
    client.write_all(b"ping\n").unwrap();
    assert_no_response(&mut client, Duration::from_millis(200));
    server.start().unwrap();
    assert_eq!(read_to_end(&mut client), b"PONG\n");
}

#[test]
fn socket2_and_may_listeners_are_accepted() {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap(); // bound, not listening: the server calls listen()
    let server = StreamServer::builder(sock, ping_handler).build().unwrap();
    server.start().unwrap();
    assert_eq!(ping(inet(&server)), b"PONG\n");

    let may_listener = may_gevent::may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = StreamServer::builder(may_listener, ping_handler)
        .build()
        .unwrap();
    server.start().unwrap();
    assert_eq!(ping(inet(&server)), b"PONG\n");
}

#[test]
fn stop_accepting_queues_and_start_accepting_resumes() {
    let server = StreamServer::builder("127.0.0.1:0", ping_handler)
        .build()
        .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    server.stop_accepting();
    assert!(server.started());
    let mut client = connect(addr);
    client.write_all(b"ping\n").unwrap();
    assert_no_response(&mut client, Duration::from_millis(200));
    server.start_accepting().unwrap();
    assert_eq!(read_to_end(&mut client), b"PONG\n");
}

#[test]
fn backlog_with_a_socket_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = StreamServer::builder(listener, ping_handler)
        .backlog(5)
        .build()
        .unwrap_err();
    assert!(matches!(err, may_gevent::Error::InvalidConfig(_)), "{err}");
    assert!(err.to_string().contains("backlog"), "{err}");
}

#[test]
fn max_accept_zero_is_an_error() {
    let err = StreamServer::builder("127.0.0.1:0", ping_handler)
        .max_accept(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_accept"), "{err}");
}

#[test]
fn a_port_in_use_is_a_clear_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let server = StreamServer::builder(addr, ping_handler).build().unwrap();
    let err = server.start().unwrap_err();
    assert!(err.is_addr_in_use(), "{err}");
    // Display is this level, the cause comes from source(), Debug (what `main` prints for an
    // Err) is the readable chain.
    assert_eq!(err.to_string(), format!("cannot listen on {addr}"));
    let source = std::error::Error::source(&err).expect("the OS error");
    assert!(
        source.to_string().contains("Address already in use"),
        "{source}"
    );
    assert_eq!(
        format!("{err:?}"),
        format!("cannot listen on {addr}: {source}")
    );
    assert!(!server.started());
}

#[test]
fn address_forms_bind_where_gevent_binds_and_show_before_binding() {
    // Wildcard forms resolve as gevent's do (tests bind loopback only).
    for (form, want) in [
        (":8080", "0.0.0.0:8080"),
        ("*:8080", "0.0.0.0:8080"),
        ("8080", "[::]:8080"),
        ("[::1]:80", "[::1]:80"),
        ("127.0.0.1:80", "127.0.0.1:80"),
    ] {
        assert_eq!(may_gevent::parse_address(form).unwrap().to_string(), want);
    }
    type Make = Box<dyn Fn() -> may_gevent::StreamServerBuilder>;
    let loopback: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let cases: Vec<Make> = vec![
        Box::new(|| StreamServer::builder("127.0.0.1:0", ping_handler)),
        Box::new(|| StreamServer::builder(String::from("127.0.0.1:0"), ping_handler)),
        Box::new(|| StreamServer::builder(("127.0.0.1", 0), ping_handler)),
        Box::new(move || StreamServer::builder(loopback, ping_handler)),
        Box::new(|| StreamServer::builder((std::net::Ipv4Addr::LOCALHOST, 0), ping_handler)),
    ];
    for make in cases {
        let server = make().build().unwrap();
        server.start().unwrap();
        assert_eq!(server.server_host().as_deref(), Some("127.0.0.1"));
        let port = server.server_port().unwrap();
        assert_ne!(port, 0, "the real port after binding port 0");
        assert_eq!(ping(([127, 0, 0, 1], port).into()), b"PONG\n");
        server.stop(None);
    }
    // The forms a porter types, as gevent's `server.address` shows them before binding.
    let configured = |server: StreamServer| server.address().unwrap().to_string();
    assert_eq!(
        configured(StreamServer::new(("127.0.0.1", 8088), ping_handler).unwrap()),
        "127.0.0.1:8088"
    );
    assert_eq!(
        configured(StreamServer::new(("", 8088), ping_handler).unwrap()),
        "[::]:8088"
    );
    assert_eq!(
        configured(StreamServer::new(8088, ping_handler).unwrap()),
        "[::]:8088"
    );
    assert_eq!(
        configured(StreamServer::new(":8088", ping_handler).unwrap()),
        "0.0.0.0:8088"
    );
    let server = StreamServer::new(("127.0.0.1", 0), ping_handler).unwrap();
    assert_eq!(server.local_addr(), Some("127.0.0.1:0".parse().unwrap()));
    assert!(server.closed(), "nothing is bound before start()");
    server.start().unwrap();
    assert_ne!(
        server.local_addr().unwrap().port(),
        0,
        "the real port once bound"
    );
    server.stop(None);
    for bad in ["127.0.0.1:99999", "nonsense", "[::1]80"] {
        let err = StreamServer::builder(bad, ping_handler)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn handle_request_handles_one_connection_or_times_out() {
    const TIMEOUT: Duration = Duration::from_millis(100);
    let timeouts = Arc::new(AtomicUsize::new(0));
    let seen = timeouts.clone();
    let server = StreamServer::builder("127.0.0.1:0", ping_handler)
        .timeout(TIMEOUT)
        .handle_timeout(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    server.init_socket().unwrap();
    let begin = Instant::now();
    assert!(!server.handle_request().unwrap());
    assert!(begin.elapsed() >= TIMEOUT * 4 / 5, "{:?}", begin.elapsed());
    assert_eq!(timeouts.load(Ordering::SeqCst), 1);

    // Two clients queued in the backlog before handle_request() runs (so neither has to make
    // it within the timeout): each call handles exactly one of them.
    let addr = inet(&server);
    let mut first = connect(addr);
    first.write_all(b"ping\n").unwrap();
    let mut second = connect(addr);
    second.write_all(b"ping\n").unwrap();
    assert!(server.handle_request().unwrap());
    assert_eq!(read_to_end(&mut first), b"PONG\n");
    assert_no_response(&mut second, Duration::from_millis(200));
    assert!(server.handle_request().unwrap());
    assert_eq!(read_to_end(&mut second), b"PONG\n");
    assert_eq!(timeouts.load(Ordering::SeqCst), 1);

    server.start().unwrap();
    assert!(
        server.handle_request().is_err(),
        "not while the accept loop runs"
    );
}

#[test]
fn handle_request_never_drops_a_connection_accepted_as_the_timeout_passes() {
    // A timeout so short that the accept often completes just after it: such a connection
    // must be handled (true), never closed unhandled.
    let server = StreamServer::builder("127.0.0.1:0", ping_handler)
        .timeout(Duration::from_micros(300))
        .build()
        .unwrap();
    server.init_socket().unwrap();
    let addr = inet(&server);
    for i in 0..2000 {
        let mut client = connect(addr);
        client.write_all(b"ping\n").unwrap();
        let deadline = Instant::now() + WAIT;
        while !server.handle_request().unwrap() {
            assert!(Instant::now() < deadline, "client {i} never handled");
        }
        assert_eq!(read_to_end(&mut client), b"PONG\n", "client {i}");
    }
}

#[test]
fn serve_forever_does_not_restart_a_server_closed_after_start() {
    let reserved = ReservedPort::new();
    let server = Arc::new(
        StreamServer::builder(reserved.addr, ping_handler)
            .build()
            .unwrap(),
    );
    server.start().unwrap();
    let addr = inet(&server);
    server.close();
    let serving = server.clone();
    within("serve_forever", WAIT, move || serving.serve_forever()).unwrap(); // returns at once
    assert!(!server.started());
    assert_connection_refused(addr);
    // An explicit start() restarts it (binding its address again).
    server.start().unwrap();
    assert_eq!(ping(inet(&server)), b"PONG\n");
}

#[test]
fn service_actions_run_while_serving_forever() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = Arc::new(
        StreamServer::builder("127.0.0.1:0", ping_handler)
            .poll_interval(Duration::from_millis(10))
            .service_actions(move || {
                let _ = tx.lock().unwrap().send(());
            })
            .build()
            .unwrap(),
    );
    let control = server.handle();
    let waiter = std::thread::spawn(move || {
        for _ in 0..3 {
            rx.recv_timeout(WAIT).unwrap();
        }
        control.shutdown();
    });
    let serving = server.clone();
    within("serve_forever", WAIT * 2, move || serving.serve_forever()).unwrap();
    join_within("the waiter", WAIT, waiter);
    assert!(!server.started());
}

#[test]
fn dropping_a_started_server_stops_it() {
    let reserved = ReservedPort::new();
    let server = StreamServer::builder(reserved.addr, ping_handler)
        .build()
        .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    assert_eq!(ping(addr), b"PONG\n");
    drop(server);
    assert_connection_refused(addr);
}

#[test]
fn set_handle_replaces_the_handler_before_start() {
    let server = StreamServer::builder("127.0.0.1:0", ping_handler)
        .build()
        .unwrap();
    server
        .set_handle(|mut s: Stream, _a: Address| s.write_all(b"new"))
        .unwrap();
    server.start().unwrap();
    assert_eq!(exchange(inet(&server), b""), b"new");
    assert!(server.set_handle(ping_handler).is_err());
}

#[test]
fn unix_stream_listener() {
    let dir = std::env::temp_dir().join(format!("may_gevent_test_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = StreamServer::builder(listener, |mut s: Stream, addr: Address| {
        assert!(matches!(addr, Address::Unix(_)));
        s.write_all(b"unix hello")
    })
    .build()
    .unwrap();
    server.start().unwrap();
    assert_eq!(server.address(), Some(Address::Unix(Some(path.clone()))));
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"unix hello");
    server.stop(None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stream_exposes_peer_address_and_timeouts() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = StreamServer::builder("127.0.0.1:0", move |mut s: Stream, addr: Address| {
        assert_eq!(s.peer_addr().unwrap(), addr);
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 1];
        let err = s.read(&mut buf).unwrap_err();
        tx.lock().unwrap().send(err.kind()).unwrap();
        s.write_all(b"timed out")
    })
    .build()
    .unwrap();
    server.start().unwrap();
    let mut client = connect(inet(&server));
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), std::io::ErrorKind::TimedOut);
    assert_eq!(read_to_end(&mut client), b"timed out");
}

#[test]
fn a_client_that_disconnects_is_a_debug_record_and_a_real_error_an_error_record() {
    let (logger, records) = support::recording_logger();
    // Writes until the client is gone (EPIPE / ECONNRESET), unless asked to fail.
    let server = StreamServer::builder("127.0.0.1:0", |mut s: Stream, _a: Address| {
        let mut first = [0u8; 1];
        s.read_exact(&mut first)?;
        if first[0] == b'f' {
            return Err(std::io::Error::other("asked to fail"));
        }
        loop {
            s.write_all(&[0u8; 64 * 1024])?;
        }
    })
    .logger(logger)
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);

    let mut client = connect(addr);
    client.write_all(b"w").unwrap();
    let mut buf = [0u8; 1024];
    client.read_exact(&mut buf).unwrap(); // the handler is writing
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client); // a reset: the handler's next write fails
    let (level, msg) = records.recv_timeout(WAIT).expect("a record");
    assert_eq!(
        (level, msg.as_str()),
        (slog::Level::Debug, "client disconnected")
    );

    let mut client = connect(addr);
    client.write_all(b"f").unwrap();
    assert_eq!(read_to_end(&mut client), b"");
    let (level, msg) = records.recv_timeout(WAIT).expect("a record");
    assert_eq!(
        (level, msg.as_str()),
        (slog::Level::Error, "handler failed")
    );
}
