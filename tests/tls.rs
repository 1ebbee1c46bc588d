//! StreamServer over TLS (gevent: `StreamServer(..., certfile=, keyfile=)` / `ssl_context=`):
//! real sockets on 127.0.0.1, certificates generated at test time, every wait bounded.
#![cfg(feature = "tls")]

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::{Address, Error, Stream, StreamServer};
use support::*;
use tls_support::*;

/// Echoes each line as `<tls|plain> <read timeout> <line>`, counting its calls.
fn echo(calls: Arc<AtomicUsize>) -> impl Fn(Stream, Address) -> io::Result<()> + Send + Sync {
    move |stream: Stream, _addr: Address| {
        calls.fetch_add(1, Ordering::SeqCst);
        let kind = if stream.is_tls() { "tls" } else { "plain" };
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 {
            let timeout = reader.get_ref().read_timeout()?;
            let reply = format!("{kind} {timeout:?} {line}");
            reader.get_mut().write_all(reply.as_bytes())?;
            line.clear();
        }
        Ok(())
    }
}

fn echo_server(
    calls: &Arc<AtomicUsize>,
    setup: impl FnOnce(may_gevent::StreamServerBuilder) -> may_gevent::StreamServerBuilder,
) -> StreamServer {
    let server = setup(StreamServer::builder("127.0.0.1:0", echo(calls.clone())))
        .build()
        .expect("build tls server");
    server.start().unwrap();
    server
}

/// `n` request/response rounds on one TLS connection.
fn rounds(cert: &TestCert, addr: SocketAddr, n: usize) {
    let mut client = cert.connect(addr);
    for i in 0..n {
        assert_eq!(
            round_trip(&mut client, &format!("ping {i}\n")).unwrap(),
            format!("tls None ping {i}\n")
        );
    }
}

/// The build error, or a panic if the build succeeded.
fn build_err(builder: may_gevent::StreamServerBuilder) -> Error {
    match builder.build() {
        Err(err) => err,
        Ok(server) => panic!("build succeeded: {server:?}"),
    }
}

fn tls_context(err: &Error) -> &str {
    match err {
        Error::Tls { context, .. } => context,
        other => panic!("expected Error::Tls, got {other:?}"),
    }
}

/// The TLS peer closed the connection (EOF, with or without close_notify, or reset).
fn assert_tls_closed(client: &mut native_tls::TlsStream<TcpStream>) {
    let mut buf = [0u8; 16];
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

/// Signals on a channel when dropped (observes that a cancelled handler unwound).
struct DropSignal(mpsc::Sender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

// 1 ------------------------------------------------------------------------------------------

#[test]
fn pem_files_echo_with_several_rounds_on_one_connection() {
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&calls, |b| b.tls_files(&cert.certfile, &cert.keyfile));
    let addr = inet(&server);
    // "None": the handshake timeout was lifted before the handler got the stream.
    rounds(&cert, addr, 5);
    rounds(&cert, addr, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    server.stop(None);
    assert!(server.pool().is_empty());
}

#[test]
fn a_pem_file_holding_both_key_and_certificate_works() {
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&calls, |b| b.tls_files(&cert.combined, &cert.combined));
    rounds(&cert, inet(&server), 2);
}

// 7 ------------------------------------------------------------------------------------------

#[test]
fn a_ready_acceptor_works() {
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&calls, |b| b.tls_acceptor(cert.acceptor()));
    rounds(&cert, inet(&server), 3);
}

#[test]
fn pkcs12_works() {
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&calls, |b| b.tls_pkcs12(&cert.p12file, P12_PASSWORD));
    rounds(&cert, inet(&server), 3);
}

// 2 ------------------------------------------------------------------------------------------

#[test]
fn a_silent_client_does_not_delay_others() {
    // Far beyond every wait below: the silent client cannot be dropped while others are served,
    // however slow their handshakes are.
    const TIMEOUT: Duration = Duration::from_secs(60);
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let log = Collector::default();
    let (tx, accepted) = mpsc::channel::<SocketAddr>();
    let tx = Mutex::new(tx);
    let server = echo_server(&calls, |b| {
        b.tls_files(&cert.certfile, &cert.keyfile)
            .handshake_timeout(TIMEOUT)
            .logger(log.logger())
            .verify_request(move |addr: &Address| {
                tx.lock().unwrap().send(addr.as_inet().unwrap()).unwrap();
                true
            })
    });
    let addr = inet(&server);

    let silent = connect(addr);
    let silent_addr = silent.local_addr().unwrap();
    assert_eq!(accepted.recv_timeout(WAIT).unwrap(), silent_addr);
    assert!(still_open(&silent));

    // Other clients are served while the silent one holds its handshake open.
    for round in 0..2 {
        let mut other = cert.connect(addr);
        let other_addr = other.get_ref().local_addr().unwrap();
        assert_eq!(accepted.recv_timeout(WAIT).unwrap(), other_addr);
        assert_eq!(
            round_trip(&mut other, &format!("{round}\n")).unwrap(),
            format!("tls None {round}\n")
        );
        assert!(still_open(&silent), "the silent client was dropped");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "handler called for the silent client"
    );
    assert!(
        log.matching("tls handshake").is_empty(),
        "{:?}",
        log.records()
    );
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout_and_a_served_one_is_not() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let log = Collector::default();
    let server = echo_server(&calls, |b| {
        b.tls_files(&cert.certfile, &cert.keyfile)
            .handshake_timeout(TIMEOUT)
            .logger(log.logger())
    });
    let addr = inet(&server);

    // A client past its handshake, accepted before the silent one: its handshake deadline
    // comes first.
    let mut other = cert.connect(addr);
    assert_eq!(round_trip(&mut other, "a\n").unwrap(), "tls None a\n");

    let begin = Instant::now();
    let mut silent = connect(addr);
    let silent_addr = silent.local_addr().unwrap();
    let closed = wait_closed(&mut silent, WAIT);
    let took = begin.elapsed();
    assert!(
        took >= TIMEOUT * 4 / 5,
        "dropped after {took:?}: {closed:?}"
    );
    assert!(
        took < TIMEOUT + Duration::from_secs(3),
        "dropped after {took:?}"
    );
    assert_eq!(
        closed,
        Closed::Eof(Vec::new()),
        "no bytes for a silent client"
    );

    // The other client's handshake deadline has passed too: it no longer applies to a
    // connection past its handshake.
    assert_eq!(round_trip(&mut other, "b\n").unwrap(), "tls None b\n");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "handler called for the silent client"
    );

    eventually("the timeout is logged", || {
        !log.matching("tls handshake timed out").is_empty()
    });
    let records = log.matching("tls handshake");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].level, slog::Level::Debug);
    assert_eq!(records[0].get("peer"), Some(&*silent_addr.to_string()));
}

#[test]
fn a_client_trickling_its_hello_is_dropped_at_the_handshake_deadline() {
    // Each byte comes well within the timeout, so only a deadline on the whole handshake
    // (not a per-read timeout) ends it.
    const TIMEOUT: Duration = Duration::from_millis(400);
    const PACE: Duration = Duration::from_millis(100);
    let log = Collector::default();
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&calls, |b| {
        b.tls_files(&cert.certfile, &cert.keyfile)
            .handshake_timeout(TIMEOUT)
            .logger(log.logger())
    });
    let begin = Instant::now();
    let mut client = connect(inet(&server));
    // A handshake record header announcing a 512-byte ClientHello, then one byte per PACE.
    client.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    client.set_read_timeout(Some(PACE)).unwrap();
    let mut buf = [0u8; 64];
    let closed_after = loop {
        let took = begin.elapsed();
        assert!(took < Duration::from_secs(5), "still open after {took:?}");
        match client.read(&mut buf) {
            Ok(_) => break begin.elapsed(),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if client.write_all(&[0x01]).is_err() {
                    break begin.elapsed();
                }
            }
            Err(_) => break begin.elapsed(),
        }
    };
    eventually("the timeout is logged", || {
        !log.matching("tls handshake timed out").is_empty()
    });
    assert!(
        closed_after >= TIMEOUT * 4 / 5 && closed_after < TIMEOUT + Duration::from_secs(2),
        "closed after {closed_after:?}: {:?}",
        log.records()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// 3 ------------------------------------------------------------------------------------------

#[test]
fn a_plain_http_client_is_closed_and_the_server_keeps_serving() {
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let log = Collector::default();
    let server = echo_server(&calls, |b| {
        b.tls_files(&cert.certfile, &cert.keyfile)
            .logger(log.logger())
    });
    let addr = inet(&server);
    for _ in 0..3 {
        let mut plain = connect(addr);
        plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        // Closed long before the 10 s handshake timeout (wait_closed gives up at 5 s).
        match wait_closed(&mut plain, Duration::from_secs(5)) {
            Closed::Reset => {}
            Closed::Eof(bytes) => assert!(!bytes.starts_with(b"HTTP/"), "{bytes:?}"),
        }
        rounds(&cert, addr, 2);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "only the TLS clients are handled"
    );
    eventually("three failed handshakes logged", || {
        log.matching("tls handshake failed").len() == 3
    });
}

// 4 ------------------------------------------------------------------------------------------

#[test]
fn two_hundred_concurrent_tls_connections_with_several_rounds_each() {
    const CLIENTS: usize = 200;
    const ROUNDS: usize = 5;
    let cert = Arc::new(TestCert::generate());
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (a, p) = (active.clone(), peak.clone());
    let echo = echo(Arc::new(AtomicUsize::new(0)));
    struct Active(Arc<AtomicUsize>);
    impl Drop for Active {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let server = StreamServer::builder("127.0.0.1:0", move |stream: Stream, addr: Address| {
        let now = a.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        let _active = Active(a.clone());
        echo(stream, addr)
    })
    .tls_files(&cert.certfile, &cert.keyfile)
    .backlog(1024)
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);

    let begin = Instant::now();
    // Every client holds its connection open at the barrier, so all 200 are served at once.
    let barrier = Arc::new(Rendezvous::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (cert, barrier) = (cert.clone(), barrier.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<(), String> {
                    let first = cert.try_connect(addr).and_then(|mut client| {
                        round_trip(&mut client, &format!("{c} 0\n")).map(|reply| (client, reply))
                    });
                    barrier.wait(RENDEZVOUS_WAIT)?;
                    let (mut client, reply) = first.map_err(|e| format!("client {c}: {e}"))?;
                    let mut replies = vec![reply];
                    for r in 1..ROUNDS {
                        let reply = round_trip(&mut client, &format!("{c} {r}\n"))
                            .map_err(|e| format!("client {c} round {r}: {e}"))?;
                        replies.push(reply);
                    }
                    for (r, reply) in replies.iter().enumerate() {
                        if *reply != format!("tls None {c} {r}\n") {
                            return Err(format!("client {c} round {r}: {reply:?}"));
                        }
                    }
                    Ok(())
                })
                .unwrap()
        })
        .collect();
    let failures: Vec<String> = clients
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
    assert_eq!(
        peak.load(Ordering::SeqCst),
        CLIENTS,
        "connections served at once"
    );
    eventually("all handlers returned", || server.pool().is_empty());
    assert_eq!(active.load(Ordering::SeqCst), 0);
}

// 5 ------------------------------------------------------------------------------------------

#[test]
fn stop_shuts_down_a_handler_blocked_in_a_tls_read() {
    let cert = TestCert::generate();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server = StreamServer::builder("127.0.0.1:0", move |mut s: Stream, _a: Address| {
        let sender = tx.lock().unwrap().clone();
        let _guard = DropSignal(sender.clone());
        sender.send("started").unwrap();
        let mut buf = [0u8; 1];
        // SSL_read: the client never sends; stop()'s shutdown ends it (EOF or an error)
        let _ = s.read(&mut buf);
        let _ = sender.send("read returned");
    })
    .tls_files(&cert.certfile, &cert.keyfile)
    .build()
    .unwrap();
    server.start().unwrap();
    let mut client = cert.connect(inet(&server));
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
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "read returned");
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "dropped");
    assert_tls_closed(&mut client);
    assert!(server.pool().is_empty());
}

#[test]
fn stop_cancels_a_handshake_in_progress() {
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = echo_server(&calls, |b| {
        b.tls_files(&cert.certfile, &cert.keyfile)
            .handshake_timeout(Duration::from_secs(30))
            .logger(None)
    });
    let mut silent = connect(inet(&server));
    eventually("the handshake is under way", || server.pool().len() == 1);
    let begin = Instant::now();
    server.stop(Duration::from_millis(200));
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_millis(200),
        "stop returned after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    assert!(server.pool().is_empty());
    // Closed by the cancel (the handshake timeout is 30 s), with no descriptor left behind.
    assert_eq!(
        wait_closed(&mut silent, Duration::from_secs(5)),
        Closed::Eof(Vec::new())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// 6 ------------------------------------------------------------------------------------------

fn builder() -> may_gevent::StreamServerBuilder {
    StreamServer::builder("127.0.0.1:0", |_s: Stream, _a: Address| {})
}

#[test]
fn a_missing_certfile_or_keyfile_is_named() {
    let cert = TestCert::generate();
    let missing = cert.dir.path().join("missing-cert.pem");
    let err = build_err(builder().tls_files(&missing, &cert.keyfile));
    assert!(tls_context(&err).contains("missing-cert.pem"), "{err}");
    assert!(err.to_string().contains("missing-cert.pem"), "{err}");

    let missing = cert.dir.path().join("missing-key.pem");
    let err = build_err(builder().tls_files(&cert.certfile, &missing));
    assert!(err.to_string().contains("missing-key.pem"), "{err}");
    tls_context(&err);

    let missing = cert.dir.path().join("missing.p12");
    let err = build_err(builder().tls_pkcs12(&missing, P12_PASSWORD));
    assert!(err.to_string().contains("missing.p12"), "{err}");
}

#[test]
fn garbage_in_the_certfile_or_keyfile_is_named() {
    let cert = TestCert::generate();
    let garbage = cert
        .dir
        .write("garbage-cert.pem", "this is not a certificate\n");
    let err = build_err(builder().tls_files(&garbage, &cert.keyfile));
    assert!(tls_context(&err).contains("garbage-cert.pem"), "{err}");

    let broken = cert.dir.write(
        "broken-cert.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n",
    );
    let err = build_err(builder().tls_files(&broken, &cert.keyfile));
    assert!(tls_context(&err).contains("broken-cert.pem"), "{err}");

    let garbage = cert.dir.write("garbage-key.pem", "this is not a key\n");
    let err = build_err(builder().tls_files(&cert.certfile, &garbage));
    assert!(tls_context(&err).contains("garbage-key.pem"), "{err}");

    // Certificate and key swapped.
    let err = build_err(builder().tls_files(&cert.keyfile, &cert.certfile));
    assert!(tls_context(&err).contains("key.pem"), "{err}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_an_error_naming_both() {
    let cert = TestCert::generate();
    let err = build_err(builder().tls_files(&cert.certfile, &cert.other_keyfile));
    let context = tls_context(&err);
    assert!(
        context.contains("cert.pem") && context.contains("other-key.pem"),
        "{err}"
    );
    // the cause comes from source(): Debug prints the chain
    assert!(format!("{err:?}").contains("does not match"), "{err:?}");
    assert!(
        !err.to_string().contains("does not match"),
        "Display is one level: {err}"
    );
}

#[test]
fn pkcs12_with_a_wrong_password_or_garbage_is_named() {
    let cert = TestCert::generate();
    let err = build_err(builder().tls_pkcs12(&cert.p12file, "wrong password"));
    assert!(tls_context(&err).contains("server.p12"), "{err}");
    let garbage = cert.dir.write("garbage.p12", "not pkcs12");
    let err = build_err(builder().tls_pkcs12(&garbage, P12_PASSWORD));
    assert!(tls_context(&err).contains("garbage.p12"), "{err}");
}

#[test]
fn a_zero_handshake_timeout_is_rejected() {
    let cert = TestCert::generate();
    let err = build_err(
        builder()
            .tls_files(&cert.certfile, &cert.keyfile)
            .handshake_timeout(Duration::ZERO),
    );
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
}

// 8 ------------------------------------------------------------------------------------------

#[test]
fn failed_handshakes_are_logged_at_debug_with_the_peer_address() {
    let cert = TestCert::generate();
    let calls = Arc::new(AtomicUsize::new(0));
    let log = Collector::default();
    let server = echo_server(&calls, |b| {
        b.tls_files(&cert.certfile, &cert.keyfile)
            // Far beyond every wait below: each failure must be noticed at once.
            .handshake_timeout(Duration::from_secs(60))
            .logger(log.logger())
    });
    let addr = inet(&server);

    // 1. A client that does not trust the certificate aborts the handshake.
    let tcp = connect(addr);
    let untrusting_addr = tcp.local_addr().unwrap();
    let untrusting = native_tls::TlsConnector::new().unwrap();
    assert!(untrusting.connect("localhost", tcp).is_err());

    // 2. A client that closes in the middle of its ClientHello.
    let mut quitter = connect(addr);
    let quitter_addr = quitter.local_addr().unwrap();
    quitter
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    quitter.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(matches!(
        wait_closed(&mut quitter, WAIT),
        Closed::Eof(_) | Closed::Reset
    ));

    for peer in [untrusting_addr, quitter_addr] {
        let peer = peer.to_string();
        eventually(&format!("the failure of {peer} is logged"), || {
            log.records().iter().any(|r| r.get("peer") == Some(&*peer))
        });
    }
    let records = log.records();
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record.level, slog::Level::Debug, "{record:?}");
        assert_eq!(record.msg, "tls handshake failed", "{record:?}");
        assert!(record.get("error").is_some(), "{record:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The server still serves.
    rounds(&cert, addr, 1);
}

#[test]
fn with_the_default_logger_failed_handshakes_stay_off_stderr() {
    const CHILD: &str = "MAY_GEVENT_TLS_STDERR_CHILD";
    const NAME: &str = "with_the_default_logger_failed_handshakes_stay_off_stderr";
    if std::env::var_os(CHILD).is_some() {
        // In the child process: the default logger writes INFO and up to stderr.
        let cert = TestCert::generate();
        let calls = Arc::new(AtomicUsize::new(0));
        let server = echo_server(&calls, |b| {
            b.tls_files(&cert.certfile, &cert.keyfile)
                .handshake_timeout(Duration::from_secs(1))
        });
        let addr = inet(&server);
        let mut plain = connect(addr);
        plain.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        wait_closed(&mut plain, WAIT);
        let mut silent = connect(addr);
        wait_closed(&mut silent, WAIT);
        rounds(&cert, addr, 1);
        eventually("all handlers returned", || server.pool().is_empty());
        return;
    }
    let out = support::child::run(
        "the child test",
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1"),
        Duration::from_secs(60),
    );
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(
        !stderr.to_lowercase().contains("handshake") && !stderr.contains("tls"),
        "stderr: {stderr}"
    );
}
