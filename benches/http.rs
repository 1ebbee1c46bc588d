//! End-to-end HTTP benchmark (issues 3, 4 and 12): gevent's `wsgiserver` hello world on
//! `WsgiServer` and on `wsgi::WsgiServer` (the same application on may_minihttp's engine)
//! against a may_minihttp hello world (same status, content type and body), each
//! in its own child process with one may worker, measured in the same run with interleaved
//! rounds (medians shown).
//!
//! 1. Checks first that the response parser frames both servers' responses exactly (every
//!    prefix of a pipelined batch) and that they are `200 text/html <b>hello world</b>`; the
//!    parser keeps checking every response during the runs and a wrong one aborts the bench.
//! 2. Requests/s and server CPU per request (utime + stime of the child, `/proc/<pid>/stat`):
//!    keep-alive GET at 16 and 256 connections, 16-deep pipelining on 16 connections; for
//!    `WsgiServer` with the access log off, on (to a sink), and over TLS (keep-alive; rcgen
//!    certificate made at start, native-tls client with one shared connector).
//! 3. Syscalls per request of both servers (`perf stat` on the kernel's syscall tracepoints,
//!    else `strace -c -f -p <child>`), for a short window under each load.
//! 4. Resident memory per idle keep-alive connection (each made one request first).
//!
//! `cargo bench --bench http`. Knobs (environment): `HTTP_ROUNDS` (default 5),
//! `HTTP_WARMUP_MS` (300), `HTTP_MEASURE_MS` (1200), `HTTP_TLS` (1; 0 skips HTTPS),
//! `HTTP_SYSCALLS` (1; 0 skips the syscall count), `HTTP_IDLE_CONNS` (10000; 0 skips),
//! `HTTP_SPIN` (1: the client busy-polls), `HTTP_VERBOSE=1` (print every run).
//!
//! Profiling mode (no measurement, for a server started by hand, e.g. under valgrind with
//! `<bench binary> __bench-server WsgiServer`): `<bench binary> __bench-load <port> <conns>
//! <depth> <requests>` sends hello-world requests until `<requests>` responses were checked.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::http::{
    hello_parser, open_idle_http, perf_counts, strace_counts, verify_server, TestCert, MINIHTTP,
    REQUEST, ROLES, WSGI, WSGI_LOG, WSGI_MINIHTTP, WSGI_TLS,
};
use support::{env_or, median, ChildServer, Load, Measured, Table};

/// (label, connections, pipelining depth)
const CASES: [(&str, usize, usize); 3] = [
    ("keep-alive", 16, 1),
    ("keep-alive", 256, 1),
    ("pipelined x16", 16, 16),
];

/// Plain HTTP servers; the last one is the reference of the ratios (the first, pywsgi's
/// `WsgiServer`, that of the "vs WsgiServer" column).
const SERVERS: [&str; 4] = [WSGI, WSGI_LOG, WSGI_MINIHTTP, MINIHTTP];

struct Settings {
    warmup: Duration,
    measure: Duration,
    spin: bool,
    verbose: bool,
}

fn main() {
    support::serve_if_child(ROLES);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__bench-load") {
        profile_load(&args[1..]);
        return;
    }
    // `cargo bench -- <filter>` passes a filter (and `--bench`): skip unless it matches.
    let filter = args
        .iter()
        .find(|arg| !arg.starts_with('-'))
        .cloned()
        .unwrap_or_default();
    if !filter.is_empty() && !"http".contains(&filter) {
        println!("http: skipped (filter {filter:?})");
        return;
    }
    let nofile = support::raise_nofile();

    let rounds: usize = env_or("HTTP_ROUNDS", 5);
    let settings = Settings {
        warmup: Duration::from_millis(env_or("HTTP_WARMUP_MS", 300)),
        measure: Duration::from_millis(env_or("HTTP_MEASURE_MS", 1200)),
        spin: env_or("HTTP_SPIN", 1) != 0,
        verbose: env_or("HTTP_VERBOSE", 0) != 0,
    };
    let tls = cfg!(feature = "tls") && env_or("HTTP_TLS", 1) != 0;
    let cert = TestCert::generate().expect("generate a test certificate");
    let tls_env: Vec<(String, String)> = cert
        .env()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let tls_env: Vec<(&str, &str)> = tls_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    #[cfg(feature = "tls")]
    let wrap =
        tls.then(|| support::http::tls_wrap(Arc::new(cert.connector().expect("TLS connector"))));
    #[cfg(not(feature = "tls"))]
    let wrap: Option<Arc<support::Wrap>> = None;

    // 1. The servers answer what we measure, and the parser counts it exactly (and refuses
    // anything else).
    for wrong in [
        &b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\n<h1>Not Found</h1>"[..],
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let refused = std::panic::catch_unwind(|| hello_parser(wrong)).is_err();
        std::panic::set_hook(hook);
        assert!(refused, "the response parser accepts a wrong response");
    }
    let mut roles: Vec<&'static str> = SERVERS.to_vec();
    if tls {
        roles.push(WSGI_TLS);
    }
    for &role in &roles {
        let child = ChildServer::spawn_env(role, &tls_env).expect("start server child");
        let mut tcp = TcpStream::connect(child.addr()).expect("connect");
        let checked = match (&wrap, role == WSGI_TLS) {
            (Some(wrap), true) => {
                let dup = tcp.try_clone().expect("clone");
                let mut tls = wrap(dup).expect("TLS handshake");
                tcp.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                verify_server(&mut tls, 20)
            }
            _ => {
                tcp.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                verify_server(&mut tcp, 20)
            }
        };
        match checked {
            Ok(len) => println!(
                "checked {role}: 20 pipelined requests -> 20 responses 200 text/html \
                 {:?}, {len} bytes each, framed exactly by the parser",
                String::from_utf8_lossy(support::http::BODY)
            ),
            Err(err) => panic!("http bench: {role} fails the response check: {err}"),
        }
    }

    // 2. Requests/s and server CPU per request.
    if rounds > 0 {
        throughput(rounds, &settings, wrap.as_ref(), &tls_env);
    }

    // 3. Syscalls per request.
    if env_or("HTTP_SYSCALLS", 1) != 0 {
        syscalls(&settings);
    }

    // 4. Idle keep-alive memory.
    let wanted: usize = env_or("HTTP_IDLE_CONNS", 10_000);
    if wanted > 0 {
        idle_memory(wanted, usize::try_from(nofile).unwrap_or(usize::MAX));
    }
    drop(cert);
}

/// Requests/s and server CPU per request of every server and case (interleaved rounds).
fn throughput(
    rounds: usize,
    settings: &Settings,
    wrap: Option<&Arc<support::Wrap>>,
    tls_env: &[(&str, &str)],
) {
    println!(
        "\nhello world over 127.0.0.1, request {:?}; each server in its own process with 1 may \
         worker; client: 1 epoll thread{} pinned to the other core; {rounds} interleaved \
         round(s) of {} ms warm-up + {} ms measured per case, median shown",
        String::from_utf8_lossy(REQUEST),
        if settings.spin { " (busy-polling)" } else { "" },
        settings.warmup.as_millis(),
        settings.measure.as_millis()
    );
    let load_before = load_average();
    let mut plain = vec![vec![Vec::<Measured>::new(); SERVERS.len()]; CASES.len()];
    let mut secure = vec![Vec::<Measured>::new(); CASES.len()];
    for round in 0..rounds {
        for (c, &(_, conns, depth)) in CASES.iter().enumerate() {
            for k in 0..SERVERS.len() {
                // rotate the order from round to round
                let s = (k + round) % SERVERS.len();
                let m = measure(SERVERS[s], &[], conns, depth, None, settings);
                plain[c][s].push(m);
            }
            if depth == 1 {
                if let Some(wrap) = wrap {
                    let m = measure(WSGI_TLS, tls_env, conns, depth, Some(wrap), settings);
                    secure[c].push(m);
                }
            }
        }
    }
    // medians: requests/s, CPU us/request, user-mode CPU us/request
    println!(
        "load average (1 min) before: {}, after: {} (other work on the machine disturbs \
         the run)",
        load_before,
        load_average()
    );
    let summary = |runs: &[Measured]| -> (f64, f64, f64) {
        let mut rates: Vec<f64> = runs.iter().map(Measured::rate).collect();
        let mut cpus: Vec<f64> = runs.iter().map(Measured::cpu_us_per_msg).collect();
        let mut users: Vec<f64> = runs.iter().map(Measured::user_us_per_msg).collect();
        (median(&mut rates), median(&mut cpus), median(&mut users))
    };
    let mut table = Table::new(&[
        "case",
        "conns",
        "server",
        "req/s",
        "CPU us/req",
        "user us/req",
        "req/s vs minihttp",
        "CPU/req vs minihttp",
        "(rounds: min-max)",
        "CPU/req vs WsgiServer",
        "p50 / p99 ms",
    ]);
    let reference = SERVERS.len() - 1;
    for (c, &(label, conns, _)) in CASES.iter().enumerate() {
        for (s, server) in SERVERS.iter().enumerate() {
            let (rate, cpu, user) = summary(&plain[c][s]);
            let (rate_ratio, cpu_ratio, lo, hi) = paired(&plain[c][s], &plain[c][reference]);
            let (_, vs_wsgi, _, _) = paired(&plain[c][s], &plain[c][0]);
            table.row(vec![
                label.to_string(),
                conns.to_string(),
                server.to_string(),
                format!("{rate:.0}"),
                format!("{cpu:.2}"),
                format!("{user:.2}"),
                format!("{rate_ratio:.2}x"),
                format!("{cpu_ratio:.2}x"),
                format!("{lo:.2}-{hi:.2}"),
                format!("{vs_wsgi:.2}x"),
                latency(&plain[c][s]),
            ]);
        }
    }
    print!("{}", table.render());
    println!(
        "CPU/req vs minihttp = our CPU per request / may_minihttp's in the same round, median \
         over the rounds (target <= 1.25x, goal < 1.00x). On 2 cores the client saturates its core first, so CPU per request is the \
         figure that counts; user us/req is its user-mode part (the rest is kernel time); \
         /proc CPU time has 10 ms resolution. CPU/req vs WsgiServer = the same against \
         pywsgi's WsgiServer (access log off) in the same round; wsgi::WsgiServer is the same \
         application on may_minihttp's engine (feature minihttp). p50 / p99 = response latency \
         percentiles (from the client queueing a request to parsing its response; one clock \
         read per client epoll batch), medians over the rounds."
    );
    if wrap.is_some() {
        let mut table = Table::new(&[
            "case",
            "conns",
            "server",
            "req/s",
            "CPU us/req",
            "user us/req",
            "req/s vs our HTTP",
            "CPU/req vs our HTTP",
            "(rounds: min-max)",
        ]);
        for (c, &(label, conns, depth)) in CASES.iter().enumerate() {
            if depth != 1 {
                continue;
            }
            let (rate, cpu, user) = summary(&secure[c]);
            let (rate_ratio, cpu_ratio, lo, hi) = paired(&secure[c], &plain[c][0]);
            table.row(vec![
                format!("HTTPS {label}"),
                conns.to_string(),
                WSGI_TLS.to_string(),
                format!("{rate:.0}"),
                format!("{cpu:.2}"),
                format!("{user:.2}"),
                format!("{rate_ratio:.2}x"),
                format!("{cpu_ratio:.2}x"),
                format!("{lo:.2}-{hi:.2}"),
            ]);
        }
        println!();
        print!("{}", table.render());
        println!(
            "HTTPS: rcgen ECDSA P-256 certificate, native-tls (OpenSSL) on both sides, handshakes \
             before the warm-up; may_minihttp has no TLS."
        );
    }
}

/// Medians over the rounds of the p50 and p99 response latency, in ms.
fn latency(runs: &[Measured]) -> String {
    let mut p50: Vec<f64> = runs
        .iter()
        .filter_map(|m| m.latency)
        .map(|l| l.0.as_secs_f64() * 1e3)
        .collect();
    let mut p99: Vec<f64> = runs
        .iter()
        .filter_map(|m| m.latency)
        .map(|l| l.1.as_secs_f64() * 1e3)
        .collect();
    if p99.is_empty() {
        return "-".into();
    }
    format!("{:.3} / {:.3}", median(&mut p50), median(&mut p99))
}

/// The 1-minute load average (`/proc/loadavg`).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Ratios of `runs` to `reference` paired by round (measured close in time, so slow drifts of
/// a shared machine cancel out): medians of the rate and CPU-per-request ratios, and the
/// smallest and largest CPU ratio.
fn paired(runs: &[Measured], reference: &[Measured]) -> (f64, f64, f64, f64) {
    let mut rates: Vec<f64> = runs
        .iter()
        .zip(reference)
        .map(|(m, r)| m.rate() / r.rate())
        .collect();
    let mut cpus: Vec<f64> = runs
        .iter()
        .zip(reference)
        .map(|(m, r)| m.cpu_us_per_msg() / r.cpu_us_per_msg())
        .collect();
    let lo = cpus.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = cpus.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&mut rates), median(&mut cpus), lo, hi)
}

/// One measured run of `role` (a fresh child); any failure aborts the bench.
fn measure(
    role: &'static str,
    env: &[(&str, &str)],
    conns: usize,
    depth: usize,
    wrap: Option<&Arc<support::Wrap>>,
    settings: &Settings,
) -> Measured {
    let child = ChildServer::spawn_env(role, env).expect("start server child");
    let mut load = Load::new(child.addr(), conns, REQUEST, hello_parser);
    load.depth = depth;
    load.warmup = settings.warmup;
    load.measure = settings.measure;
    load.spin = settings.spin;
    load.wrap = wrap.cloned();
    let m = load
        .run(&child)
        .unwrap_or_else(|err| panic!("http bench: {role} ({conns} conns, depth {depth}): {err}"));
    if settings.verbose {
        println!(
            "  {role:<24} {conns:>4} conns depth {depth:>2}: {:>8.0} req/s {:>6.2} us CPU each \
             ({:.2} user)",
            m.rate(),
            m.cpu_us_per_msg(),
            m.user_us_per_msg()
        );
    }
    m
}

/// Syscalls per request of each server, keep-alive and pipelined: counted by the kernel's
/// tracepoints through `perf stat` (the server runs at full speed), else by `strace -c -f`
/// (which slows the server down, so reads that would find nothing tend to find data).
fn syscalls(settings: &Settings) {
    let mut table = Table::new(&[
        "server",
        "case",
        "counted req",
        "syscalls/req",
        "reads/req",
        "writes/req",
        "epoll_wait/req",
        "other/req",
    ]);
    let mut others = Vec::new();
    let mut tool = "perf";
    for &(label, conns, depth) in [CASES[0], CASES[1], CASES[2]].iter() {
        for server in [WSGI, WSGI_MINIHTTP, MINIHTTP] {
            let child = ChildServer::spawn(server).expect("start server child");
            let mut load = Load::new(child.addr(), conns, REQUEST, hello_parser);
            load.depth = depth;
            load.warmup = settings.warmup;
            load.spin = settings.spin;
            let pid = child.pid();
            let mut counted = None;
            load.run_during(&child, |count| {
                let mut got = None;
                if tool == "perf" {
                    got = perf_counts(pid, Duration::from_millis(250), 4, count).ok();
                    if got.is_none() {
                        tool = "strace";
                    }
                }
                counted = Some(match got {
                    Some(got) => Ok(got),
                    None => strace_counts(pid, Duration::from_millis(1000), count),
                });
            })
            .unwrap_or_else(|err| panic!("http bench: {server} while counting syscalls: {err}"));
            let (counts, messages) = match counted.expect("counted") {
                Ok(counted) => counted,
                Err(err) => {
                    println!("\nsyscalls: skipped (neither perf nor strace works: {err})");
                    return;
                }
            };
            let per = |calls: u64| calls as f64 / messages.max(1) as f64;
            let (mut reads, mut writes, mut epoll, mut sum, mut total) = (0, 0, 0, 0, None);
            let mut other_names = Vec::new();
            for (name, calls) in &counts {
                match name.as_str() {
                    "total" => total = Some(*calls),
                    "read" | "recvfrom" | "readv" | "recvmsg" => reads += calls,
                    "write" | "sendto" | "writev" | "sendmsg" => writes += calls,
                    "epoll_wait" | "epoll_pwait" | "epoll_pwait2" => epoll += calls,
                    _ if *calls > 0 => other_names.push(format!("{name} {:.4}", per(*calls))),
                    _ => {}
                }
                if name != "total" {
                    sum += calls;
                }
            }
            let total = total.unwrap_or(sum);
            others.push((
                format!("{server}, {label} {conns}x{depth}"),
                other_names.join(", "),
            ));
            table.row(vec![
                server.to_string(),
                format!("{label} {conns}x{depth}"),
                messages.to_string(),
                format!("{:.3}", per(total)),
                format!("{:.3}", per(reads)),
                format!("{:.3}", per(writes)),
                format!("{:.3}", per(epoll)),
                // (the total and the per-call counters are read apart: the total can be a few short)
                format!("{:.3}", per(total.saturating_sub(reads + writes + epoll))),
            ]);
        }
    }
    if tool == "perf" {
        println!(
            "\nsyscalls per request: perf stat -I 250 -e raw_syscalls:sys_enter,syscalls:sys_enter_* \
             -p <child> (in-kernel counters, server at full speed), 4 intervals of 250 ms matched \
             with the responses counted in them"
        );
    } else {
        println!(
            "\nsyscalls per request: strace -c -f -p <child> for 1 s under load (strace slows the \
             server: reads that would find nothing tend to find data, so reads are undercounted)"
        );
    }
    print!("{}", table.render());
    for (case, names) in others {
        if !names.is_empty() {
            println!("  of the others, {case}: {names}");
        }
    }
}

/// Resident memory per idle keep-alive connection, ours and may_minihttp's.
fn idle_memory(wanted: usize, nofile: usize) {
    let count = wanted.min(nofile.saturating_sub(64));
    // may keeps a pool of 1000 ready coroutines from its start: the marginal cost is taken
    // between a first batch past that pool and the full count.
    let first = (count / 5).max(count.min(1_500));
    println!(
        "\nidle keep-alive memory: {count} connections per server, each made one request \
         (response checked) and stays open; RSS = VmRSS of the child (1 may worker)"
    );
    if count < wanted {
        println!("note: RLIMIT_NOFILE is {nofile}: {count} connections instead of {wanted}");
    }
    let mut table = Table::new(&[
        "server",
        "conns",
        "RSS before KiB",
        "RSS after KiB",
        "KiB/conn",
        "marginal KiB/conn",
        "of which stacks",
    ]);
    // idle keep-alive connections give their buffers back after IDLE_RELEASE: sample once
    // every connection has been idle that long
    let settle = may_gevent::pywsgi::IDLE_RELEASE + Duration::from_millis(300);
    for server in [WSGI, MINIHTTP] {
        let child = ChildServer::spawn(server).expect("start server child");
        std::thread::sleep(Duration::from_millis(100));
        let sample = || {
            std::thread::sleep(settle);
            (
                child.rss_kib().expect("rss") as f64,
                child.stack_rss_kib().expect("smaps") as f64,
            )
        };
        let before = sample();
        let t0 = Instant::now();
        let mut conns = open_idle_http(child.addr(), first)
            .unwrap_or_else(|err| panic!("http bench: {server}: idle connections: {err}"));
        let mid = sample();
        conns.extend(
            open_idle_http(child.addr(), count - first)
                .unwrap_or_else(|err| panic!("http bench: {server}: idle connections: {err}")),
        );
        let after = sample();
        let opened = t0.elapsed();
        // all still open and served: one more request on a few of them
        for conn in conns.iter_mut().step_by(count / 10 + 1) {
            check_alive(conn, server);
        }
        let marginal = |i: fn(&(f64, f64)) -> f64| (i(&after) - i(&mid)) / (count - first) as f64;
        table.row(vec![
            server.to_string(),
            conns.len().to_string(),
            format!("{:.0}", before.0),
            format!("{:.0}", after.0),
            format!("{:.2}", (after.0 - before.0) / count as f64),
            format!("{:.2}", marginal(|s| s.0)),
            format!("{:.2}", marginal(|s| s.1)),
        ]);
        if env_or("HTTP_VERBOSE", 0) != 0 {
            println!("  {server}: {count} connections opened in {opened:?}");
        }
        drop(child);
        drop(conns);
    }
    print!("{}", table.render());
    println!(
        "KiB/conn = (RSS after - before) / conns; marginal = the same between connection \
         {first} and {count} (past may's pool of 1000 pre-made coroutines); of which stacks = \
         resident coroutine stack pages (anonymous 8 KiB-1 MiB mappings); sampled {settle:?} \
         after the last connection opened (connections idle for pywsgi::IDLE_RELEASE give \
         their buffers back). Goal: <= 9 KiB (hyper 10.8, gevent 17.8)."
    );
}

fn check_alive(conn: &mut TcpStream, server: &str) {
    conn.write_all(REQUEST)
        .unwrap_or_else(|err| panic!("http bench: {server}: idle connection: {err}"));
    let mut buf = [0u8; 1024];
    let mut have = 0;
    while hello_parser(&buf[..have]).0 == 0 {
        match conn.read(&mut buf[have..]) {
            Ok(0) | Err(_) => panic!("http bench: {server}: idle connection was dropped"),
            Ok(k) => have += k,
        }
    }
}

/// `__bench-load <port> <conns> <depth> <requests>`: load a server started by hand.
fn profile_load(args: &[String]) {
    let num = |i: usize, what: &str| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            panic!("usage: __bench-load <port> <conns> <depth> <requests> ({what})")
        })
    };
    let port = u16::try_from(num(0, "port")).expect("port");
    let (conns, depth, total) = (num(1, "conns"), num(2, "depth"), num(3, "requests"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut load = Load::new(addr, conns as usize, REQUEST, hello_parser);
    load.depth = depth as usize;
    load.spin = false;
    let t0 = Instant::now();
    let done = load.run_total(total).expect("load");
    println!("{done} responses checked in {:?}", t0.elapsed());
}
