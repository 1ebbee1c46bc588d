//! The WSGI examples (`wsgiserver`, `testapp`, `unixsocket_server`, `unixsocket_client`,
//! `wsgiserver_ssl`) started as processes on port 0 and driven by raw-socket clients, as gevent's
//! test__example_wsgiserver*.py do. Every wait is bounded.
//!
//! `cargo test` builds the examples first; `cargo test --test wsgi_examples` alone does not (run
//! `cargo build --examples` before it).
#![allow(missing_docs)]

mod support;
#[cfg(feature = "tls")]
#[path = "support/tls.rs"]
mod tls_support;
mod wsgi_support;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::child::Running;
use support::{connect, Rendezvous, ReservedPort, RENDEZVOUS_WAIT, WAIT};
use wsgi_support::{read_response, read_to_close, Client, Resp};

// ---------------------------------------------------------------------------------------------
// Running an example

fn example_path(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// A running example with its output collected (through reader threads, every wait
/// bounded); killed when dropped, also when the test panics.
struct Example(Running);

impl std::ops::Deref for Example {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl std::ops::DerefMut for Example {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}

impl Example {
    fn start(name: &str, args: &[&str]) -> Example {
        Example::start_in(name, args, None)
    }

    fn start_in(name: &str, args: &[&str], dir: Option<&Path>) -> Example {
        let mut command = Command::new(example_path(name));
        command.args(args);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        Example(Running::spawn(name, &mut command).unwrap_or_else(|err| {
            panic!(
                "cannot run example {name} ({err}): `cargo test` builds the examples; \
                 with --test, run `cargo build --examples` first"
            )
        }))
    }

    /// The `Serving on ...` line, without its prefix.
    fn serving_on(&self) -> String {
        match self
            .stdout
            .wait_for(WAIT, |line| line.starts_with("Serving on "))
        {
            Some(line) => line["Serving on ".len()..].to_owned(),
            None => panic!(
                "{} exited before serving; stderr: {:?}",
                self.name,
                self.stderr.all()
            ),
        }
    }

    /// The address of the `Serving on http(s)://ADDR` line.
    fn addr(&self) -> SocketAddr {
        let url = self.serving_on();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .unwrap_or_else(|| panic!("not a URL: {url:?}"));
        let addr: SocketAddr = rest.parse().unwrap_or_else(|_| panic!("{url:?}"));
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        addr
    }
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "may_gevent-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP clients

fn client(addr: SocketAddr) -> Client {
    let stream = connect(addr);
    stream.set_nodelay(true).unwrap();
    Client {
        reader: BufReader::new(stream.try_clone().unwrap()),
        writer: stream,
    }
}

/// One request on a new connection; the response is read according to its framing.
fn request(addr: SocketAddr, raw: &str) -> Resp {
    let mut client = client(addr);
    client.send(raw.as_bytes());
    client.read(raw.starts_with("HEAD ")).expect("a response")
}

fn get(addr: SocketAddr, target: &str) -> Resp {
    request(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

fn assert_hello(resp: &Resp) {
    assert_eq!(
        (resp.version.as_str(), resp.status, resp.reason.as_str()),
        ("HTTP/1.1", 200, "OK")
    );
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    assert_eq!(resp.header("Content-Length"), Some("18"));
    assert_eq!(resp.body_text(), "<b>hello world</b>");
}

fn assert_not_found(resp: &Resp) {
    assert_eq!((resp.status, resp.reason.as_str()), (404, "Not Found"));
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    assert_eq!(resp.body_text(), "<h1>Not Found</h1>");
}

/// Checks gevent's access-log format and returns (request line, status, bytes).
fn parse_access_line(line: &str) -> (String, u16, u64) {
    let rest = line
        .strip_prefix("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (stamp, rest) = rest.split_at(19);
    let digits_at = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    for (i, ch) in stamp.char_indices() {
        let expected_digit = digits_at.contains(&i);
        assert_eq!(ch.is_ascii_digit(), expected_digit, "timestamp {stamp:?}");
    }
    assert_eq!(
        [&stamp[4..5], &stamp[7..8], &stamp[10..11], &stamp[13..14]],
        ["-", "-", " ", ":"]
    );
    let rest = rest
        .strip_prefix("] \"")
        .unwrap_or_else(|| panic!("{line:?}"));
    let (request_line, rest) = rest.split_once("\" ").unwrap();
    let fields: Vec<&str> = rest.split(' ').collect();
    assert_eq!(fields.len(), 3, "{line:?}");
    let status = fields[0].parse().unwrap();
    let bytes = fields[1].parse().unwrap();
    let (secs, micros) = fields[2].split_once('.').unwrap();
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6 && micros.parse::<u32>().is_ok());
    (request_line.to_owned(), status, bytes)
}

// ---------------------------------------------------------------------------------------------
// wsgiserver

#[test]
fn wsgiserver_hello_world_not_found_and_keep_alive() {
    let ex = Example::start("wsgiserver_bench", &["0"]);
    let addr = ex.addr();
    let mut client = client(addr);
    assert_hello(&client.get("/"));
    assert_not_found(&client.get("/xxx"));
    assert_hello(&client.get("/"));
    // Any method on `/`, as gevent's application does not look at it.
    client.send(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc");
    assert_hello(&client.read(false).unwrap());
}

#[test]
fn wsgiserver_writes_gevent_access_log_lines_to_stderr() {
    let ex = Example::start("wsgiserver_bench", &["0"]);
    let addr = ex.addr();
    let mut stream = connect(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let wire = read_to_close(&mut stream);
    assert!(wire.ends_with(b"\r\n\r\n<b>hello world</b>"));
    let line = ex
        .stderr
        .wait_for(WAIT, |line| line.contains("\"GET / HTTP/1.1\""))
        .expect("an access-log line");
    let (request_line, status, bytes) = parse_access_line(&line);
    assert_eq!(request_line, "GET / HTTP/1.1");
    assert_eq!(status, 200);
    assert_eq!(bytes, wire.len() as u64, "bytes sent on the wire");

    let _ = get(addr, "/xxx");
    let line = ex
        .stderr
        .wait_for(WAIT, |line| line.contains("\"GET /xxx HTTP/1.1\""))
        .expect("an access-log line");
    assert_eq!(parse_access_line(&line).1, 404);
}

#[test]
fn wsgiserver_no_log_writes_no_access_line() {
    let mut ex = Example::start("wsgiserver_bench", &["0", "--no-log"]);
    let addr = ex.addr();
    assert_hello(&get(addr, "/"));
    assert_not_found(&get(addr, "/xxx"));
    ex.signal(libc::SIGTERM);
    assert!(ex.wait_exit(WAIT).success());
    ex.stderr.wait_closed(WAIT);
    let stderr = ex.stderr.all();
    assert!(
        !stderr.iter().any(|line| line.contains("HTTP/1.1\"")),
        "{stderr:?}"
    );
}

/// gevent's test__example_wsgiserver `test_a_blocking_client`.
fn a_half_sent_request_does_not_block_others(args: &[&str]) {
    let ex = Example::start("wsgiserver_bench", args);
    let addr = ex.addr();
    assert_hello(&get(addr, "/"));
    let mut blocking = connect(addr);
    blocking.write_all(b"GET /xxx HTTP/1.0\r\n").unwrap();
    // leave it open and not doing anything while other requests run to completion
    for _ in 0..3 {
        assert_hello(&get(addr, "/"));
    }
    blocking.write_all(b"\r\n").unwrap();
    let mut reader = BufReader::new(blocking);
    let resp = read_response(&mut reader, false).unwrap();
    assert_eq!(resp.version, "HTTP/1.1");
    assert_not_found(&resp);
}

#[test]
fn wsgiserver_a_half_sent_request_does_not_block_others() {
    a_half_sent_request_does_not_block_others(&["0"]);
}

#[test]
fn wsgiserver_with_one_worker_serves_and_is_not_blocked_by_a_half_sent_request() {
    a_half_sent_request_does_not_block_others(&["0", "--workers", "1", "--no-log"]);
    a_half_sent_request_does_not_block_others(&["--workers=1", "0"]);
}

#[test]
fn wsgiserver_stops_gracefully_on_sigterm_and_sigint() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // A reserved port: once the process is gone, connects are refused for sure.
        let reserved = ReservedPort::new();
        let mut ex = Example::start("wsgiserver_bench", &[&reserved.port().to_string()]);
        let addr = ex.addr();
        assert_eq!(addr, reserved.addr);
        // an idle keep-alive connection must not hold the process past stop_timeout
        let mut idle = client(addr);
        assert_hello(&idle.get("/"));
        let begin = Instant::now();
        ex.signal(signal);
        let status = ex.wait_exit(Duration::from_secs(5));
        assert!(status.success(), "signal {signal}: {status:?}");
        assert!(begin.elapsed() < Duration::from_secs(5));
        idle.assert_closed();
        support::assert_connection_refused(addr);
    }
}

#[test]
fn wsgiserver_rejects_bad_arguments() {
    for args in [
        &["--workers", "0"][..],
        &["--workers"],
        &["notaport"],
        &["1", "2"],
    ] {
        let mut ex = Example::start("wsgiserver_bench", args);
        assert_eq!(ex.wait_exit(WAIT).code(), Some(2), "{args:?}");
        ex.stderr.wait_closed(WAIT);
        assert!(
            ex.stderr.all().iter().any(|line| line.contains("usage")),
            "{args:?}"
        );
    }
}

/// Examples with gevent's fixed ports (8088, 8443) run one at a time.
static FIXED_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fixed_port() -> std::sync::MutexGuard<'static, ()> {
    FIXED_PORTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wait until a fixed-port example printed `line` and accepts connections on `addr`.
fn wait_listening(ex: &Example, line: &str, addr: SocketAddr) {
    assert!(
        ex.stdout.wait_for(WAIT, |l| l == line).is_some(),
        "{} did not print {line:?}; stderr: {:?}",
        ex.name,
        ex.stderr.all()
    );
    support::eventually("the example listens", || {
        std::net::TcpStream::connect_timeout(&addr, WAIT).is_ok()
    });
}

#[test]
fn wsgiserver_is_gevents_on_8088_and_stops_on_ctrl_c() {
    let _port = fixed_port();
    let addr: SocketAddr = "127.0.0.1:8088".parse().unwrap();
    let mut ex = Example::start("wsgiserver", &[]);
    wait_listening(&ex, "Serving on 8088...", addr);
    assert_hello(&get(addr, "/"));
    assert_not_found(&get(addr, "/xxx"));
    let mut idle = client(addr);
    assert_hello(&idle.get("/"));
    ex.signal(libc::SIGINT);
    assert!(ex.wait_exit(Duration::from_secs(5)).success());
    idle.assert_closed();
}

// ---------------------------------------------------------------------------------------------
// testapp

#[test]
fn testapp_root_and_not_found() {
    let ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    let mut client = client(addr);
    assert_hello(&client.get("/"));
    for path in [
        "/xxx",
        "/echoes",
        "/streams",
        "/environment",
        "/panic/x",
        "/sleep/1",
    ] {
        assert_not_found(&client.get(path));
    }
}

#[test]
fn testapp_echo_returns_the_body_and_the_request_line() {
    let ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    let mut client = client(addr);

    client.send(
        b"POST /echo/sub%20dir?x=1&y=%20 HTTP/1.1\r\nHost: localhost\r\n\
          Content-Length: 11\r\n\r\nhello world",
    );
    let resp = client.read(false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(resp.header("X-Method"), Some("POST"));
    assert_eq!(resp.header("X-Path"), Some("/echo/sub dir"));
    assert_eq!(resp.header("X-Query"), Some("x=1&y=%20"));
    assert_eq!(resp.body_text(), "hello world");

    // a chunked body, another method, the bare route
    let mut req =
        b"PUT /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend(wsgi_support::chunk_encode(
        &["chunk one, ", "chunk two", ""],
        "",
    ));
    client.send(&req);
    let resp = client.read(false).unwrap();
    assert_eq!(resp.header("X-Method"), Some("PUT"));
    assert_eq!(resp.header("X-Path"), Some("/echo"));
    assert_eq!(resp.header("X-Query"), Some(""));
    assert_eq!(resp.body_text(), "chunk one, chunk two");

    // no body at all
    let resp = client.get("/echo");
    assert_eq!(resp.header("X-Method"), Some("GET"));
    assert_eq!(resp.header("Content-Length"), Some("0"));
    assert!(resp.body.is_empty());

    // bytes a header cannot carry are percent-encoded, never sent raw
    let resp = client.get("/echo/a%0D%0AX-Injected:%20yes%7F%09z%20");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("X-Path"),
        Some("/echo/a%0D%0AX-Injected: yes%7F%09z%20")
    );
    assert_eq!(resp.header("X-Injected"), None);
    // and the connection is still in a good state
    assert_hello(&client.get("/"));
}

/// Chunk sizes of a `/stream` response over HTTP/1.1 (none for an empty body).
fn stream_chunks(client: &mut Client, query: &str) -> Vec<usize> {
    let resp = client.get(&format!("/stream{query}"));
    assert_eq!(resp.status, 200, "{query}");
    assert!(resp.body.iter().all(|&b| b == b'x'), "{query}");
    if resp.body.is_empty() && resp.header("Content-Length") == Some("0") {
        // an iterator that yields nothing: the engine knows the length before sending
        return Vec::new();
    }
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"), "{query}");
    assert_eq!(resp.header("Content-Length"), None, "{query}");
    let chunks = resp.chunks.unwrap();
    chunks.iter().map(Vec::len).collect()
}

#[test]
fn testapp_stream_is_chunked_on_http11_and_close_delimited_on_http10() {
    let ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    let mut client = client(addr);
    assert_eq!(stream_chunks(&mut client, ""), [5, 5, 5]);
    assert_eq!(stream_chunks(&mut client, "/sub/path?n=2&size=4"), [4, 4]);

    let mut stream = connect(addr);
    stream
        .write_all(b"GET /stream?n=4&size=3 HTTP/1.0\r\n\r\n")
        .unwrap();
    let wire = String::from_utf8(read_to_close(&mut stream)).unwrap();
    let (head, body) = wire.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nconnection: close"), "{head}");
    assert!(!lower.contains("content-length"), "{head}");
    assert!(!lower.contains("transfer-encoding"), "{head}");
    assert_eq!(body, "x".repeat(12));
}

#[test]
fn testapp_stream_parses_its_query_like_parse_qs() {
    let ex = Example::start("testapp", &["0"]);
    let mut client = client(ex.addr());
    let cases: &[(&str, usize, usize)] = &[
        ("?n=-1&size=abc", 3, 5),       // negative and bad values: defaults
        ("?n=&size=", 3, 5),            // blank values are dropped
        ("?n&size", 3, 5),              // so are names without `=`
        ("?n=%32&size=1&n=9", 2, 1),    // percent-decoded; the first value wins
        ("?size=2&&n=1.5&x=%zz", 3, 2), // empty pairs, malformed escapes
        ("?n=1&size=99999999999999999999", 1, 5), // out of range: default
        ("?n=0", 0, 5),
        ("?size=0&n=2", 0, 0), // empty chunks are skipped
        ("?n=2;size=1", 3, 5), // `;` is not a separator (Python >= 3.9.2)
    ];
    for &(query, n, size) in cases {
        let sizes = stream_chunks(&mut client, query);
        let expected = if size == 0 { vec![] } else { vec![size; n] };
        assert_eq!(sizes, expected, "{query}");
    }
}

/// A strict JSON parser for an object whose values are all strings.
fn parse_json_object(text: &str) -> Vec<(String, String)> {
    struct Parser<'a> {
        chars: std::iter::Peekable<std::str::Chars<'a>>,
    }
    impl Parser<'_> {
        fn ws(&mut self) {
            while matches!(self.chars.peek(), Some(' ' | '\t' | '\n' | '\r')) {
                self.chars.next();
            }
        }
        fn expect(&mut self, ch: char) {
            self.ws();
            assert_eq!(self.chars.next(), Some(ch));
        }
        fn hex4(&mut self) -> u32 {
            let hex: String = (0..4).map(|_| self.chars.next().unwrap()).collect();
            u32::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad \\u{hex}"))
        }
        fn string(&mut self) -> String {
            self.expect('"');
            let mut out = String::new();
            loop {
                match self.chars.next().expect("unterminated string") {
                    '"' => return out,
                    '\\' => match self.chars.next().unwrap() {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let mut code = self.hex4();
                            if (0xd800..0xdc00).contains(&code) {
                                assert_eq!(self.chars.next(), Some('\\'));
                                assert_eq!(self.chars.next(), Some('u'));
                                let low = self.hex4();
                                code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                            }
                            out.push(char::from_u32(code).expect("a valid code point"));
                        }
                        other => panic!("bad escape \\{other}"),
                    },
                    ch if ch < ' ' => panic!("raw control character {ch:?} in a string"),
                    ch => out.push(ch),
                }
            }
        }
    }
    let mut parser = Parser {
        chars: text.chars().peekable(),
    };
    let mut entries = Vec::new();
    parser.expect('{');
    parser.ws();
    if parser.chars.peek() == Some(&'}') {
        parser.chars.next();
    } else {
        loop {
            let key = parser.string();
            parser.expect(':');
            let value = parser.string();
            entries.push((key, value));
            parser.ws();
            match parser.chars.next() {
                Some(',') => continue,
                Some('}') => break,
                other => panic!("expected , or }} and got {other:?}"),
            }
        }
    }
    parser.ws();
    assert_eq!(parser.chars.next(), None, "trailing characters");
    entries
}

#[test]
fn testapp_environ_is_a_json_object_of_the_string_entries() {
    let ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    let resp = request(
        addr,
        "GET /environ/%22q%22%5C%01%E9?a=%22b%22&c=\"d\\e\" HTTP/1.1\r\nHost: localhost:1234\r\n\
         X-Quote: say \"hi\" \\ there\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    let text = String::from_utf8(resp.body.clone()).expect("UTF-8");
    let entries = parse_json_object(&text);
    let get = |key: &str| {
        let found: Vec<&str> = entries
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(found.len() <= 1, "{key} appears {} times", found.len());
        found.first().map(|v| v.to_string())
    };
    assert_eq!(get("REQUEST_METHOD").as_deref(), Some("GET"));
    assert_eq!(
        get("PATH_INFO").as_deref(),
        Some("/environ/\"q\"\\\u{1}\u{e9}")
    );
    assert_eq!(get("QUERY_STRING").as_deref(), Some(r#"a=%22b%22&c="d\e""#));
    assert_eq!(
        get("RAW_URI").as_deref(),
        Some(r#"/environ/%22q%22%5C%01%E9?a=%22b%22&c="d\e""#)
    );
    assert_eq!(get("HTTP_X_QUOTE").as_deref(), Some("say \"hi\" \\ there"));
    assert_eq!(get("HTTP_COOKIE").as_deref(), Some("a=1; b=2"));
    assert_eq!(get("HTTP_HOST").as_deref(), Some("localhost:1234"));
    assert_eq!(get("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.1"));
    assert_eq!(get("SERVER_PORT"), Some(addr.port().to_string()));
    assert_eq!(get("SCRIPT_NAME").as_deref(), Some(""));
    assert_eq!(get("REMOTE_ADDR").as_deref(), Some("127.0.0.1"));
    assert_eq!(get("wsgi.url_scheme").as_deref(), Some("http"));
    assert!(get("SERVER_SOFTWARE").is_some_and(|v| v.starts_with("may_gevent/")));
    for key in [
        "wsgi.input",
        "wsgi.errors",
        "wsgi.version",
        "CONTENT_LENGTH",
    ] {
        assert_eq!(get(key), None, "{key}");
    }
    // the escapes really are in the body
    assert!(
        text.contains(r#""PATH_INFO":"/environ/\"q\"\\\u0001é""#),
        "{text}"
    );
    assert!(
        text.contains(r#""QUERY_STRING":"a=%22b%22&c=\"d\\e\"""#),
        "{text}"
    );

    // a sub-path and a body
    let resp = request(
        addr,
        "POST /environ/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
         Content-Length: 2\r\n\r\nhi",
    );
    let entries = parse_json_object(&resp.body_text());
    assert!(entries.contains(&("CONTENT_LENGTH".into(), "2".into())));
    assert!(entries.contains(&("CONTENT_TYPE".into(), "text/plain".into())));
    assert!(entries.contains(&("PATH_INFO".into(), "/environ/x".into())));
}

#[test]
fn testapp_panic_is_a_500_and_the_server_keeps_serving() {
    let ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    for _ in 0..3 {
        let mut client = client(addr);
        let resp = client.get("/panic");
        assert_eq!(
            (resp.status, resp.reason.as_str()),
            (500, "Internal Server Error")
        );
        client.assert_closed();
        assert_hello(&get(addr, "/"));
    }
    let line = ex
        .stderr
        .wait_for(WAIT, |line| line.contains("\"GET /panic HTTP/1.1\""))
        .unwrap();
    assert_eq!(parse_access_line(&line).1, 500);
}

#[test]
fn testapp_sleeps_overlap() {
    const SLEEP: Duration = Duration::from_millis(600);
    const CLIENTS: u32 = 10;
    let ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    assert_hello(&get(addr, "/"));
    // Every client connects first; all send their request together, so only the requests are
    // timed, not the threads' start.
    let gate = Arc::new(Rendezvous::new(CLIENTS as usize + 1));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let mut client = client(addr);
                gate.wait(RENDEZVOUS_WAIT).unwrap();
                let begin = Instant::now();
                let resp = client.get(&format!("/sleep?ms={}", SLEEP.as_millis()));
                (resp, begin, Instant::now())
            })
        })
        .collect();
    gate.wait(RENDEZVOUS_WAIT).unwrap();
    let mut first_sent = None::<Instant>;
    let mut last_done = None::<Instant>;
    for thread in threads {
        let (resp, begin, end) = thread.join().unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_text(), "slept");
        let took = end - begin;
        assert!(took >= SLEEP - Duration::from_millis(20), "{took:?}");
        first_sent = Some(first_sent.map_or(begin, |t| t.min(begin)));
        last_done = Some(last_done.map_or(end, |t| t.max(end)));
    }
    // one after the other they would take SLEEP * CLIENTS
    let took = last_done.unwrap() - first_sent.unwrap();
    assert!(
        took < SLEEP * CLIENTS / 2,
        "sleeps did not overlap: {took:?}"
    );

    // a bad value falls back to the default (100 ms)
    let begin = Instant::now();
    let resp = get(addr, "/sleep?ms=soon");
    assert_eq!(resp.body_text(), "slept");
    let took = begin.elapsed();
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn testapp_write_sends_a_then_b() {
    let ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    let resp = get(addr, "/write");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(
        resp.chunks.as_deref(),
        Some(&[b"a".to_vec(), b"b".to_vec()][..])
    );

    let mut stream = connect(addr);
    stream.write_all(b"GET /write HTTP/1.0\r\n\r\n").unwrap();
    let wire = String::from_utf8(read_to_close(&mut stream)).unwrap();
    assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
    assert!(wire.ends_with("\r\n\r\nab"), "{wire}");
}

#[test]
fn testapp_stops_on_sigterm() {
    let mut ex = Example::start("testapp", &["0"]);
    let addr = ex.addr();
    assert_hello(&get(addr, "/"));
    ex.signal(libc::SIGTERM);
    assert!(ex.wait_exit(Duration::from_secs(5)).success());
}

// ---------------------------------------------------------------------------------------------
// unixsocket_server, unixsocket_client

#[test]
fn unixsocket_server_serves_over_its_socket() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("unixsocket_server.sock");
    // a stale file in the way is removed first, as gevent's example does
    std::fs::write(&path, b"stale").unwrap();
    let mut server = Example::start_in("unixsocket_server", &[], Some(&dir.0));
    let connect = || std::os::unix::net::UnixStream::connect(&path);
    support::eventually("the server listens on its socket", || connect().is_ok());

    let stream = connect().unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writer
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut reader, false).unwrap();
    assert_eq!(
        (resp.status, resp.header("Content-Length")),
        (200, Some("0"))
    );

    // the client example prints the size of the response, then the response
    let mut client = Example::start_in("unixsocket_client", &[], Some(&dir.0));
    assert!(client.wait_exit(WAIT).success());
    client.stdout.wait_closed(WAIT);
    let out = client.stdout.all();
    let n: usize = out[0]
        .strip_prefix("received ")
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(out[1].starts_with("b'HTTP/1.1 200 OK\\r\\n"), "{out:?}");
    assert!(n > 0 && out[1].ends_with("\\r\\n\\r\\n'"), "{out:?}");

    // the access log names no client address: Unix peers have none
    let line = server
        .stderr
        .wait_for(WAIT, |line| line.contains("\"GET / HTTP/1.1\""))
        .unwrap();
    assert!(line.starts_with("- - - ["), "{line}");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(WAIT).success());
}

// ---------------------------------------------------------------------------------------------
// wsgiserver_ssl

#[cfg(feature = "tls")]
#[test]
fn wsgiserver_ssl_serves_hello_world_over_https() {
    let cert = tls_support::TestCert::generate();
    cert.dir.write("server.crt", &cert.cert_pem);
    cert.dir.write("server.key", &cert.key_pem);
    let _port = fixed_port();
    let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
    let ex = Example::start_in("wsgiserver_ssl", &[], Some(cert.dir.path()));
    wait_listening(&ex, "Serving on https://:8443", addr);
    let mut reader = BufReader::new(cert.connect(addr));
    reader
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_hello(&read_response(&mut reader, false).unwrap());
    reader
        .get_mut()
        .write_all(b"GET /xxx HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_not_found(&read_response(&mut reader, false).unwrap());

    // gevent's blocking-client test, over TLS: a half-sent request holds nobody up
    let mut blocking = BufReader::new(cert.connect(addr));
    blocking
        .get_mut()
        .write_all(b"GET /xxx HTTP/1.0\r\n")
        .unwrap();
    let mut other = BufReader::new(cert.connect(addr));
    other
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_hello(&read_response(&mut other, false).unwrap());
    blocking.get_mut().write_all(b"\r\n").unwrap();
    let mut status_line = String::new();
    std::io::BufRead::read_line(&mut blocking, &mut status_line).unwrap();
    assert_eq!(status_line, "HTTP/1.1 404 Not Found\r\n");

    // a plain-HTTP client on the TLS port is closed; the server keeps serving
    let mut plain = connect(addr);
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    match tls_support::wait_closed(&mut plain, WAIT) {
        tls_support::Closed::Reset => {}
        tls_support::Closed::Eof(got) => assert!(!got.starts_with(b"HTTP/"), "{got:?}"),
    }
    assert_hello(&{
        let mut reader = BufReader::new(cert.connect(addr));
        reader
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        read_response(&mut reader, false).unwrap()
    });
}

#[cfg(feature = "tls")]
#[test]
fn wsgiserver_ssl_without_its_certificate_exits_1_naming_the_file() {
    let dir = TempDir::new("ssl-missing");
    let _port = fixed_port();
    let mut ex = Example::start_in("wsgiserver_ssl", &[], Some(&dir.0));
    assert_eq!(ex.wait_exit(WAIT).code(), Some(1));
    ex.stderr.wait_closed(WAIT);
    let stderr = ex.stderr.all().join("\n");
    // main's Err prints the error and its cause on one line
    assert!(
        stderr.contains("tls setup failed for server.crt"),
        "{stderr}"
    );
    assert!(stderr.contains("No such file"), "{stderr}");

    // a certificate without its key: the key file is named
    let cert = tls_support::TestCert::generate();
    cert.dir.write("server.crt", &cert.cert_pem);
    let mut ex = Example::start_in("wsgiserver_ssl", &[], Some(cert.dir.path()));
    assert_eq!(ex.wait_exit(WAIT).code(), Some(1));
    ex.stderr.wait_closed(WAIT);
    let stderr = ex.stderr.all().join("\n");
    assert!(stderr.contains("server.key"), "{stderr}");
}
