//! Accept errors back off and recover (gevent: min_delay/max_delay). This test lowers
//! RLIMIT_NOFILE for the whole process, so it lives in its own test binary with one test.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// Counts the "accept failed, pausing" warnings.
struct CountPauses(Arc<AtomicUsize>);

impl slog::Drain for CountPauses {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        if record.msg().to_string().contains("pausing") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn emfile_pauses_accepting_without_spinning_and_recovers() {
    let pauses = Arc::new(AtomicUsize::new(0));
    let server = StreamServer::new("127.0.0.1:0", |mut s: Stream, _a: Address| {
        s.write_all(b"ok")
    })
    .min_delay(Duration::from_millis(10))
    .max_delay(Duration::from_millis(200))
    .logger(slog::Logger::root(CountPauses(pauses.clone()), slog::o!()))
    .build()
    .unwrap();
    server.start().unwrap();
    let addr = inet(&server);
    assert_eq!(read_to_end(&mut connect(addr)), b"ok");

    // Client sockets are opened first; then the limit leaves no fd for accept().
    let mut clients: Vec<TcpStream> = (0..4).map(|_| connect(addr)).collect();
    for c in &mut clients {
        assert_eq!(read_to_end(c), b"ok");
    }
    let waiting: Vec<TcpStream> = {
        set_nofile(open_fds() + 3);
        let mut v = Vec::new();
        // Fill the remaining descriptors with pending connections (each takes one fd here).
        while let Ok(c) = TcpStream::connect_timeout(&addr, WAIT) {
            v.push(c);
        }
        v
    };
    assert!(!waiting.is_empty());
    // Now accept() fails with EMFILE. Measure the CPU the process burns meanwhile.
    let cpu_before = cpu_time();
    let wall = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    let burned = cpu_time() - cpu_before;
    let elapsed = wall.elapsed();
    assert!(
        burned < elapsed / 4,
        "accept loop spun: {burned:?} CPU in {elapsed:?} wall"
    );
    assert!(server.started(), "EMFILE is not fatal");
    // 10, 20, 40, 80, 160, 200, 200 ms: a handful of pauses, not thousands of retries.
    let n = pauses.load(Ordering::SeqCst);
    assert!((2..=12).contains(&n), "{n} back-off pauses in {elapsed:?}");

    // Give the descriptors back: the pending connections are served.
    drop(clients);
    set_nofile(4096);
    for mut c in waiting {
        c.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(read_to_end(&mut c), b"ok");
    }
    assert_eq!(read_to_end(&mut connect(addr)), b"ok");
}
