//! The `wsgiserver_minihttp` example (the `wsgiserver` application on `may_gevent::wsgi`)
//! started as a process on port 0 and driven by raw-socket clients. Every wait is bounded.
//!
//! `cargo test` builds the examples first; `cargo test --test wsgi_minihttp_example` alone does
//! not (run `cargo build --examples` before it).
#![allow(missing_docs)]

mod support;
mod wsgi_support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use support::child::Running;
use support::{connect, WAIT};
use wsgi_support::{read_response, read_to_close, Client, Resp};

fn example_path(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

fn start(args: &[&str]) -> Running {
    let mut command = Command::new(example_path("wsgiserver_minihttp"));
    command.args(args);
    Running::spawn("wsgiserver_minihttp", &mut command).unwrap_or_else(|err| {
        panic!(
            "cannot run example wsgiserver_minihttp ({err}): `cargo test` builds the examples; \
             with --test, run `cargo build --examples` first"
        )
    })
}

fn addr_of(ex: &Running) -> SocketAddr {
    let line = ex
        .stdout
        .wait_for(WAIT, |line| line.starts_with("Serving on http://"))
        .unwrap_or_else(|| panic!("no Serving line; stderr: {:?}", ex.stderr.all()));
    line["Serving on http://".len()..].parse().expect("IP:PORT")
}

fn client(addr: SocketAddr) -> Client {
    let stream = connect(addr);
    Client {
        reader: std::io::BufReader::new(stream.try_clone().unwrap()),
        writer: stream,
    }
}

fn assert_hello(resp: &Resp) {
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    assert_eq!(resp.body_text(), "<b>hello world</b>");
}

fn assert_not_found(resp: &Resp) {
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    assert_eq!(resp.body_text(), "<h1>Not Found</h1>");
}

#[test]
fn serves_the_wsgiserver_application_and_stops_on_sigterm_and_sigint() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut ex = start(&["0", "--workers", "1"]);
        let addr = addr_of(&ex);
        let mut c = client(addr);
        assert_hello(&c.get("/"));
        assert_not_found(&c.get("/xxx"));
        // pipelined, on the same keep-alive connection
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /xxx HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_hello(&c.read(false).unwrap());
        assert_not_found(&c.read(false).unwrap());
        // the access log goes to stderr, in gevent's format
        let line = ex
            .stderr
            .wait_for(WAIT, |line| line.contains("\"GET /xxx HTTP/1.1\" 404 "))
            .unwrap_or_else(|| panic!("no access line: {:?}", ex.stderr.all()));
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        ex.signal(signal);
        let status = ex.wait_exit(WAIT);
        assert!(
            status.success(),
            "signal {signal}: {status:?}, stderr {:?}",
            ex.stderr.all()
        );
        // the idle keep-alive connection was ended by the stop
        c.assert_closed();
    }
}

#[test]
fn no_log_and_http10_close() {
    let mut ex = start(&["0", "--no-log"]);
    let addr = addr_of(&ex);
    let mut stream = connect(addr);
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let raw = read_to_close(&mut stream);
    assert_hello(&read_response(&mut &raw[..], false).unwrap());
    ex.signal(libc::SIGTERM);
    assert!(ex.wait_exit(WAIT).success());
    ex.stderr.wait_closed(WAIT);
    let stderr = ex.stderr.all();
    assert!(
        !stderr.iter().any(|l| l.contains("HTTP/1.0\"")),
        "{stderr:?}"
    );
}

#[test]
fn rejects_bad_arguments_and_a_port_in_use() {
    for args in [
        &["--workers", "0"][..],
        &["--workers"],
        &["notaport"],
        &["1", "2"],
    ] {
        let mut ex = start(args);
        assert_eq!(ex.wait_exit(WAIT).code(), Some(2), "{args:?}");
        ex.stderr.wait_closed(WAIT);
        assert!(
            ex.stderr.all().iter().any(|l| l.contains("usage")),
            "{args:?}"
        );
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut ex = start(&[&port]);
    assert_eq!(ex.wait_exit(WAIT).code(), Some(1));
    ex.stderr.wait_closed(WAIT);
    let stderr = ex.stderr.all().join("\n");
    assert!(stderr.contains("in use"), "{stderr}");
}
