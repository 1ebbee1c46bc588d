//! `examples/testapp` with `--proxy-protocol` and `--forwarded-allow-ips LIST`, started as a
//! process on port 0 and driven by raw-socket clients (one bound to 127.0.0.2 where the peer
//! matters). Every wait is bounded.
//!
//! `cargo test` builds the examples first; `cargo test --test proxy_examples` alone does not
//! (run `cargo build --examples` before it).
#![allow(missing_docs)]

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::child::Running;
use support::{connect, connect_from, read_to_end, WAIT};

fn example_path(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// testapp with `args`, and the address it serves on.
fn testapp(args: &[&str]) -> (Running, SocketAddr) {
    let mut command = Command::new(example_path("testapp"));
    command.args(args);
    let running = Running::spawn("testapp", &mut command).unwrap_or_else(|err| {
        panic!(
            "cannot run testapp ({err}): `cargo test` builds the examples; with --test, run \
             `cargo build --examples` first"
        )
    });
    let line = running
        .stdout
        .wait_for(WAIT, |line| line.starts_with("Serving on http://"))
        .unwrap_or_else(|| panic!("testapp did not start: {:?}", running.stderr.all()));
    let addr: SocketAddr = line["Serving on http://".len()..].parse().unwrap();
    (running, addr)
}

/// `prefix` then `GET /environ` with `headers`; the JSON body.
fn environ(mut stream: TcpStream, prefix: &[u8], headers: &str) -> String {
    let mut req = prefix.to_vec();
    req.extend_from_slice(
        format!("GET /environ HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    stream.write_all(&req).unwrap();
    let reply = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    reply.split("\r\n\r\n").nth(1).unwrap().to_owned()
}

fn has(json: &str, key: &str, value: &str) -> bool {
    json.contains(&format!("\"{key}\":\"{value}\""))
}

#[test]
fn testapp_proxy_protocol_v1_and_v2() {
    let (mut app, addr) = testapp(&["0", "--proxy-protocol"]);
    let c = connect(addr);
    let own = c.local_addr().unwrap();
    let json = environ(c, b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", "");
    assert!(has(&json, "REMOTE_ADDR", "192.0.2.1"), "{json}");
    assert!(has(&json, "REMOTE_PORT", "56324"), "{json}");
    assert!(
        has(&json, "may_gevent.proxy_addr", &own.to_string()),
        "{json}"
    );

    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend_from_slice(
        &"2001:db8::5"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    v2.extend_from_slice(&[0x1f, 0x90, 0x01, 0xbb]);
    let json = environ(connect(addr), &v2, "");
    assert!(has(&json, "REMOTE_ADDR", "2001:db8::5"), "{json}");
    assert!(has(&json, "REMOTE_PORT", "8080"), "{json}");

    // no header: closed unserved
    let mut c = connect(addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 16];
    c.set_read_timeout(Some(WAIT)).unwrap();
    match std::io::Read::read(&mut c, &mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected a close, got {other:?}"),
    }
    app.signal(libc::SIGTERM);
    assert!(app.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn testapp_forwarded_allow_ips_sets_remote_addr() {
    let (app, addr) = testapp(&["--forwarded-allow-ips", "127.0.0.2, 10.0.0.0/8", "0"]);
    let headers = "X-Forwarded-For: 6.6.6.6, 203.0.113.5, 10.0.0.1\r\nX-Forwarded-Proto: https\r\n";
    // a trusted peer: the resolved client, the scheme
    let json = environ(connect_from([127, 0, 0, 2], addr), b"", headers);
    assert!(has(&json, "REMOTE_ADDR", "203.0.113.5"), "{json}");
    assert!(
        has(&json, "may_gevent.forwarded_for", "203.0.113.5"),
        "{json}"
    );
    assert!(has(&json, "wsgi.url_scheme", "https"), "{json}");
    // 127.0.0.1 is not on this list: nothing changes
    let json = environ(connect_from([127, 0, 0, 1], addr), b"", headers);
    assert!(has(&json, "REMOTE_ADDR", "127.0.0.1"), "{json}");
    assert!(has(&json, "wsgi.url_scheme", "http"), "{json}");
    assert!(!json.contains("may_gevent.forwarded_for"), "{json}");
    app.signal(libc::SIGTERM);
    let finished = app.finish(Duration::from_secs(5));
    assert!(finished.status.success());
    // the access log shows the resolved client for the first, the peer for the second
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("203.0.113.5 - - [")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("127.0.0.1 - - [")),
        "{lines:?}"
    );
}

#[test]
fn testapp_rejects_bad_flags() {
    for args in [
        &["--forwarded-allow-ips"][..],
        &["--bogus"],
        &["0", "1"],
        &["--forwarded-allow-ips", "not-an-ip", "0"],
    ] {
        let mut command = Command::new(example_path("testapp"));
        command.args(args);
        let finished = support::child::run("testapp", &mut command, WAIT);
        assert!(!finished.status.success(), "{args:?}");
        assert!(
            finished.stderr.contains("testapp: "),
            "{args:?}: {}",
            finished.stderr
        );
    }
}
