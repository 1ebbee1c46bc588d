//! HTTP servers, requests and response checks for the end-to-end HTTP benchmark.
//!
//! Roles (each started in a child process with one may worker by [`super::serve_if_child`]):
//! `WsgiServer` serving gevent's `wsgiserver` hello world with the access log off, the same
//! with the access log on (to a sink: the line is formatted and written, nothing reaches a
//! file), the same over TLS (certificate files named by the environment, see [`TLS_ENV`]), and
//! a may_minihttp server answering with the same status, content type and body.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AccessLog, AppResult, Environ, StartResponse, WsgiServer};

use super::{Role, Running};

/// Role names.
pub(crate) const WSGI: &str = "WsgiServer";
pub(crate) const WSGI_LOG: &str = "WsgiServer+access-log";
pub(crate) const WSGI_TLS: &str = "WsgiServer+TLS";
pub(crate) const MINIHTTP: &str = "may_minihttp";
/// `may_gevent::wsgi::WsgiServer` (the same application on may_minihttp's engine).
pub(crate) const WSGI_MINIHTTP: &str = "wsgi::WsgiServer";

/// Every HTTP server role, for [`super::serve_if_child`].
pub(crate) const ROLES: &[Role] = &[
    (WSGI, wsgi_plain),
    (WSGI_LOG, wsgi_logged),
    (WSGI_TLS, wsgi_tls),
    (MINIHTTP, minihttp),
    #[cfg(feature = "minihttp")]
    (WSGI_MINIHTTP, wsgi_minihttp),
];

/// The environment variables that give the TLS role its certificate and key files.
pub(crate) const TLS_ENV: (&str, &str) = ("HTTP_BENCH_CERTFILE", "HTTP_BENCH_KEYFILE");

/// The body of every measured response.
pub(crate) const BODY: &[u8] = b"<b>hello world</b>";

/// The request every client sends (what `wrk` sends).
pub(crate) const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// The `wsgiserver` example's application (gevent's examples/wsgiserver.py), as it is there:
/// static bodies, like may_minihttp's `rsp.body("...")`.
fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

fn start_wsgi(log: AccessLog, tls: Option<(PathBuf, PathBuf)>) -> Running {
    #[allow(unused_mut)]
    let mut builder = WsgiServer::builder("127.0.0.1:0", application).access_log(log);
    if let Some((certfile, keyfile)) = tls {
        #[cfg(feature = "tls")]
        {
            builder = builder.tls_files(certfile, keyfile);
        }
        #[cfg(not(feature = "tls"))]
        panic!("TLS needs the `tls` feature ({certfile:?}, {keyfile:?})");
    }
    let server = builder.build().expect("build WsgiServer");
    server.start().expect("start WsgiServer");
    let port = server.server_port().expect("bound port");
    Running {
        port,
        keep: Box::new(server),
    }
}

fn wsgi_plain() -> Running {
    start_wsgi(AccessLog::Off, None)
}

fn wsgi_logged() -> Running {
    start_wsgi(AccessLog::writer(io::sink()), None)
}

fn wsgi_tls() -> Running {
    let file = |var: &str| -> PathBuf {
        std::env::var_os(var)
            .unwrap_or_else(|| panic!("{var} not set"))
            .into()
    };
    start_wsgi(AccessLog::Off, Some((file(TLS_ENV.0), file(TLS_ENV.1))))
}

/// The same application on `may_gevent::wsgi::WsgiServer`, access log off.
#[cfg(feature = "minihttp")]
fn wsgi_minihttp() -> Running {
    let server = may_gevent::wsgi::WsgiServer::builder("127.0.0.1:0", application)
        .access_log(None)
        .build()
        .expect("build wsgi::WsgiServer");
    server.start().expect("start wsgi::WsgiServer");
    let port = server.server_port().expect("bound port");
    Running {
        port,
        keep: Box::new(server),
    }
}

/// may_minihttp's hello world, answering like [`application`].
#[derive(Clone)]
struct Hello;

impl may_minihttp::HttpService for Hello {
    fn call(
        &mut self,
        req: may_minihttp::Request<'_, '_, '_>,
        rsp: &mut may_minihttp::Response<'_>,
    ) -> io::Result<()> {
        rsp.header("Content-Type: text/html");
        if req.path() == "/" {
            rsp.body("<b>hello world</b>");
        } else {
            rsp.status_code(404, "Not Found");
            rsp.body("<h1>Not Found</h1>");
        }
        Ok(())
    }
}

fn minihttp() -> Running {
    // may_minihttp cannot tell the port it bound: take a free one, release it, bind it again.
    let mut last = None;
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        match may_minihttp::HttpServer(Hello).start(("127.0.0.1", port)) {
            Ok(handle) => {
                return Running {
                    port,
                    keep: Box::new(handle),
                }
            }
            Err(err) => last = Some(err),
        }
    }
    panic!("may_minihttp: cannot bind: {last:?}");
}

// ---------------------------------------------------------------------------------------
// Responses

/// The response parser for [`super::Load`]: counts the complete, Content-Length-framed
/// responses at the start of `buf` and **panics** on any response that is not
/// `200`, `text/html`, with exactly [`BODY`] (a benchmark of error responses is worthless).
pub(crate) fn hello_parser(buf: &[u8]) -> (usize, usize) {
    let (mut count, mut used) = (0, 0);
    while let Some(len) = one_response(&buf[used..]) {
        count += 1;
        used += len;
    }
    (count, used)
}

/// The length of the complete response at the start of `buf`, `None` if it is incomplete.
fn one_response(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut rsp = httparse::Response::new(&mut headers);
    let head = match rsp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(err) => bad(buf, &format!("unparsable response ({err})")),
    };
    if rsp.code != Some(200) || rsp.version != Some(1) {
        bad(buf, "not an HTTP/1.1 200");
    }
    let mut length = None;
    let mut html = false;
    for h in rsp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let digits = std::str::from_utf8(h.value).ok();
            let value = digits
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<usize>().ok());
            if length.is_some() || value.is_none() {
                bad(buf, "bad or repeated Content-Length");
            }
            length = value;
        } else if name.eq_ignore_ascii_case("content-type") {
            html = h.value == b"text/html";
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || (name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close"))
        {
            bad(buf, "not a keep-alive Content-Length response");
        }
    }
    let Some(length) = length else {
        bad(buf, "no Content-Length")
    };
    if !html {
        bad(buf, "Content-Type is not text/html");
    }
    let end = head + length;
    if buf.len() < end {
        return None;
    }
    if &buf[head..end] != BODY {
        bad(buf, "wrong body");
    }
    Some(end)
}

#[cold]
fn bad(buf: &[u8], what: &str) -> ! {
    let shown = String::from_utf8_lossy(&buf[..buf.len().min(400)]);
    panic!("http bench: wrong response: {what}: {shown:?}");
}

/// Checks [`hello_parser`] against a live server: `n` pipelined requests on one connection
/// must give exactly `n` responses, and every prefix of the bytes received must count
/// exactly the responses it completely holds (response starts found independently, by their
/// status line). Returns the length of one response on the wire.
pub(crate) fn verify_server(stream: &mut dyn ReadWrite, n: usize) -> Result<usize, String> {
    let mut batch = Vec::new();
    for _ in 0..n {
        batch.extend_from_slice(REQUEST);
    }
    stream.write_all(&batch).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while hello_parser(&got).0 < n {
        if Instant::now() > deadline {
            return Err(format!("{} of {n} responses in 5 s", hello_parser(&got).0));
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err("connection closed".into()),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let (count, used) = hello_parser(&got);
    if count != n || used != got.len() {
        return Err(format!(
            "parser: {count} responses in {used} bytes, expected {n} in {}",
            got.len()
        ));
    }
    // Independent framing: responses start at their status lines (the body has none).
    let mut starts: Vec<usize> = got
        .windows(9)
        .enumerate()
        .filter(|(_, w)| *w == b"HTTP/1.1 ")
        .map(|(i, _)| i)
        .collect();
    if starts.len() != n || starts[0] != 0 {
        return Err(format!("{} status lines for {n} responses", starts.len()));
    }
    starts.push(got.len());
    for len in 0..=got.len() {
        let complete = starts[1..].iter().filter(|&&end| end <= len).count();
        let expect = (complete, starts[complete]);
        if hello_parser(&got[..len]) != expect {
            return Err(format!(
                "prefix of {len} bytes: parser says {:?}, expected {expect:?}",
                hello_parser(&got[..len])
            ));
        }
    }
    Ok(starts[1])
}

/// `Read + Write` for [`verify_server`] (plain or TLS).
pub(crate) trait ReadWrite: Read + Write {}

impl<T: Read + Write> ReadWrite for T {}

/// Open `n` keep-alive connections to `addr`, each having received one complete response to
/// [`REQUEST`], then left idle.
pub(crate) fn open_idle_http(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    let mut buf = [0u8; 1024];
    for _ in 0..n {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(REQUEST)?;
        let mut have = 0;
        while hello_parser(&buf[..have]).0 == 0 {
            let k = s.read(&mut buf[have..])?;
            if k == 0 {
                return Err(io::Error::other("closed before the response"));
            }
            have += k;
        }
        conns.push(s);
    }
    Ok(conns)
}

// ---------------------------------------------------------------------------------------
// TLS

/// A temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> io::Result<TempDir> {
        let path = std::env::temp_dir().join(format!("may_gevent-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost` (rcgen), written as `cert.pem` and `key.pem`.
pub(crate) struct TestCert {
    pub(crate) dir: TempDir,
    pub(crate) cert_pem: String,
    pub(crate) certfile: PathBuf,
    pub(crate) keyfile: PathBuf,
}

impl TestCert {
    pub(crate) fn generate() -> io::Result<TestCert> {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".into()])
                .map_err(io::Error::other)?;
        let dir = TempDir::new("http-bench")?;
        let cert_pem = cert.pem();
        let certfile = dir.path().join("cert.pem");
        let keyfile = dir.path().join("key.pem");
        std::fs::write(&certfile, &cert_pem)?;
        std::fs::write(&keyfile, signing_key.serialize_pem())?;
        Ok(TestCert {
            dir,
            cert_pem,
            certfile,
            keyfile,
        })
    }

    /// The environment for the [`WSGI_TLS`] role.
    pub(crate) fn env(&self) -> [(&'static str, String); 2] {
        [
            (TLS_ENV.0, self.certfile.display().to_string()),
            (TLS_ENV.1, self.keyfile.display().to_string()),
        ]
    }

    #[cfg(feature = "tls")]
    /// One client connector trusting only this certificate (build it once and share it:
    /// OpenSSL 3 stalls when every connection builds its own).
    pub(crate) fn connector(&self) -> io::Result<native_tls::TlsConnector> {
        let root = native_tls::Certificate::from_pem(self.cert_pem.as_bytes())
            .map_err(io::Error::other)?;
        native_tls::TlsConnector::builder()
            .add_root_certificate(root)
            .disable_built_in_roots(true)
            .build()
            .map_err(io::Error::other)
    }
}

#[cfg(feature = "tls")]
/// A [`super::Wrap`] doing a TLS handshake as `localhost` with a shared connector.
pub(crate) fn tls_wrap(
    connector: std::sync::Arc<native_tls::TlsConnector>,
) -> std::sync::Arc<super::Wrap> {
    std::sync::Arc::new(move |tcp: TcpStream| {
        let tls = connector
            .connect("localhost", tcp)
            .map_err(|err| io::Error::other(err.to_string()))?;
        Ok(Box::new(tls) as Box<dyn super::Duplex>)
    })
}

// ---------------------------------------------------------------------------------------
// strace

/// Syscall counts of process `pid` (every thread) while `strace -c -f` is attached for
/// `window`, and the responses `count` (the load's running total) went up by in that window.
/// `Err` when strace is missing or cannot attach.
pub(crate) fn strace_counts(
    pid: u32,
    window: Duration,
    count: &dyn Fn() -> u64,
) -> io::Result<(Vec<(String, u64)>, u64)> {
    use std::io::BufRead as _;
    let out = std::env::temp_dir().join(format!("may_gevent-strace-{}-{pid}", std::process::id()));
    let mut child = std::process::Command::new("strace")
        .args(["-c", "-f", "-p", &pid.to_string(), "-o"])
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // "strace: Process <pid> attached with <n> threads": counting has started.
    let mut stderr = io::BufReader::new(child.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.contains("attached") {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            let _ = child.wait();
            return Err(io::Error::other("strace did not attach"));
        }
    }
    let n0 = count();
    std::thread::sleep(window);
    let n1 = count();
    // strace detaches and writes its summary on SIGINT.
    #[allow(unsafe_code)]
    // SAFETY: kill only sends a signal to the strace process we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let _ = io::copy(&mut stderr, &mut io::sink());
    child.wait()?;
    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    let mut counts = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if fields.len() < 5 || fields[0].starts_with('%') || fields[0].starts_with('-') {
            continue;
        }
        let name = fields[fields.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(calls) = fields[3].parse::<u64>() {
            counts.push((name.to_string(), calls));
        }
    }
    if counts.is_empty() {
        return Err(io::Error::other(format!("strace: no summary: {text:?}")));
    }
    Ok((counts, n1 - n0))
}

/// The syscalls [`perf_counts`] counts (`raw_syscalls:sys_enter` is every syscall).
const PERF_EVENTS: &[&str] = &[
    "raw_syscalls:sys_enter",
    "syscalls:sys_enter_read",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_enter_readv",
    "syscalls:sys_enter_recvmsg",
    "syscalls:sys_enter_write",
    "syscalls:sys_enter_sendto",
    "syscalls:sys_enter_writev",
    "syscalls:sys_enter_sendmsg",
    "syscalls:sys_enter_epoll_wait",
    "syscalls:sys_enter_epoll_pwait",
    "syscalls:sys_enter_futex",
];

/// Syscall counts of process `pid` (every thread) from the kernel's tracepoints
/// (`perf stat -I`: in-kernel counters, so the server runs at full speed), over `intervals`
/// intervals of `interval`, and the responses `count` went up by in exactly those intervals
/// (sampled as each interval's line arrives). Names are syscall names, plus `total`.
pub(crate) fn perf_counts(
    pid: u32,
    interval: Duration,
    intervals: usize,
    count: &dyn Fn() -> u64,
) -> io::Result<(Vec<(String, u64)>, u64)> {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new("perf")
        .args(["stat", "-x", ",", "-I"])
        .arg(interval.as_millis().max(10).to_string())
        .arg("-e")
        .arg(PERF_EVENTS.join(","))
        .arg("-p")
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stderr = io::BufReader::new(child.stderr.take().expect("piped stderr"));
    // Interval k's lines are printed as it ends: the response count read when the first of
    // them arrives is the count at its end.
    let (mut ts, mut seen, mut n_start, mut n_end) = (String::new(), 0usize, 0u64, 0u64);
    let mut totals = std::collections::BTreeMap::<String, u64>::new();
    let mut line = String::new();
    let result = loop {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            break Err(io::Error::other("perf stat ended early"));
        }
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() < 4 || fields[0].parse::<f64>().is_err() {
            continue; // not an interval line
        }
        if fields[0] != ts {
            // interval `seen` ends now
            let now = count();
            ts = fields[0].to_string();
            seen += 1;
            if seen == 1 {
                n_start = now; // interval 1 starts at attach: not counted
            }
            if seen == intervals + 2 {
                break Ok(()); // intervals 2..=intervals + 1 are complete
            }
            n_end = now;
        }
        if seen >= 2 {
            let name = fields[3]
                .strip_prefix("syscalls:sys_enter_")
                .unwrap_or("total");
            *totals.entry(name.to_string()).or_default() += fields[1].parse::<u64>().unwrap_or(0);
        }
    };
    #[allow(unsafe_code)]
    // SAFETY: kill only sends a signal to the perf process we started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let _ = io::copy(&mut stderr, &mut io::sink());
    let _ = child.wait();
    result?;
    Ok((totals.into_iter().collect(), n_end - n_start))
}
