//! Trusted forwarded headers on WsgiServer (`forwarded_allow_ips`, `forwarded_header`,
//! `forwarded_remote_addr`): real sockets on 127.0.0.1, clients bound to other loopback
//! addresses where the peer matters, every wait bounded. Spoofing attempts included.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use may_gevent::pywsgi::{
    AccessLog, AppResult, Environ, ForwardedHeader, StartResponse, WsgiServer, WsgiServerBuilder,
};
use may_gevent::{Error, IpAllowList};
use support::*;

/// What the application saw: `REMOTE_ADDR REMOTE_PORT scheme forwarded_for`, and whether
/// `iter()` lists the forwarded key.
fn app(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let listed = env.iter().any(|(k, _)| k == "may_gevent.forwarded_for");
    let fwd = env.get("may_gevent.forwarded_for");
    assert_eq!(listed, fwd.is_some(), "iter() and get() disagree");
    let body = format!(
        "{} {} {} {}",
        env.remote_addr().unwrap_or("-"),
        env.remote_port().unwrap_or("-"),
        env.url_scheme(),
        fwd.unwrap_or("-"),
    );
    start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
    Ok(body.into_bytes().into())
}

struct Server {
    server: WsgiServer,
    log: Arc<Mutex<Vec<u8>>>,
}

struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn serve(setup: impl FnOnce(WsgiServerBuilder) -> WsgiServerBuilder) -> Server {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = setup(WsgiServer::builder("127.0.0.1:0", app))
        .access_log(AccessLog::writer(Shared(log.clone())))
        .logger(None)
        .build()
        .expect("build");
    server.start().expect("start");
    Server { server, log }
}

impl Server {
    fn addr(&self) -> SocketAddr {
        inet(&self.server)
    }

    /// One request with `headers` from 127.0.0.1; what the application saw.
    fn get(&self, headers: &[(&str, &str)]) -> String {
        self.get_from([127, 0, 0, 1], headers)
    }

    fn get_from(&self, source: [u8; 4], headers: &[(&str, &str)]) -> String {
        let stream = connect_from(source, self.addr());
        request(stream, b"", headers)
    }

    fn access_log(&self) -> String {
        String::from_utf8(self.log.lock().unwrap().clone()).unwrap()
    }
}

/// Send `prefix`, then a GET with `headers` and `Connection: close`; the response body.
fn request(mut stream: TcpStream, prefix: &[u8], headers: &[(&str, &str)]) -> String {
    let mut req = prefix.to_vec();
    req.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        req.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    stream.write_all(&req).unwrap();
    let reply = String::from_utf8(read_to_end(&mut stream)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    reply.split("\r\n\r\n").nth(1).unwrap().to_owned()
}

#[test]
fn by_default_loopback_is_trusted_and_remote_addr_stays_the_peer() {
    let s = serve(|b| b);
    let body = s.get(&[]);
    assert!(
        body.starts_with("127.0.0.1 ") && body.ends_with(" http -"),
        "{body}"
    );
    let body = s.get(&[
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-Proto", "https"),
    ]);
    let mut parts = body.split(' ');
    assert_eq!(parts.next(), Some("127.0.0.1"));
    parts.next(); // the socket's port
    assert_eq!(parts.next(), Some("https"));
    assert_eq!(parts.next(), Some("203.0.113.5"));
    // each header alone counts, whatever the case of its name
    let body = s.get(&[("x-forwarded-proto", "https")]);
    assert!(body.ends_with(" https -"), "{body}");
    let body = s.get(&[("X-FORWARDED-FOR", "203.0.113.7")]);
    assert!(body.ends_with(" http 203.0.113.7"), "{body}");
    // 127.0.0.2 is loopback but not in the default list (127.0.0.1, ::1)
    let body = s.get_from(
        [127, 0, 0, 2],
        &[
            ("X-Forwarded-For", "203.0.113.5"),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert!(
        body.starts_with("127.0.0.2 ") && body.ends_with(" http -"),
        "{body}"
    );
}

#[test]
fn remote_addr_and_access_log_use_the_resolved_client_when_asked() {
    let s = serve(|b| b.forwarded_remote_addr(true));
    assert_eq!(
        s.get(&[("X-Forwarded-For", "203.0.113.5:4711")]),
        "203.0.113.5 4711 http 203.0.113.5"
    );
    assert_eq!(
        s.get(&[("X-Forwarded-For", "[2001:db8::1]:443")]),
        "2001:db8::1 443 http 2001:db8::1"
    );
    // no port in the header: 0
    assert_eq!(
        s.get(&[("X-Forwarded-For", "2001:db8::2")]),
        "2001:db8::2 0 http 2001:db8::2"
    );
    let log = s.access_log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(lines[0].starts_with("203.0.113.5 - - ["), "{log}");
    assert!(lines[1].starts_with("2001:db8::1 - - ["), "{log}");
    assert!(lines[2].starts_with("2001:db8::2 - - ["), "{log}");
}

#[test]
fn headers_from_an_untrusted_peer_change_nothing() {
    let s = serve(|b| {
        b.forwarded_allow_ips("127.0.0.2")
            .forwarded_remote_addr(true)
    });
    let headers = [
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=203.0.113.5;proto=https"),
    ];
    let body = s.get_from([127, 0, 0, 1], &headers);
    assert!(
        body.starts_with("127.0.0.1 ") && body.ends_with(" http -"),
        "{body}"
    );
    assert_eq!(
        s.get_from([127, 0, 0, 2], &headers),
        "203.0.113.5 0 https 203.0.113.5"
    );
    assert!(s
        .access_log()
        .lines()
        .next()
        .unwrap()
        .starts_with("127.0.0.1 - - "));

    // an empty list trusts nobody, loopback included
    let s = serve(|b| {
        b.forwarded_allow_ips(IpAllowList::none())
            .forwarded_remote_addr(true)
    });
    let body = s.get(&headers);
    assert!(
        body.starts_with("127.0.0.1 ") && body.ends_with(" http -"),
        "{body}"
    );
}

#[test]
fn spoofing_attempts_through_a_trusted_proxy() {
    let s = serve(|b| {
        b.forwarded_allow_ips("127.0.0.1, 10.0.0.0/8")
            .forwarded_remote_addr(true)
    });
    let client = |headers: &[(&str, &str)]| -> String {
        let body = s.get(headers);
        let parts: Vec<&str> = body.split(' ').collect();
        format!("{} {}", parts[0], parts[2]) // REMOTE_ADDR and scheme
    };
    let xff = |v: &str| client(&[("X-Forwarded-For", v)]);
    // a forged leftmost entry: the entry the proxy appended wins
    assert_eq!(xff("6.6.6.6, 203.0.113.5"), "203.0.113.5 http");
    // trusted hops are skipped
    assert_eq!(xff("6.6.6.6, 203.0.113.5, 10.1.2.3"), "203.0.113.5 http");
    // a forged "trusted" entry on the left of the real client changes nothing
    assert_eq!(xff("10.0.0.1, 203.0.113.5"), "203.0.113.5 http");
    // garbage where the walk arrives: the peer stays
    for garbage in [
        "203.0.113.5, garbage",
        "203.0.113.5, unknown",
        "203.0.113.5, _hidden",
        "203.0.113.5, 1.2.3.4:99999",
        "203.0.113.5, [::1",
        "203.0.113.5, \"1.2.3.4\"",
        "203.0.113.5, 1.2.3.4 5.6.7.8",
        "203.0.113.5,,",
    ] {
        assert_eq!(xff(garbage), "127.0.0.1 http", "{garbage}");
    }
    // IPv6 forms
    assert_eq!(xff("[::1]:8080, 203.0.113.5"), "203.0.113.5 http");
    assert_eq!(xff("6.6.6.6, [2001:db8::9]:1"), "2001:db8::9 http");
    assert_eq!(xff("::ffff:10.0.0.1, 2001:db8::9"), "2001:db8::9 http");
    // the mapped form of a trusted address is trusted
    assert_eq!(xff("2001:db8::9, ::ffff:10.0.0.1"), "2001:db8::9 http");
    // repeated header lines are one list, in order
    assert_eq!(
        client(&[
            ("X-Forwarded-For", "203.0.113.5"),
            ("X-Forwarded-For", "198.51.100.7, 10.0.0.2"),
        ]),
        "198.51.100.7 http"
    );
    // the scheme: the proxy's value, not a client's before it
    assert_eq!(
        client(&[
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Proto", "http")
        ]),
        "127.0.0.1 http"
    );
    assert_eq!(
        client(&[("X-Forwarded-Proto", "javascript")]),
        "127.0.0.1 http"
    );
    assert_eq!(client(&[("X-Forwarded-Proto", "HTTPS")]), "127.0.0.1 https");
    // in this mode a Forwarded header is the client's, never read
    assert_eq!(
        client(&[("Forwarded", "for=203.0.113.5;proto=https")]),
        "127.0.0.1 http"
    );
}

#[test]
fn the_rfc_7239_forwarded_header() {
    let s = serve(|b| {
        b.forwarded_allow_ips("127.0.0.1, 10.0.0.0/8")
            .forwarded_header(ForwardedHeader::Forwarded)
            .forwarded_remote_addr(true)
    });
    let fwd = |v: &str| s.get(&[("Forwarded", v)]);
    assert_eq!(
        fwd("for=192.0.2.60;proto=https;by=10.0.0.1"),
        "192.0.2.60 0 https 192.0.2.60"
    );
    assert_eq!(
        fwd("for=\"[2001:db8:cafe::17]:4711\""),
        "2001:db8:cafe::17 4711 http 2001:db8:cafe::17"
    );
    assert_eq!(
        fwd("for=\"[2001:db8::1]\""),
        "2001:db8::1 0 http 2001:db8::1"
    );
    // forged leftmost element; the proxy's element has its own proto
    assert_eq!(
        fwd("for=6.6.6.6;proto=https, for=192.0.2.61;proto=http"),
        "192.0.2.61 0 http 192.0.2.61"
    );
    // trusted hop skipped: the proto of the client's element
    assert_eq!(
        fwd("for=192.0.2.62;proto=https, for=10.0.0.3"),
        "192.0.2.62 0 https 192.0.2.62"
    );
    // obfuscated identifiers, unknown, bare IPv6: no client
    for none in [
        "for=_hidden",
        "for=unknown",
        "for=\"2001:db8::1\"",
        "for=\"[::1\"",
    ] {
        let body = fwd(none);
        assert!(
            body.starts_with("127.0.0.1 ") && body.ends_with(" http -"),
            "{none}: {body}"
        );
    }
    // an obfuscated port keeps the address
    assert_eq!(
        fwd("for=\"192.0.2.63:_p1\""),
        "192.0.2.63 0 http 192.0.2.63"
    );
    // repeated fields are one list
    assert_eq!(
        s.get(&[
            ("Forwarded", "for=6.6.6.6"),
            ("Forwarded", "for=192.0.2.64")
        ]),
        "192.0.2.64 0 http 192.0.2.64"
    );
    // X-Forwarded-* are not read in this mode
    let body = s.get(&[
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-Proto", "https"),
    ]);
    assert!(
        body.starts_with("127.0.0.1 ") && body.ends_with(" http -"),
        "{body}"
    );
}

#[test]
fn behind_a_proxy_protocol_balancer_the_trust_is_checked_against_its_client() {
    let s = serve(|b| {
        b.proxy_protocol("127.0.0.1")
            .forwarded_allow_ips("10.0.0.0/8")
            .forwarded_remote_addr(true)
    });
    let headers = [
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-Proto", "https"),
    ];
    // the PROXY client is a trusted proxy (10.0.0.9): its headers count
    let body = request(
        connect(s.addr()),
        b"PROXY TCP4 10.0.0.9 10.0.0.1 5000 80\r\n",
        &headers,
    );
    assert_eq!(body, "203.0.113.5 0 https 203.0.113.5");
    // the PROXY client is anybody: its headers are its own, although the socket peer is
    // loopback
    let body = request(
        connect(s.addr()),
        b"PROXY TCP4 192.0.2.1 10.0.0.1 5000 80\r\n",
        &headers,
    );
    assert_eq!(body, "192.0.2.1 5000 http -");
}

#[test]
fn keep_alive_resolves_every_request_afresh() {
    let s = serve(|b| b.forwarded_remote_addr(true));
    let mut reader = BufReader::new(connect(s.addr()));
    for (xff, want) in [
        (Some("203.0.113.5"), "203.0.113.5"),
        (None, "127.0.0.1"),
        (Some("198.51.100.1"), "198.51.100.1"),
    ] {
        let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        if let Some(xff) = xff {
            req.extend_from_slice(format!("X-Forwarded-For: {xff}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        reader.get_mut().write_all(&req).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with(&format!("{want} ")), "{body}");
    }
}

#[test]
fn a_bad_list_fails_the_build() {
    let err = WsgiServer::builder("127.0.0.1:0", app)
        .forwarded_allow_ips("127.0.0.1, example.com")
        .build()
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig(ref m) if m.contains("example.com")),
        "{err}"
    );
}

#[test]
fn unix_socket_peers_are_trusted_by_default_as_gunicorn_does() {
    let dir = std::env::temp_dir().join(format!("may_gevent-fwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let server = WsgiServer::builder(listener, app)
        .access_log(None)
        .logger(None)
        .build()
        .unwrap();
    server.start().unwrap();
    watchdog::arm();
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.5\r\n\
          X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    // no REMOTE_ADDR on a Unix socket; the forwarded client and scheme are there
    assert!(reply.ends_with("\r\n\r\n- - https 203.0.113.5"), "{reply}");
    server.stop(None);
    let _ = std::fs::remove_dir_all(&dir);
}
