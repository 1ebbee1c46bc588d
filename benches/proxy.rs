//! What a load balancer in front costs (issue 11).
//!
//! 1. Connection churn, with and without a PROXY header, in the same run: a `WsgiServer` (hello
//!    world, access log off) in a child process with one may worker; blocking clients connect,
//!    send one request (after a PROXY v1 or v2 header for the server with `proxy_protocol`
//!    on), read the response and close (RST). One message = one connection. Rounds interleave
//!    the three cases; the table shows the median and the server CPU per connection.
//! 2. Idle memory: resident memory per idle keep-alive connection, with and without a PROXY
//!    header (`PROXY_IDLE_CONNS`, default 2000; 0 skips it).
//! 3. criterion micro-benchmarks: the PROXY header scan (v1, v2 with TLVs) and the forwarded
//!    header resolution a trusted peer's request goes through (`X-Forwarded-For` with one and
//!    three hops, RFC 7239 `Forwarded`, and a browser request with no forwarded header — what
//!    every request from a trusted peer such as loopback pays by default).
//!
//! `cargo bench --bench proxy`. Knobs (environment): `PROXY_ROUNDS` (default 3),
//! `PROXY_WARMUP_MS` (300), `PROXY_MEASURE_MS` (1000), `PROXY_CHURN_THREADS` (4; 0 skips the
//! churn table).

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, Criterion};
use may_gevent::pywsgi::__private::{resolve_forwarded, scan_proxy_header};
use may_gevent::pywsgi::{AccessLog, AppResult, Environ, StartResponse, WsgiServer};
use may_gevent::IpAllowList;
use support::http::{hello_parser, REQUEST};
use support::{env_or, median, ChildServer, Churn, Measured, Role, Running, Table};

const PLAIN: &str = "WsgiServer";
const PROXIED: &str = "WsgiServer+proxy_protocol";
const ROLES: &[Role] = &[(PLAIN, plain), (PROXIED, proxied)];

const V1: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";

fn v2() -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n\x21\x11".to_vec();
    let mut payload = vec![192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb];
    // what HAProxy sends with `send-proxy-v2`: ALPN and a unique id
    payload.extend_from_slice(&[0x01, 0, 8]);
    payload.extend_from_slice(b"http/1.1");
    payload.extend_from_slice(&[0x05, 0, 16]);
    payload.extend_from_slice(&[0xab; 16]);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

fn application(_: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    start_response.call("200 OK", &[("Content-Type", "text/html")])?;
    Ok(b"<b>hello world</b>".into())
}

fn start(proxy: bool) -> Running {
    let mut builder = WsgiServer::builder("127.0.0.1:0", application).access_log(AccessLog::Off);
    if proxy {
        builder = builder.proxy_protocol("127.0.0.1");
    }
    let server = builder.build().expect("build");
    server.start().expect("start");
    Running {
        port: server.server_port().expect("bound port"),
        keep: Box::new(server),
    }
}

fn plain() -> Running {
    start(false)
}

fn proxied() -> Running {
    start(true)
}

fn churn() {
    let rounds: usize = env_or("PROXY_ROUNDS", 3);
    let warmup = Duration::from_millis(env_or("PROXY_WARMUP_MS", 300));
    let measure = Duration::from_millis(env_or("PROXY_MEASURE_MS", 1000));
    let threads: usize = env_or("PROXY_CHURN_THREADS", 4);
    if threads == 0 {
        return;
    }
    let with = |header: &[u8]| [header, REQUEST].concat();
    let cases: [(&str, &'static str, Vec<u8>); 3] = [
        ("no PROXY header", PLAIN, REQUEST.to_vec()),
        ("PROXY v1", PROXIED, with(V1)),
        ("PROXY v2 + TLVs", PROXIED, with(&v2())),
    ];
    println!(
        "proxy churn: {threads} blocking clients, each: connect, [PROXY header +] one GET, read \
         the response, close (RST); WsgiServer in a child process with 1 may worker; {rounds} \
         round(s) of {} ms warm-up + {} ms, median shown",
        warmup.as_millis(),
        measure.as_millis()
    );
    let mut results = vec![Vec::<Measured>::new(); cases.len()];
    for _ in 0..rounds {
        for (i, (_, role, request)) in cases.iter().enumerate() {
            let child = ChildServer::spawn(role).expect("start server child");
            let mut churn = Churn::new(child.addr(), threads, request, hello_parser);
            churn.warmup = warmup;
            churn.measure = measure;
            match churn.run(&child) {
                Ok(m) => results[i].push(m),
                Err(err) => panic!("{role}: {err}"),
            }
        }
    }
    let mut table = Table::new(&["case", "conns/s", "server CPU us/conn", "CPU vs none"]);
    let summary = |runs: &[Measured]| -> (f64, f64) {
        let mut rates: Vec<f64> = runs.iter().map(Measured::rate).collect();
        let mut cpus: Vec<f64> = runs.iter().map(Measured::cpu_us_per_msg).collect();
        (median(&mut rates), median(&mut cpus))
    };
    let (_, base_cpu) = summary(&results[0]);
    for ((name, _, _), runs) in cases.iter().zip(&results) {
        let (rate, cpu) = summary(runs);
        table.row(vec![
            name.to_string(),
            format!("{rate:.0}"),
            format!("{cpu:.2}"),
            format!("{:+.2} us", cpu - base_cpu),
        ]);
    }
    print!("{}", table.render());
}

/// Open `n` keep-alive connections, each having sent `request` and received one response.
fn open_idle(addr: std::net::SocketAddr, n: usize, request: &[u8]) -> Vec<std::net::TcpStream> {
    use std::io::{Read, Write};
    let mut conns = Vec::with_capacity(n);
    let mut buf = [0u8; 1024];
    for _ in 0..n {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).expect("write");
        let mut have = 0;
        while hello_parser(&buf[..have]).0 == 0 {
            match s.read(&mut buf[have..]).expect("read") {
                0 => panic!("closed before the response"),
                k => have += k,
            }
        }
        conns.push(s);
    }
    conns
}

/// Resident memory per idle keep-alive connection, with and without a PROXY header.
fn idle_memory() {
    let n: usize = env_or("PROXY_IDLE_CONNS", 2000);
    if n == 0 {
        return;
    }
    let cases: [(&str, &'static str, Vec<u8>); 2] = [
        ("no PROXY header", PLAIN, REQUEST.to_vec()),
        ("PROXY v2 + TLVs", PROXIED, [&v2()[..], REQUEST].concat()),
    ];
    println!(
        "proxy idle memory: {n} idle keep-alive connections after one request each; marginal \
         VmRSS of the server child per connection (stack: its coroutine stack pages)"
    );
    let mut table = Table::new(&["case", "KiB/conn", "stack KiB/conn"]);
    for (name, role, request) in &cases {
        let child = ChildServer::spawn(role).expect("start server child");
        // one connection first: the first one pays for lazily allocated runtime state
        let warm = open_idle(child.addr(), 1, request);
        let (rss0, stack0) = (child.rss_kib().unwrap(), child.stack_rss_kib().unwrap());
        let conns = open_idle(child.addr(), n, request);
        let (rss1, stack1) = (child.rss_kib().unwrap(), child.stack_rss_kib().unwrap());
        table.row(vec![
            name.to_string(),
            format!("{:.2}", (rss1 - rss0) as f64 / n as f64),
            format!("{:.2}", (stack1 - stack0) as f64 / n as f64),
        ]);
        drop((warm, conns));
    }
    print!("{}", table.render());
}

fn proxy_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("proxy_header");
    let v2 = v2();
    for (name, header) in [("v1 TCP4", V1), ("v2 TCP4 + 2 TLVs", &v2[..])] {
        assert_eq!(scan_proxy_header(header), Ok(Some(header.len())));
        group.bench_function(name, |b| b.iter(|| scan_proxy_header(black_box(header))));
    }
    group.finish();
}

/// Header fields, names and values as sent.
type Fields = Vec<(&'static [u8], &'static [u8])>;

/// What a browser sends (ten header fields), plus `extra`.
fn browser(extra: &[(&'static [u8], &'static [u8])]) -> Fields {
    let mut headers: Fields = vec![
        (b"Host", b"www.example.com"),
        (
            b"User-Agent",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (b"Accept", b"text/css,*/*;q=0.1"),
        (b"Accept-Language", b"en-US,en;q=0.5"),
        (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
        (b"Referer", b"https://www.example.com/articles/2026/how-to"),
        (b"Connection", b"keep-alive"),
        (
            b"Cookie",
            b"session=4f9c1d2e8a7b6c5d4e3f2a1b0c9d8e7f; theme=dark",
        ),
        (b"Sec-Fetch-Dest", b"style"),
        (b"Sec-Fetch-Mode", b"no-cors"),
    ];
    headers.extend_from_slice(extra);
    headers
}

fn forwarded(c: &mut Criterion) {
    let trusted = IpAllowList::parse("127.0.0.1, ::1, 10.0.0.0/8").unwrap();
    let mut group = c.benchmark_group("forwarded");
    let cases: [(&str, bool, Fields); 4] = [
        ("no forwarded header, 10 headers", false, browser(&[])),
        (
            "X-Forwarded-For 1 hop + Proto",
            false,
            browser(&[
                (b"X-Forwarded-For", b"203.0.113.5"),
                (b"X-Forwarded-Proto", b"https"),
            ]),
        ),
        (
            "X-Forwarded-For 3 hops + Proto",
            false,
            browser(&[
                (b"X-Forwarded-For", b"6.6.6.6, 203.0.113.5, 10.0.0.7"),
                (b"X-Forwarded-Proto", b"https"),
            ]),
        ),
        (
            "Forwarded 2 elements",
            true,
            browser(&[(
                b"Forwarded",
                b"for=203.0.113.5;proto=https, for=\"[2001:db8::1]:443\";proto=http",
            )]),
        ),
    ];
    for (name, rfc7239, headers) in &cases {
        let (client, _) = resolve_forwarded(headers, *rfc7239, &trusted);
        assert_eq!(client.is_some(), !name.starts_with("no "), "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| resolve_forwarded(black_box(headers), *rfc7239, &trusted))
        });
    }
    group.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    targets = proxy_scan, forwarded
}

fn main() {
    support::serve_if_child(ROLES);
    support::raise_nofile();
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    if filter.is_empty() || "churn".contains(&filter) {
        churn();
    }
    if filter.is_empty() || "idle_memory".contains(&filter) {
        idle_memory();
    }
    micro();
    Criterion::default().configure_from_args().final_summary();
}
