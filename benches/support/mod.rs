//! Shared plumbing for the end-to-end benchmarks (`harness = false` binaries).
//!
//! - Each server under test runs in its **own child process with one may worker**: the bench
//!   binary re-executes itself (`current_exe() __bench-server <role>`), the child starts the
//!   role's server on `127.0.0.1:0`, prints `PORT <n>` on stdout and serves until its stdin
//!   closes ([`serve_if_child`], [`ChildServer`]).
//! - The parent measures the child from `/proc`: CPU time (utime + stime of every thread,
//!   [`ChildServer::cpu_time`]) and resident memory ([`ChildServer::rss_kib`]).
//! - [`Load`] is a request/response load generator: N connections, each keeping `depth`
//!   requests in flight (1 = ping-pong, more = pipelining), generic over the request bytes and
//!   a parser that says how many complete responses a buffer holds. It runs in plain threads
//!   with epoll (no may runtime in the parent), so it cannot steal the child's worker.
//! - [`Table`] prints the results.
#![allow(dead_code)] // each bench binary uses part of this module
#![allow(unsafe_code)] // libc: epoll, setrlimit, sysconf, sched_setaffinity

pub(crate) mod echo;
pub(crate) mod http;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The argument that turns the bench binary into a server child.
const CHILD_FLAG: &str = "__bench-server";

/// A server started by a role in the child: its port, and whatever must stay alive.
pub(crate) struct Running {
    pub(crate) port: u16,
    pub(crate) keep: Box<dyn std::any::Any>,
}

/// A named server role: starts the server in the background (on `127.0.0.1:0`) and returns.
pub(crate) type Role = (&'static str, fn() -> Running);

/// Call first thing in a bench's `main`: when this process is a server child, configure may
/// (one worker, before anything else), run the requested role, print its port, serve until
/// stdin closes, and exit. Otherwise return.
pub(crate) fn serve_if_child(roles: &[Role]) {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(CHILD_FLAG) {
        return;
    }
    may::config().set_workers(1);
    let name = args.next().expect("server role");
    let (_, start) = roles
        .iter()
        .find(|(role, _)| *role == name)
        .unwrap_or_else(|| panic!("unknown server role {name:?}"));
    raise_nofile();
    let running = start();
    println!("PORT {}", running.port);
    io::stdout().flush().expect("stdout");
    // Serve until the parent closes our stdin (or dies).
    let _ = io::copy(&mut io::stdin(), &mut io::sink());
    drop(running.keep);
    std::process::exit(0);
}

/// A server role running in a child process; killed on drop.
pub(crate) struct ChildServer {
    pub(crate) role: &'static str,
    pub(crate) port: u16,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ChildServer {
    /// Start `role` (see [`serve_if_child`]) in a child process and wait for its port.
    pub(crate) fn spawn(role: &'static str) -> io::Result<ChildServer> {
        ChildServer::spawn_env(role, &[])
    }

    /// [`spawn`](Self::spawn) with extra environment variables for the child.
    pub(crate) fn spawn_env(role: &'static str, env: &[(&str, &str)]) -> io::Result<ChildServer> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([CHILD_FLAG, role])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                let _ = child.kill();
                io::Error::other(format!("server {role}: expected `PORT <n>`, got {line:?}"))
            })?;
        Ok(ChildServer {
            role,
            port,
            child,
            stdin,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// CPU time (user + system, all threads) the child has used so far: `/proc/<pid>/stat`
    /// fields 14 and 15, in clock ticks (10 ms resolution).
    pub(crate) fn cpu_time(&self) -> io::Result<Duration> {
        proc_cpu_time(self.pid())
    }

    /// The child's resident memory (`VmRSS` of `/proc/<pid>/status`), in KiB.
    pub(crate) fn rss_kib(&self) -> io::Result<u64> {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// How many threads the child runs (`Threads` of `/proc/<pid>/status`).
    pub(crate) fn threads(&self) -> io::Result<u64> {
        proc_status(self.pid(), "Threads:")
    }

    /// Resident KiB of the child's small anonymous mappings (8 KiB to 1 MiB: may's coroutine
    /// stacks, each its own mapping), from `/proc/<pid>/smaps`.
    pub(crate) fn stack_rss_kib(&self) -> io::Result<u64> {
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid()))?;
        let (mut total, mut counted) = (0, false);
        for line in smaps.lines() {
            let mut fields = line.split_whitespace();
            let first = fields.next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-') {
                if let (Ok(start), Ok(end)) =
                    (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
                {
                    let perms = fields.next().unwrap_or("");
                    let path = fields.nth(3);
                    let size = end - start;
                    counted = path.is_none()
                        && perms.starts_with("rw")
                        && (8 << 10..=1 << 20).contains(&size);
                    continue;
                }
            }
            if counted && first == "Rss:" {
                total += fields.next().and_then(|kib| kib.parse().ok()).unwrap_or(0);
            }
        }
        Ok(total)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        drop(self.stdin.take()); // the child exits on EOF
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of process `pid` (all its threads).
pub(crate) fn proc_cpu_time(pid: u32) -> io::Result<Duration> {
    let (user, system) = proc_cpu_split(pid)?;
    Ok(user + system)
}

/// (utime, stime) of process `pid` (all its threads): `/proc/<pid>/stat` fields 14 and 15.
pub(crate) fn proc_cpu_split(pid: u32) -> io::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field n is fields[n - 3].
    let ticks = |n: usize| -> io::Result<Duration> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| Duration::from_secs_f64(t as f64 / clock_ticks_per_sec()))
            .ok_or_else(|| io::Error::other("bad /proc stat field"))
    };
    Ok((ticks(14)?, ticks(15)?))
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// A `kB` line of `/proc/<pid>/status` (e.g. `"VmRSS:"`).
pub(crate) fn proc_status_kib(pid: u32, key: &str) -> io::Result<u64> {
    proc_status(pid, key)
}

/// The number on a line of `/proc/<pid>/status` (e.g. `"Threads:"`).
pub(crate) fn proc_status(pid: u32, key: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no {key} in /proc/{pid}/status")))
}

/// Raise this process's `RLIMIT_NOFILE` soft limit to the hard limit; returns the new soft
/// limit.
pub(crate) fn raise_nofile() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            limit = raised;
        }
    }
    limit.rlim_cur
}

/// Pin the calling thread to one CPU (best effort).
pub(crate) fn pin_current_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; sched_setaffinity(0) applies
    // to the calling thread and only reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Number of CPUs this process may run on.
pub(crate) fn cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// An environment variable parsed as a number, or `default`.
pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Load generator

/// Counts the complete responses at the start of a buffer: `(responses, bytes they use)`.
/// The bytes are removed from the buffer; a partial response stays for the next read.
/// A parser may panic on a wrong response: the run then fails (see [`Load::run`]).
pub(crate) type Parser = dyn Fn(&[u8]) -> (usize, usize) + Send + Sync;

/// Work done during a measured window instead of sleeping (see [`Load::run_during`]); it gets
/// a function returning the responses counted so far.
type During<'a> = Box<dyn FnOnce(&dyn Fn() -> u64) + 'a>;

/// A blocking byte stream layered on a client connection (e.g. TLS).
pub(crate) trait Duplex: Read + Write + Send {}

impl<T: Read + Write + Send> Duplex for T {}

/// Wraps a freshly connected, still blocking socket (e.g. a TLS handshake). [`Load`] then
/// switches the socket to non-blocking mode, so the wrapper's reads and writes must pass
/// `WouldBlock` through (native-tls and openssl do).
pub(crate) type Wrap = dyn Fn(TcpStream) -> io::Result<Box<dyn Duplex>> + Send + Sync;

/// A request/response load: `connections` connections to `addr`, each keeping `depth`
/// requests in flight; every complete response is counted as one message and answered with
/// a new request. Runs `warmup`, then measures for `measure` (or until `max_messages`).
#[derive(Clone)]
pub(crate) struct Load {
    pub(crate) addr: SocketAddr,
    pub(crate) connections: usize,
    /// The bytes of one request (sent `depth` times back to back to pipeline).
    pub(crate) request: Arc<[u8]>,
    pub(crate) parse: Arc<Parser>,
    /// Requests in flight per connection: 1 = ping-pong, more = pipelining.
    pub(crate) depth: usize,
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    /// Stop the measured window early once this many messages were counted in it.
    pub(crate) max_messages: u64,
    /// Client threads (connections are split between them). On 2 CPUs use 1.
    pub(crate) threads: usize,
    /// Busy-poll (`epoll_wait` with a zero timeout) instead of sleeping in the kernel: the
    /// client's core never idles, so its wake-up latency (large in a VM) does not pace the
    /// run. The client thread then uses a whole core whatever the load.
    pub(crate) spin: bool,
    /// Layer each connection (e.g. TLS) before the load starts; `None`: plain TCP.
    pub(crate) wrap: Option<Arc<Wrap>>,
}

/// What a measured window saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    pub(crate) messages: u64,
    pub(crate) elapsed: Duration,
    /// Server (child) CPU time used during the window.
    pub(crate) server_cpu: Duration,
    /// The user-mode part of `server_cpu` (the rest is kernel time).
    pub(crate) server_user: Duration,
    /// Response latency percentiles over the window (from a request queued by the client to
    /// its response parsed; `None` for loads that do not time requests): p50, p99.
    pub(crate) latency: Option<(Duration, Duration)>,
}

impl Measured {
    pub(crate) fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU per message, in microseconds.
    pub(crate) fn cpu_us_per_msg(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.messages.max(1) as f64
    }

    /// Server user-mode CPU per message, in microseconds.
    pub(crate) fn user_us_per_msg(&self) -> f64 {
        self.server_user.as_secs_f64() * 1e6 / self.messages.max(1) as f64
    }
}

#[derive(Default)]
struct Shared {
    count: AtomicU64,
    stop: AtomicBool,
    connected: AtomicUsize,
    /// The measured window is open: client threads record latencies.
    measuring: AtomicBool,
    /// Latencies (ns, saturated at u32::MAX) recorded in the window, appended by each client
    /// thread when it ends.
    latencies: Mutex<Vec<u32>>,
}

impl Load {
    /// A ping-pong load (depth 1) with the given request and parser.
    pub(crate) fn new(
        addr: SocketAddr,
        connections: usize,
        request: &[u8],
        parse: impl Fn(&[u8]) -> (usize, usize) + Send + Sync + 'static,
    ) -> Load {
        Load {
            addr,
            connections,
            request: request.into(),
            parse: Arc::new(parse),
            depth: 1,
            warmup: Duration::from_millis(500),
            measure: Duration::from_millis(1500),
            max_messages: 50_000_000,
            threads: 1,
            spin: true,
            wrap: None,
        }
    }

    /// Run against `server`: connect, warm up, measure (messages and the server's CPU time).
    /// A client error or a panicking parser ends the run early with an error.
    pub(crate) fn run(&self, server: &ChildServer) -> io::Result<Measured> {
        self.run_inner(server, None)
    }

    /// Like [`run`](Self::run), but the measured window is the time `during` takes (run on
    /// this thread after the warm-up), e.g. to trace the server under load. `during` gets a
    /// function returning the responses counted so far.
    pub(crate) fn run_during<'a>(
        &'a self,
        server: &'a ChildServer,
        during: impl FnOnce(&dyn Fn() -> u64) + 'a,
    ) -> io::Result<Measured> {
        self.run_inner(server, Some(Box::new(during)))
    }

    fn run_inner<'a>(
        &'a self,
        server: &'a ChildServer,
        during: Option<During<'a>>,
    ) -> io::Result<Measured> {
        let shared = Arc::new(Shared::default());
        let workers = self.spawn_clients(&shared);
        let window = Window {
            ready: self.connections,
            warmup: self.warmup,
            measure: self.measure,
            max_messages: self.max_messages,
        };
        window.run(server, &shared, workers, during)
    }
}

impl Load {
    /// Run until `total` responses were counted, from the first request (no warm-up, no
    /// measurement of a server process); returns the responses counted. For profiling a
    /// server started by hand (e.g. under valgrind).
    pub(crate) fn run_total(&self, total: u64) -> io::Result<u64> {
        let shared = Arc::new(Shared::default());
        let workers = self.spawn_clients(&shared);
        while shared.count.load(Ordering::SeqCst) < total && !shared.stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(1));
        }
        let early = shared.count.load(Ordering::SeqCst) < total;
        shared.stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join()
                .map_err(|_| io::Error::other("client thread panicked"))??;
        }
        if early {
            return Err(io::Error::other("load generator stopped early"));
        }
        Ok(shared.count.load(Ordering::SeqCst))
    }

    fn spawn_clients(&self, shared: &Arc<Shared>) -> Vec<thread::JoinHandle<io::Result<()>>> {
        let threads = self.threads.clamp(1, self.connections.max(1));
        let pin = threads == 1 && cpus() >= 2;
        (0..threads)
            .map(|i| {
                let conns =
                    self.connections / threads + usize::from(i < self.connections % threads);
                let (load, shared) = (self.clone(), shared.clone());
                thread::spawn(move || {
                    // Stop the window even if the parser panics on a wrong response.
                    let _stop = StopOnDrop(shared.clone());
                    if pin {
                        // may pins the child's single worker to CPU 0: keep off it.
                        pin_current_thread(cpus() - 1);
                    }
                    client_thread(&load, conns, &shared)
                })
            })
            .collect()
    }
}

/// Sets `stop` when a client thread ends, by return or by panic.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}

/// The timing of a measured run, shared by [`Load`] and [`Churn`].
struct Window {
    /// Wait until `Shared::connected` reaches this before warming up.
    ready: usize,
    warmup: Duration,
    measure: Duration,
    max_messages: u64,
}

impl Window {
    /// Wait for the clients to be ready, warm up, measure messages and server CPU time (for
    /// `measure`, or while `during` runs), then stop and join the client threads.
    fn run<'a>(
        &self,
        server: &ChildServer,
        shared: &Shared,
        workers: Vec<thread::JoinHandle<io::Result<()>>>,
        during: Option<During<'a>>,
    ) -> io::Result<Measured> {
        let finish = |workers: Vec<thread::JoinHandle<io::Result<()>>>| -> io::Result<()> {
            shared.stop.store(true, Ordering::SeqCst);
            for w in workers {
                w.join()
                    .map_err(|_| io::Error::other("client thread panicked"))??;
            }
            Ok(())
        };
        // Wait until every connection is up (or a client thread failed).
        while shared.connected.load(Ordering::SeqCst) < self.ready {
            if shared.stop.load(Ordering::SeqCst) {
                finish(workers)?;
                return Err(io::Error::other("load generator stopped early"));
            }
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(self.warmup);
        shared.measuring.store(true, Ordering::SeqCst);
        let (n0, c0, t0) = (
            shared.count.load(Ordering::SeqCst),
            proc_cpu_split(server.pid())?,
            Instant::now(),
        );
        if let Some(during) = during {
            during(&|| shared.count.load(Ordering::SeqCst));
        } else {
            while t0.elapsed() < self.measure
                && shared.count.load(Ordering::SeqCst) - n0 < self.max_messages
                && !shared.stop.load(Ordering::SeqCst)
            {
                thread::sleep(Duration::from_millis(10));
            }
        }
        let (n1, c1, t1) = (
            shared.count.load(Ordering::SeqCst),
            proc_cpu_split(server.pid())?,
            Instant::now(),
        );
        shared.measuring.store(false, Ordering::SeqCst);
        let stopped_early = shared.stop.load(Ordering::SeqCst);
        finish(workers)?;
        if stopped_early {
            return Err(io::Error::other("load generator stopped early"));
        }
        let latency = {
            let mut all = shared.latencies.lock().unwrap_or_else(|p| p.into_inner());
            all.sort_unstable();
            let at = |q: f64| {
                let i = ((all.len() as f64 * q) as usize).min(all.len() - 1);
                Duration::from_nanos(u64::from(all[i]))
            };
            (!all.is_empty()).then(|| (at(0.50), at(0.99)))
        };
        Ok(Measured {
            messages: n1 - n0,
            elapsed: t1 - t0,
            server_cpu: (c1.0 + c1.1).saturating_sub(c0.0 + c0.1),
            server_user: c1.0.saturating_sub(c0.0),
            latency,
        })
    }
}

/// A connection-churn load: `threads` blocking clients, each in a loop of connect, send one
/// request, read one complete response, close with a reset (`SO_LINGER` 0: no TIME_WAIT, so
/// the ephemeral ports do not run out). One message = one connection. This exercises the
/// server's accept and spawn path, which a ping-pong over open connections never touches.
#[derive(Clone)]
pub(crate) struct Churn {
    pub(crate) addr: SocketAddr,
    pub(crate) threads: usize,
    pub(crate) request: Arc<[u8]>,
    pub(crate) parse: Arc<Parser>,
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    pub(crate) max_connections: u64,
}

impl Churn {
    pub(crate) fn new(
        addr: SocketAddr,
        threads: usize,
        request: &[u8],
        parse: impl Fn(&[u8]) -> (usize, usize) + Send + Sync + 'static,
    ) -> Churn {
        Churn {
            addr,
            threads: threads.max(1),
            request: request.into(),
            parse: Arc::new(parse),
            warmup: Duration::from_millis(300),
            measure: Duration::from_millis(1000),
            max_connections: 10_000_000,
        }
    }

    /// Run against `server`; `messages` in the result counts connections.
    pub(crate) fn run(&self, server: &ChildServer) -> io::Result<Measured> {
        let shared = Arc::new(Shared::default());
        let workers: Vec<_> = (0..self.threads)
            .map(|_| {
                let (churn, shared) = (self.clone(), shared.clone());
                thread::spawn(move || {
                    shared.connected.fetch_add(1, Ordering::SeqCst);
                    let result = churn.client(&shared);
                    shared.stop.store(true, Ordering::SeqCst);
                    result
                })
            })
            .collect();
        let window = Window {
            ready: self.threads,
            warmup: self.warmup,
            measure: self.measure,
            max_messages: self.max_connections,
        };
        window.run(server, &shared, workers, None)
    }

    fn client(&self, shared: &Shared) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while !shared.stop.load(Ordering::Relaxed) {
            let mut stream = TcpStream::connect(self.addr)?;
            stream.set_nodelay(true)?;
            stream.write_all(&self.request)?;
            let mut have = 0;
            loop {
                if have == buf.len() {
                    return Err(io::Error::other("response larger than 64 KiB"));
                }
                let n = stream.read(&mut buf[have..])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed before the response",
                    ));
                }
                have += n;
                if (self.parse)(&buf[..have]).0 > 0 {
                    break;
                }
            }
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            drop(stream);
            shared.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A client connection: plain TCP, or wrapped (TLS).
enum ClientIo {
    Plain(TcpStream),
    Wrapped(Box<dyn Duplex>),
}

impl Read for ClientIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientIo::Plain(s) => s.read(buf),
            ClientIo::Wrapped(s) => s.read(buf),
        }
    }
}

impl Write for ClientIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientIo::Plain(s) => s.write(buf),
            ClientIo::Wrapped(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientIo::Plain(s) => s.flush(),
            ClientIo::Wrapped(s) => s.flush(),
        }
    }
}

struct Conn {
    stream: ClientIo,
    fd: RawFd,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    want_write: bool,
    /// When each request in flight was queued, oldest first.
    sent: VecDeque<Instant>,
}

/// One client thread: `conns` non-blocking connections driven by one epoll loop.
fn client_thread(load: &Load, conns: usize, shared: &Shared) -> io::Result<()> {
    let epoll = Epoll::new()?;
    let mut all = Vec::with_capacity(conns);
    for i in 0..conns {
        let tcp = TcpStream::connect(load.addr)?;
        tcp.set_nodelay(true)?;
        let fd = tcp.as_raw_fd();
        let stream = match &load.wrap {
            None => {
                tcp.set_nonblocking(true)?;
                ClientIo::Plain(tcp)
            }
            Some(wrap) => {
                // O_NONBLOCK belongs to the shared open file: set it through a duplicate
                // once the (blocking) handshake is done.
                let dup = tcp.try_clone()?;
                let wrapped = wrap(tcp)?;
                dup.set_nonblocking(true)?;
                ClientIo::Wrapped(wrapped)
            }
        };
        epoll.add(fd, i as u64)?;
        let mut output = Vec::with_capacity(load.request.len() * load.depth);
        for _ in 0..load.depth {
            output.extend_from_slice(&load.request);
        }
        let sent = VecDeque::with_capacity(load.depth);
        all.push(Conn {
            stream,
            fd,
            input: Vec::with_capacity(4096),
            output,
            written: 0,
            want_write: false,
            sent,
        });
        shared.connected.fetch_add(1, Ordering::SeqCst);
    }
    // Start only when every thread is connected, so the warm-up sees the full load.
    while shared.connected.load(Ordering::SeqCst) < load.connections {
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    for (i, conn) in all.iter_mut().enumerate() {
        conn.sent.extend(std::iter::repeat_n(start, load.depth));
        flush(conn, &epoll, i)?;
    }
    let mut scratch = vec![0u8; 64 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.clamp(1, 1024)];
    let mut latencies: Vec<u32> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let ready = epoll.wait(&mut events, if load.spin { 0 } else { 10 })?;
        // one clock read per batch: the responses of a batch arrived by now
        let now = if ready > 0 { Instant::now() } else { start };
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let mut done = 0u64;
        for ev in &events[..ready] {
            let (flags, i) = (ev.events, ev.u64 as usize);
            let conn = &mut all[i];
            if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                // A wrapped stream may hold decrypted bytes the socket no longer shows as
                // readable: read it until it would block.
                let drain = matches!(conn.stream, ClientIo::Wrapped(_));
                loop {
                    match conn.stream.read(&mut scratch) {
                        Ok(0) => {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "server closed a connection",
                            ))
                        }
                        Ok(n) => {
                            conn.input.extend_from_slice(&scratch[..n]);
                            if n < scratch.len() && !drain {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                let (responses, used) = (load.parse)(&conn.input);
                if responses > 0 {
                    conn.input.drain(..used);
                    done += responses as u64;
                    for _ in 0..responses {
                        if let Some(sent) = conn.sent.pop_front() {
                            if measuring {
                                let ns = now.saturating_duration_since(sent).as_nanos();
                                latencies.push(u32::try_from(ns).unwrap_or(u32::MAX));
                            }
                        }
                        conn.sent.push_back(now);
                        conn.output.extend_from_slice(&load.request);
                    }
                    flush(conn, &epoll, i)?;
                }
            }
            if flags & libc::EPOLLOUT as u32 != 0 {
                flush(conn, &epoll, i)?;
            }
        }
        if done > 0 {
            shared.count.fetch_add(done, Ordering::Relaxed);
        }
    }
    shared
        .latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend_from_slice(&latencies);
    Ok(())
}

/// Write as much pending output as the socket takes; watch for writability if some is left.
fn flush(conn: &mut Conn, epoll: &Epoll, i: usize) -> io::Result<()> {
    while conn.written < conn.output.len() {
        match conn.stream.write(&conn.output[conn.written..]) {
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let pending = conn.written < conn.output.len();
    if !pending {
        conn.output.clear();
        conn.written = 0;
    }
    if pending != conn.want_write {
        conn.want_write = pending;
        epoll.modify(conn.fd, i as u64, pending)?;
    }
    Ok(())
}

/// A level-triggered epoll instance.
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a valid result is a new fd we then own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd })
    }

    fn ctl(&self, op: i32, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        let mut flags = libc::EPOLLIN;
        if write {
            flags |= libc::EPOLLOUT;
        }
        let mut ev = libc::epoll_event {
            events: flags as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; `ev` is a valid event the kernel only reads.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, false)
    }

    fn modify(&self, fd: RawFd, token: u64, write: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, write)
    }

    /// Wait up to `timeout_ms`; returns how many entries of `events` were filled.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: the kernel writes at most `max` events into `events`, which has that room.
        let n =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and output

/// The median of `values` (the mean of the two middle ones for an even count).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A plain-text table with right-aligned columns (the first one left-aligned).
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: &[String]| {
            for (c, (cell, w)) in row.iter().zip(&width).enumerate() {
                let sep = if c == 0 { "" } else { "  " };
                if c == 0 {
                    let _ = write!(out, "{sep}{cell:<w$}");
                } else {
                    let _ = write!(out, "{sep}{cell:>w$}");
                }
            }
            out.push('\n');
        };
        line(&mut out, &self.header);
        let total: usize = width.iter().sum::<usize>() + 2 * (cols - 1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }
}

/// Open `n` blocking connections to `addr`, each proven served by a 1-byte round trip
/// (so the server has accepted it and its handler is running, blocked in `read` again).
pub(crate) fn open_idle_connections(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    let mut byte = [0u8; 1];
    for _ in 0..n {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"x")?;
        s.read_exact(&mut byte)?;
        conns.push(s);
    }
    Ok(conns)
}
