//! The webproxy comparison (issue 9): a WSGI proxy whose handler fetches from a slow upstream,
//! once with a blocking std-socket HTTP client (what ureq or reqwest's blocking client do) and
//! once with `may_gevent::client`. N slow requests go through the proxy at once, then one fast
//! request while they are in flight; the table shows how long the N took in all and how long
//! the fast one took.
//!
//! The upstream is a thread-per-connection std server (so that it never shares may's workers
//! with the proxy): `/slow` answers after `CLIENT_LATENCY_MS`, `/fast` at once. The proxy runs
//! on may's default workers (one per CPU: 2 on the project's machine).
//!
//! `cargo bench --bench client`. Knobs (environment): `CLIENT_N` (default 6),
//! `CLIENT_LATENCY_MS` (default 1000).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::client::Client;
use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Read a request head from `conn` (up to the blank line).
fn read_head(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The slow upstream: one OS thread per connection, one response per connection.
fn upstream(latency: Duration, slow_started: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let started = slow_started.clone();
            std::thread::spawn(move || {
                let head = read_head(&mut conn);
                let body: &[u8] = if head.starts_with("GET /slow ") {
                    started.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(latency);
                    b"slow"
                } else {
                    b"fast"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(body);
            });
        }
    });
    addr
}

/// A blocking HTTP/1.0 GET over std::net (a stand-in for any std-socket client).
fn blocking_get(upstream: SocketAddr, path: &str) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(upstream)?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {upstream}\r\n\r\n")?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)?;
    let at = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(reply.len(), |i| i + 4);
    Ok(reply.split_off(at))
}

/// A proxy on 127.0.0.1:0 that serves `/PATH` by fetching `http://upstream/PATH`.
fn proxy(upstream: SocketAddr, blocking: bool) -> WsgiServer {
    let client = Client::new();
    let app = move |env: &mut Environ, start_response: &mut StartResponse<'_>| -> AppResult {
        let path = env.path_info().to_owned();
        let body = if blocking {
            blocking_get(upstream, &path)?
        } else {
            client.get(&format!("http://{upstream}{path}"))?.bytes()?
        };
        start_response.call("200 OK", &[])?;
        Ok(body.into())
    };
    let server = WsgiServer::builder("127.0.0.1:0", app)
        .access_log(None)
        .build()
        .expect("proxy");
    server.start().expect("start proxy");
    server
}

/// One GET through the proxy with `Connection: close`; the reply's body.
fn through(proxy: SocketAddr, path: &str) -> String {
    let mut conn = TcpStream::connect(proxy).expect("connect to the proxy");
    conn.set_read_timeout(Some(Duration::from_secs(120))).ok();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {proxy}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    conn.read_to_string(&mut reply).expect("read the reply");
    reply.rsplit("\r\n\r\n").next().unwrap_or("").to_owned()
}

struct Run {
    total: Duration,
    fast: Duration,
}

fn run(n: usize, latency: Duration, blocking: bool) -> Run {
    let slow_started = Arc::new(AtomicUsize::new(0));
    let up = upstream(latency, slow_started.clone());
    let server = proxy(up, blocking);
    let addr = server.local_addr().expect("proxy address");
    let start = Instant::now();
    let slow: Vec<_> = (0..n)
        .map(|_| std::thread::spawn(move || through(addr, "/slow")))
        .collect();
    // the fast request goes out once the upstream has seen its first slow request
    while slow_started.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    assert_eq!(through(addr, "/fast"), "fast");
    let fast = t.elapsed();
    for thread in slow {
        assert_eq!(thread.join().expect("slow client"), "slow");
    }
    let total = start.elapsed();
    server.stop(None);
    Run { total, fast }
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    if !filter.is_empty() && !"client".contains(&filter) {
        println!("client: skipped (filter {filter:?})");
        return;
    }
    let n: usize = env_or("CLIENT_N", 6);
    let latency = Duration::from_millis(env_or("CLIENT_LATENCY_MS", 1000));
    println!(
        "webproxy: {n} slow upstream requests of {latency:?} at once, then a fast one; \
         may workers: {}",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    println!("| proxy's client | {n} slow requests, total | fast request meanwhile |");
    println!("|---|---|---|");
    for (name, blocking) in [
        ("blocking std::net client", true),
        ("may_gevent::client", false),
    ] {
        let r = run(n, latency, blocking);
        println!(
            "| {name} | {:.2} s | {:.1} ms |",
            r.total.as_secs_f64(),
            r.fast.as_secs_f64() * 1e3
        );
    }
}
