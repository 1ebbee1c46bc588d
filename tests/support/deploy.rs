//! Helpers for the deployment tests (socket activation, restarts, SO_REUSEPORT, load
//! balancers): child processes given listening sockets the way systemd gives them
//! (`LISTEN_FDS`, descriptors from 3, `LISTEN_PID` set to the child's own pid), a
//! `NOTIFY_SOCKET` the test reads, an HTTP/1.1 keep-alive client that retries the way real
//! clients do, and a load of such clients. Every wait is bounded.
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Upper bound for one wait in these tests (a loaded CI machine, debug build).
pub const WAIT: Duration = Duration::from_secs(20);

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "may_gevent-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A listening TCP socket on `addr` (port 0: any), as systemd's socket unit makes it
/// (SO_REUSEADDR, a backlog of 1024).
pub fn listening_socket(addr: SocketAddr) -> Socket {
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(1024).expect("listen");
    socket
}

pub fn local_addr(socket: &Socket) -> SocketAddr {
    socket.local_addr().unwrap().as_socket().unwrap()
}

/// `program args...` run the way systemd runs a socket-activated service, through the
/// crate's own [`may_gevent::systemd::handover_command`]: `fds` become 3, 4, ... with
/// `LISTEN_FDS`, `LISTEN_FDNAMES` and `LISTEN_PID` (the child's own pid) set.
pub fn activated(program: &Path, args: &[&str], fds: &[RawFd], names: &[&str]) -> Command {
    let listeners: Vec<(RawFd, &str)> = fds
        .iter()
        .enumerate()
        .map(|(i, fd)| (*fd, names.get(i).copied().unwrap_or("")))
        .collect();
    let mut command = may_gevent::systemd::handover_command(program, &listeners);
    command.args(args);
    if names.is_empty() {
        command.env_remove("LISTEN_FDNAMES");
    }
    command
}

/// A `NOTIFY_SOCKET` for a child: the test binds it and reads what the child sends.
pub struct NotifySocket {
    socket: UnixDatagram,
    /// The value for `NOTIFY_SOCKET`.
    pub address: String,
    seen: Mutex<Vec<String>>,
    _dir: Option<TempDir>,
}

impl NotifySocket {
    /// A socket at a path in a temp dir.
    pub fn path() -> NotifySocket {
        let dir = TempDir::new("notify");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket::with(socket, path.to_str().unwrap().to_owned(), Some(dir))
    }

    /// A socket with an abstract name (`@...`), as systemd uses for some services.
    pub fn abstract_name() -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "may_gevent-notify-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        NotifySocket::with(socket, format!("@{name}"), None)
    }

    fn with(socket: UnixDatagram, address: String, dir: Option<TempDir>) -> NotifySocket {
        NotifySocket {
            socket,
            address,
            seen: Mutex::new(Vec::new()),
            _dir: dir,
        }
    }

    /// The first message (received before or within `within`) containing `what`; fails the
    /// test on the timeout.
    pub fn wait_for(&self, within: Duration, what: &str) -> String {
        let deadline = Instant::now() + within;
        let mut seen = self.seen.lock().unwrap();
        if let Some(pos) = seen.iter().position(|m| m.contains(what)) {
            return seen.remove(pos);
        }
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {what:?} on NOTIFY_SOCKET within {within:?}; got {seen:?}"
            );
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if message.contains(what) {
                        return message;
                    }
                    seen.push(message);
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(err) => panic!("reading the notify socket: {err}"),
            }
        }
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a request failed.
#[derive(Debug)]
enum Failure {
    /// Nothing of the response arrived (EOF or reset), on a connection that had served a
    /// response before: the server closed an idle keep-alive connection as the request went
    /// out. Every HTTP client retries this on a new connection.
    Retryable(String),
    Fatal(String),
}

/// An HTTP/1.1 keep-alive client from an optional source address.
pub struct Client {
    target: SocketAddr,
    source: Option<IpAddr>,
    conn: Option<(TcpStream, bool)>,
    /// Requests re-sent on a new connection (the keep-alive race above).
    pub retries: usize,
}

impl Client {
    pub fn new(target: SocketAddr, source: Option<IpAddr>) -> Client {
        Client {
            target,
            source,
            conn: None,
            retries: 0,
        }
    }

    /// `GET path` with `headers` (each `Name: value\r\n`). Retries once per attempt when
    /// the failure is the keep-alive race, at most 3 times; any other failure (connection
    /// refused, reset or truncated mid-response, bad framing, timeout) is an `Err`.
    pub fn get(&mut self, path: &str, headers: &str) -> Result<Response, String> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
        for _ in 0..3 {
            match self.attempt(request.as_bytes()) {
                Ok(response) => return Ok(response),
                Err(Failure::Retryable(why)) => {
                    self.retries += 1;
                    self.conn = None;
                    let _ = why;
                }
                Err(Failure::Fatal(why)) => {
                    self.conn = None;
                    return Err(why);
                }
            }
        }
        Err(format!("{path}: three keep-alive races in a row"))
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let socket = Socket::new(
            Domain::for_address(self.target),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        if let Some(source) = self.source {
            socket.bind(&SocketAddr::new(source, 0).into())?;
        }
        socket.connect_timeout(&self.target.into(), WAIT)?;
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(WAIT))?;
        stream.set_write_timeout(Some(WAIT))?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn attempt(&mut self, request: &[u8]) -> Result<Response, Failure> {
        if self.conn.is_none() {
            let stream = self.connect().map_err(|err| {
                if is_reset(&err) {
                    // the handshake was done, then the connection reset before any byte (the
                    // closing SO_REUSEPORT socket's backlog): the same class as a reset read
                    Failure::Fatal(format!("on a new connection: connect: {err}"))
                } else {
                    Failure::Fatal(format!("connect to {}: {err}", self.target))
                }
            })?;
            self.conn = Some((stream, false));
        }
        let (stream, reused) = self.conn.as_mut().unwrap();
        let reused = *reused;
        let early = |what: String| {
            if reused {
                Failure::Retryable(what)
            } else {
                Failure::Fatal(format!("on a new connection: {what}"))
            }
        };
        if let Err(err) = stream.write_all(request) {
            return Err(early(format!("write: {err}")));
        }
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos + 4;
            }
            match stream.read(&mut chunk) {
                Ok(0) if buf.is_empty() => return Err(early("EOF before the response".into())),
                Ok(0) => return Err(Failure::Fatal(format!("EOF inside the head: {buf:?}"))),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(err) if buf.is_empty() && is_reset(&err) => {
                    return Err(early(format!("read: {err}")))
                }
                Err(err) => return Err(Failure::Fatal(format!("read (head): {err}"))),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Fatal(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut response = Response {
            status,
            headers,
            body: buf[head_end..].to_vec(),
        };
        let length: usize = response
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Failure::Fatal(format!("no Content-Length in {head:?}")))?;
        while response.body.len() < length {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Failure::Fatal(format!(
                        "truncated body: {} of {length} bytes",
                        response.body.len()
                    )))
                }
                Ok(n) => response.body.extend_from_slice(&chunk[..n]),
                Err(err) => return Err(Failure::Fatal(format!("read (body): {err}"))),
            }
        }
        if response.body.len() > length {
            return Err(Failure::Fatal("more bytes than Content-Length".into()));
        }
        let close = response
            .header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if close {
            self.conn = None;
        } else if let Some((_, reused)) = self.conn.as_mut() {
            *reused = true;
        }
        Ok(response)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// What a load run saw.
#[derive(Default)]
pub struct Tally {
    pub ok: usize,
    pub failures: Vec<String>,
    pub retries: usize,
    /// How many responses each `tag` (e.g. the backend pid) gave, in order of first sight.
    pub by_tag: Vec<(String, usize)>,
}

impl std::fmt::Debug for Tally {
    // A failing server can make thousands of identical failures: show the first few.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.failures[..self.failures.len().min(8)];
        f.debug_struct("Tally")
            .field("ok", &self.ok)
            .field("failed", &self.failures.len())
            .field("first_failures", &shown)
            .field("retries", &self.retries)
            .field("by_tag", &self.by_tag)
            .finish()
    }
}

impl Tally {
    pub fn count(&self, tag: &str) -> usize {
        self.by_tag
            .iter()
            .find(|(t, _)| t == tag)
            .map_or(0, |(_, n)| *n)
    }
}

/// `threads` clients sending requests back to back until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    state: Arc<(Mutex<Tally>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

/// A check of one response: `Ok(tag)` or `Err(why)` (counted as a failure).
pub type Check = Arc<dyn Fn(&Response) -> Result<String, String> + Send + Sync>;

impl Load {
    /// Start `threads` clients; each sends `GET path` with `headers` on its own keep-alive
    /// connection (`fresh`: a new connection for every request instead).
    pub fn start(
        threads: usize,
        target: SocketAddr,
        source: Option<IpAddr>,
        path: &str,
        headers: &str,
        fresh: bool,
        check: Check,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new((Mutex::new(Tally::default()), Condvar::new()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, state, check) = (stop.clone(), state.clone(), check.clone());
                let (path, headers) = (path.to_owned(), headers.to_owned());
                std::thread::spawn(move || {
                    let mut client = Client::new(target, source);
                    while !stop.load(Ordering::SeqCst) {
                        if fresh {
                            client.conn = None;
                        }
                        let result = client.get(&path, &headers).and_then(|r| check(&r));
                        let (lock, cvar) = &*state;
                        let mut tally = lock.lock().unwrap();
                        let failed = result.is_err();
                        match result {
                            Ok(tag) => {
                                tally.ok += 1;
                                match tally.by_tag.iter_mut().find(|(t, _)| *t == tag) {
                                    Some((_, n)) => *n += 1,
                                    None => tally.by_tag.push((tag, 1)),
                                }
                            }
                            Err(why) => tally.failures.push(why),
                        }
                        tally.retries += std::mem::take(&mut client.retries);
                        cvar.notify_all();
                        drop(tally);
                        if failed {
                            // a back-off, not a wait for anything: a dead server is not
                            // hammered with connects
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            state,
            threads,
        }
    }

    /// Waits (up to `within`) until `cond` holds on the tally; fails the test otherwise,
    /// or as soon as a request failed when `no_failures` is set.
    pub fn wait(&self, what: &str, within: Duration, cond: impl Fn(&Tally) -> bool) {
        let deadline = Instant::now() + within;
        let (lock, cvar) = &*self.state;
        let mut tally = lock.lock().unwrap();
        while !cond(&tally) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{what}: not within {within:?}; {tally:?}");
            tally = cvar.wait_timeout(tally, left).unwrap().0;
        }
    }

    /// A snapshot of the tally.
    pub fn snapshot(&self) -> (usize, usize, usize) {
        let tally = self.state.0.lock().unwrap();
        (tally.ok, tally.failures.len(), tally.retries)
    }

    /// Tag counts so far.
    pub fn count(&self, tag: &str) -> usize {
        self.state.0.lock().unwrap().count(tag)
    }

    /// Stop the clients (each finishes its request in flight) and return the tally.
    pub fn stop(mut self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for thread in std::mem::take(&mut self.threads) {
            // Each request is bounded by the client's timeouts (WAIT per read).
            thread.join().expect("a load thread panicked");
        }
        std::mem::take(&mut *self.state.0.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The raw descriptor of a socket, for [`activated`].
pub fn raw(socket: &Socket) -> RawFd {
    socket.as_raw_fd()
}

/// The application the test children serve: `pid=N` (and `X-Pid: N`) for every path;
/// `/sleep?ms=N` waits N ms first (cooperatively), so that requests are in flight when the
/// process is told to stop.
pub fn pid_app(
    env: &mut may_gevent::pywsgi::Environ,
    start_response: &mut may_gevent::pywsgi::StartResponse<'_>,
) -> may_gevent::pywsgi::AppResult {
    if env.path_info() == "/sleep" {
        let ms: u64 = env
            .query_string()
            .strip_prefix("ms=")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(10);
        may_gevent::may::coroutine::sleep(Duration::from_millis(ms.min(5_000)));
    }
    let pid = std::process::id().to_string();
    start_response.call("200 OK", &[("Content-Type", "text/plain"), ("X-Pid", &pid)])?;
    Ok(format!("pid={pid}").into_bytes().into())
}

/// A check for [`pid_app`]'s responses: 200 with a body matching `X-Pid`; the tag is the pid.
pub fn pid_check() -> Check {
    Arc::new(|response: &Response| {
        let pid = response.header("X-Pid").unwrap_or("").to_owned();
        if response.status == 200 && response.text() == format!("pid={pid}") {
            Ok(pid)
        } else {
            Err(format!("unexpected response {response:?}"))
        }
    })
}
