//! Accept errors back off and recover (gevent: min_delay/max_delay). This test lowers
//! RLIMIT_NOFILE for the whole process, so it lives in its own test binary with one test.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use may_gevent::{Address, Stream, StreamServer};
use support::{connect, inet, read_to_end, WAIT};

fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe_zeroed();
    #[allow(unsafe_code)]
    // SAFETY: getrusage writes into the struct we pass.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut usage)
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn unsafe_zeroed() -> libc::rusage {
    #[allow(unsafe_code)]
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    unsafe {
        std::mem::zeroed()
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

fn set_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = n.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0);
    lim
}

/// `dup(2)` of stderr, closed again at once: Err(errno) when the descriptor table is full.
fn try_dup() -> Result<(), i32> {
    #[allow(unsafe_code)]
    // SAFETY: dup(2) of a descriptor we keep open; close(2) of the new descriptor we own.
    unsafe {
        let fd = libc::dup(2);
        if fd < 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        libc::close(fd);
    }
    Ok(())
}

/// One "accept failed, pausing" warning: when it came, the pause announced, the error.
#[derive(Debug, Clone)]
struct Pause {
    at: Instant,
    pause_ms: u64,
    error: String,
}

/// Collects the "accept failed, pausing" warnings and wakes whoever waits for them.
#[derive(Clone, Default)]
struct Pauses(Arc<(Mutex<Vec<Pause>>, Condvar)>);

impl Pauses {
    /// Waits (at most WAIT) until `n` pauses were logged; returns all logged so far.
    fn wait_for(&self, n: usize) -> Vec<Pause> {
        let (lock, changed) = &*self.0;
        let (pauses, res) = changed
            .wait_timeout_while(lock.lock().unwrap(), WAIT, |p| p.len() < n)
            .unwrap();
        assert!(
            !res.timed_out(),
            "{} back-off pauses within {WAIT:?}, expected {n}: {:?}",
            pauses.len(),
            *pauses
        );
        pauses.clone()
    }

    fn count(&self) -> usize {
        self.0 .0.lock().unwrap().len()
    }
}

struct Kv<'a> {
    pause_ms: &'a mut Option<u64>,
    error: &'a mut String,
}

impl slog::Serializer for Kv<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        match key {
            "pause_ms" => *self.pause_ms = val.to_string().parse().ok(),
            "error" => *self.error = val.to_string(),
            _ => {}
        }
        Ok(())
    }
}

impl slog::Drain for Pauses {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        if record.msg().to_string().contains("pausing") {
            let at = Instant::now();
            let (mut pause_ms, mut error) = (None, String::new());
            let _ = slog::KV::serialize(
                &record.kv(),
                record,
                &mut Kv {
                    pause_ms: &mut pause_ms,
                    error: &mut error,
                },
            );
            let pause = Pause {
                at,
                pause_ms: pause_ms.expect("pause_ms logged"),
                error,
            };
            let (lock, changed) = &*self.0;
            lock.lock().unwrap().push(pause);
            changed.notify_all();
        }
        Ok(())
    }
}

#[test]
fn emfile_pauses_accepting_without_spinning_and_recovers() {
    let pauses = Pauses::default();
    let server = StreamServer::builder("127.0.0.1:0", |mut s: Stream, _a: Address| {
        s.write_all(b"ok")
    })
    .min_delay(Duration::from_millis(10))
    .max_delay(Duration::from_millis(200))
    .logger(slog::Logger::root(pauses.clone(), slog::o!()))
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    assert_eq!(read_to_end(&mut connect(addr)), b"ok");

    // Client sockets that are given back at the end, so the server can accept again.
    let mut clients: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    for c in &mut clients {
        assert_eq!(read_to_end(c), b"ok");
    }

    // While the table is filled nothing is accepted (an accepted and closed connection would
    // give its descriptor back): the pending connections wait in the backlog.
    server.stop_accepting();
    let saved = nofile();
    set_nofile(open_fds() + 3);
    let mut waiting: Vec<TcpStream> = Vec::new();
    // Fill the remaining descriptors with pending connections (each takes one fd here).
    let full = loop {
        match TcpStream::connect_timeout(&addr, WAIT) {
            Ok(c) => waiting.push(c),
            Err(err) => break err,
        }
        assert!(waiting.len() < 100, "the descriptor limit does not bite");
    };
    assert_eq!(full.raw_os_error(), Some(libc::EMFILE), "{full}");
    assert!(!waiting.is_empty());
    // The precondition: the table is full, so accept() can only fail with EMFILE.
    assert_eq!(
        try_dup(),
        Err(libc::EMFILE),
        "the descriptor table is not full"
    );
    assert_eq!(pauses.count(), 0, "no accept was attempted while stopped");

    // Now accept() fails with EMFILE at every attempt. Measure the CPU the process burns
    // until the back-off has paused 8 times.
    let cpu_before = cpu_time();
    let begin = Instant::now();
    server.start_accepting().unwrap();
    let seen = pauses.wait_for(8);
    let burned = cpu_time() - cpu_before;
    let elapsed = begin.elapsed();
    assert_eq!(try_dup(), Err(libc::EMFILE), "the table stayed full");
    assert!(server.started(), "EMFILE is not fatal");
    for pause in &seen {
        assert!(pause.error.contains("os error 24"), "not EMFILE: {pause:?}");
    }
    // The pause doubles from min_delay up to max_delay...
    let announced: Vec<u64> = seen.iter().take(8).map(|p| p.pause_ms).collect();
    assert_eq!(announced, [10, 20, 40, 80, 160, 200, 200, 200]);
    // ...and each one is really waited for (a timer may fire a little early: 4/5).
    for pair in seen.windows(2).take(7) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(pair[0].pause_ms) * 4 / 5,
            "paused {gap:?} after announcing {} ms",
            pair[0].pause_ms
        );
    }
    // 10 + 20 + 40 + 80 + 160 + 200 + 200 ms of pauses before the 8th: a handful of pauses,
    // not thousands of retries, and no CPU burned meanwhile.
    assert!(
        elapsed >= Duration::from_millis(710) * 4 / 5,
        "8 pauses in {elapsed:?}"
    );
    assert!(
        burned < elapsed / 4,
        "accept loop spun: {burned:?} CPU in {elapsed:?} wall"
    );

    // Give the descriptors back: the pending connections are served.
    drop(clients);
    set_nofile(saved.rlim_cur);
    for mut c in waiting {
        c.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(read_to_end(&mut c), b"ok");
    }
    assert_eq!(read_to_end(&mut connect(addr)), b"ok");
}
