//! Test harness for the pywsgi engine: a tiny server over real loopback sockets (port 0), std
//! clients writing raw bytes and reading exact wire bytes. Every wait is bounded.
//!
//! Designed to move to the real crate's `tests/` with `serve()` rebuilt on `WsgiServer`.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::missing_panics_doc)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::{AccessLog, Application, WsgiConfig, WsgiServer};

/// Client-side timeout for every read and write.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

// The same file as `support::watchdog` (a binary may include both helpers: two watchdogs, the
// same limit).
#[allow(clippy::duplicate_mod)]
#[path = "../support/watchdog.rs"]
mod watchdog;
// The same bounded joins as `support::join` (loaded twice where a binary has both helpers).
#[allow(clippy::duplicate_mod)]
#[path = "../support/join.rs"]
mod join;
#[allow(unused_imports)] // not every test binary joins
pub use join::{join_coroutine_within, join_within};

static INIT: Once = Once::new();

/// Configures may once per test binary (and arms the binary's watchdog: a hang fails).
pub fn init() {
    watchdog::arm();
    INIT.call_once(|| {
        may::config().set_workers(2);
    });
}

/// Shared state whose changes can be waited for (no sleeping).
#[derive(Default)]
pub struct Watched<T> {
    value: Mutex<T>,
    changed: Condvar,
}

impl<T> Watched<T> {
    pub fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.value.lock().unwrap());
        self.changed.notify_all();
    }

    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.value.lock().unwrap())
    }

    /// Waits up to 5 s for `cond`.
    pub fn wait_for(&self, cond: impl Fn(&T) -> bool) {
        let guard = self.value.lock().unwrap();
        let (_guard, res) = self
            .changed
            .wait_timeout_while(guard, Duration::from_secs(5), |value| !cond(value))
            .unwrap();
        assert!(!res.timed_out(), "condition not reached within 5 s");
    }
}

/// A shared byte sink (access log capture).
#[derive(Clone, Default)]
pub struct Sink(pub Arc<Watched<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(|v| v.extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink {
    pub fn text(&self) -> String {
        self.0.read(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// A slog drain capturing `LEVEL message key=value...` lines.
#[derive(Clone, Default)]
pub struct Records(pub Arc<Watched<Vec<String>>>);

struct Kv<'a>(&'a mut String);

impl slog::Serializer for Kv<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl slog::Drain for Records {
    type Ok = ();
    type Err = slog::Never;
    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        let mut line = format!("{} {}", record.level().as_str(), record.msg());
        let _ = slog::KV::serialize(&record.kv(), record, &mut Kv(&mut line));
        let _ = slog::KV::serialize(values, record, &mut Kv(&mut line));
        self.0.update(|v| v.push(line));
        Ok(())
    }
}

impl Records {
    pub fn lines(&self) -> Vec<String> {
        self.0.read(Vec::clone)
    }
    pub fn errors(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with("ERROR"))
            .collect()
    }
}

/// A running test server (a real `WsgiServer` on 127.0.0.1:0); stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub access: Sink,
    pub records: Records,
    pub server: WsgiServer,
}

/// A config for tests: access log and error log captured.
pub fn test_config() -> (WsgiConfig, Sink, Records) {
    let access = Sink::default();
    let records = Records::default();
    let logger = slog::Logger::root(records.clone(), slog::o!());
    let config = WsgiConfig::new()
        .access_log(AccessLog::writer(access.clone()))
        .error_log(logger)
        .server_name("localhost");
    (config, access, records)
}

/// Serves `app` with the test config.
pub fn serve<A: Application>(app: A) -> TestServer {
    serve_with(|config| config, app)
}

/// Serves `app` with the test config adjusted by `tweak`.
pub fn serve_with<A: Application>(
    tweak: impl FnOnce(WsgiConfig) -> WsgiConfig,
    app: A,
) -> TestServer {
    init();
    let (config, access, records) = test_config();
    let server = WsgiServer::builder("127.0.0.1:0", app)
        .config(tweak(config))
        .backlog(1024) // bursts of 200 connects must not hit SYN retransmits
        .build()
        .expect("build");
    server.start().expect("start");
    let addr = server
        .address()
        .and_then(|addr| addr.as_inet())
        .expect("bound");
    TestServer {
        addr,
        access,
        records,
        server,
    }
}

impl TestServer {
    pub fn connect(&self) -> TcpStream {
        connect_to(self.addr)
    }

    /// Sends `request` and reads everything until the server closes.
    pub fn raw(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        read_to_close(&mut stream)
    }

    /// Like [`TestServer::raw`], with the date normalised, as text.
    pub fn raw_text(&self, request: &[u8]) -> String {
        normalize(&self.raw(request))
    }

    /// A keep-alive client.
    pub fn client(&self) -> Client {
        Client::new(self.connect())
    }

    /// Waits (bounded) until the access log has `n` lines, and returns them.
    pub fn access_lines(&self, n: usize) -> Vec<String> {
        self.access
            .0
            .wait_for(|v| v.iter().filter(|&&b| b == b'\n').count() >= n);
        self.access.text().lines().map(str::to_owned).collect()
    }

    /// Waits (bounded) until an error-log line contains `needle`, and returns it.
    pub fn record_containing(&self, needle: &str) -> String {
        self.records
            .0
            .wait_for(|v| v.iter().any(|l| l.contains(needle)));
        self.records
            .lines()
            .into_iter()
            .find(|l| l.contains(needle))
            .unwrap()
    }
}

/// A connection to `addr` with the client timeouts and no Nagle delay.
pub fn connect_to(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads until EOF (or a reset after data). Panics on a client timeout, or when the whole
/// read takes longer than `CLIENT_TIMEOUT`.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "no EOF within {CLIENT_TIMEOUT:?} ({} bytes read)",
            out.len()
        );
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return out,
            Err(err) => panic!(
                "read failed after {} bytes: {err}: {:?}",
                out.len(),
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

/// Replaces the value of every `Date:` header with `X`.
pub fn normalize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(pos) = rest.find("\r\nDate: ") {
        out.push_str(&rest[..pos + 8]);
        out.push('X');
        let after = &rest[pos + 8..];
        let end = after.find("\r\n").unwrap_or(after.len());
        assert_eq!(end, 29, "IMF-fixdate is 29 bytes: {:?}", &after[..end]);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The chunks, when the body was chunked.
    pub chunks: Option<Vec<Vec<u8>>>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive client connection.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Client {
    /// A keep-alive client over `stream`.
    pub fn new(stream: TcpStream) -> Client {
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads one response (`head`: it answers a HEAD request). Err(UnexpectedEof) if the server
    /// closed before a status line.
    pub fn read(&mut self, head: bool) -> io::Result<Resp> {
        read_response(&mut self.reader, head)
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        self.read(false).expect("response")
    }

    /// Asserts the server closed the connection (EOF, or a reset) with nothing more to read.
    /// (One read, bounded by the client timeout: any byte fails the test at once.)
    pub fn assert_closed(&mut self) {
        let mut buf = [0u8; 1024];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}"),
        }
    }

    pub fn shutdown_write(&self) {
        self.writer.shutdown(Shutdown::Write).unwrap();
    }
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Parses one HTTP/1.1 response from `reader`.
pub fn read_response(reader: &mut impl BufRead, head: bool) -> io::Result<Resp> {
    let status_line = read_line(reader)?;
    if status_line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status_line = status_line
        .strip_suffix("\r\n")
        .expect("status line ends in CRLF");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap().to_owned();
    let status: u16 = parts.next().unwrap().parse().unwrap();
    let reason = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        let line = line.strip_suffix("\r\n").expect("header line ends in CRLF");
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(": ").expect("name: value");
        assert!(
            !headers
                .iter()
                .any(|(n, _): &(String, String)| n.eq_ignore_ascii_case(name)),
            "header {name} sent twice"
        );
        headers.push((name.to_owned(), value.to_owned()));
    }
    let mut resp = Resp {
        status,
        reason,
        version,
        headers,
        body: Vec::new(),
        chunks: None,
    };
    if head || status < 200 || status == 204 || status == 304 {
        return Ok(resp);
    }
    if resp.header("Transfer-Encoding") == Some("chunked") {
        assert!(resp.header("Content-Length").is_none(), "both CL and TE");
        let mut chunks = Vec::new();
        loop {
            let size_line = read_line(reader)?;
            let size = usize::from_str_radix(size_line.trim_end(), 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {size_line:?}"),
                )
            })?;
            if size == 0 {
                let mut crlf = [0u8; 2];
                reader.read_exact(&mut crlf)?;
                assert_eq!(&crlf, b"\r\n");
                break;
            }
            let mut data = vec![0u8; size];
            reader.read_exact(&mut data)?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
            assert_eq!(&crlf, b"\r\n");
            chunks.push(data);
        }
        resp.body = chunks.concat();
        resp.chunks = Some(chunks);
    } else if let Some(len) = resp.header("Content-Length") {
        let mut data = vec![0u8; len.parse().unwrap()];
        reader.read_exact(&mut data)?;
        resp.body = data;
    } else {
        reader.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// Chunk-encodes `chunks` (an empty last one ends the body), with `ext` after each size.
pub fn chunk_encode(chunks: &[&str], ext: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}{ext}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    out
}

/// A Unix socket path in a temporary directory of its own, removed on drop.
pub struct UnixPath {
    dir: std::path::PathBuf,
    pub path: std::path::PathBuf,
}

impl UnixPath {
    pub fn new(tag: &str) -> UnixPath {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        UnixPath { dir, path }
    }
}

impl Drop for UnixPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A keep-alive client over a Unix socket (timeouts: CLIENT_TIMEOUT).
pub struct UnixClient {
    pub reader: BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
}

impl UnixClient {
    pub fn connect(path: &std::path::Path) -> UnixClient {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        UnixClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// `GET path` and the response body, as text.
    pub fn get(&mut self, path: &str) -> String {
        self.writer
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        read_response(&mut self.reader, false)
            .expect("response")
            .body_text()
    }
}
