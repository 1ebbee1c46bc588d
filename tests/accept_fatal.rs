//! A fatal accept error (the listening socket broken under the server) closes the server,
//! is logged at ERROR, and makes `serve_forever` return an error instead of spinning or
//! hanging.

mod support;

use std::sync::{mpsc, Arc};
use std::thread;

use may_gevent::{Address, Stream, StreamServer};
use support::{assert_connection_refused, inet, WAIT};

#[test]
fn a_broken_listener_closes_the_server_and_serve_forever_returns_the_error() {
    let (logger, records) = support::recording_logger();
    let server = Arc::new(
        StreamServer::builder("127.0.0.1:0", |_s: Stream, _a: Address| {})
            .logger(logger)
            .build()
            .unwrap(),
    );
    server.start().unwrap();
    let addr = inet(&server);
    let fd = server.fileno().unwrap();
    let (done_tx, done) = mpsc::channel();
    let s = server.clone();
    thread::spawn(move || {
        let _ = done_tx.send(s.serve_forever().map_err(|err| {
            let source = std::error::Error::source(&err).map(|s| s.to_string());
            (err.to_string(), source)
        }));
    });
    // Break the socket under the server: a blocked accept fails with EINVAL.
    #[allow(unsafe_code)]
    // SAFETY: shutdown(2) on the server's open listening descriptor; it neither closes nor
    // invalidates it.
    let rc = unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    assert_eq!(rc, 0);
    let result = done.recv_timeout(WAIT).expect("serve_forever returned");
    let (message, source) = result.expect_err("serve_forever must fail");
    assert!(message.contains("listening socket failed"), "{message}");
    assert!(
        source.is_some_and(|s| s.contains("Invalid argument")),
        "{message}"
    );
    loop {
        let (level, msg) = records.recv_timeout(WAIT).expect("an ERROR record");
        if level == slog::Level::Error {
            assert!(msg.contains("listening socket failed"), "{msg}");
            break;
        }
    }
    assert!(!server.started());
    assert!(server.closed());
    assert_connection_refused(addr);
}
