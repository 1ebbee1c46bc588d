//! A restart that loses nothing, on two real processes sharing one listening socket passed
//! by descriptor (as systemd passes it, or an old binary to its successor): while clients
//! keep sending requests, a new process starts on the same socket, the old one gets SIGTERM,
//! stops accepting and drains, and every request gets a complete response.
//!
//! Both processes hold the same socket (one open file description, not two sockets with
//! SO_REUSEPORT), so there is one backlog: a connection queued in it when the old process
//! closes its descriptor is accepted by the new one. The old process must not shut the
//! socket down (that would stop the new one too); keep-alive connections it closes between
//! requests are retried by the client on a new connection, as every HTTP client does when a
//! reused connection closes before any byte of the response.

#[path = "support/deploy.rs"]
mod deploy;
mod support;

use std::os::fd::RawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use deploy::{activated, listening_socket, local_addr, Load, NotifySocket, WAIT};
use may_gevent::pywsgi::WsgiServer;
use may_gevent::{Listener, ServerHandle};
use support::child::Running;

const SCENARIO: &str = "MAY_GEVENT_RESTART_CHILD";

/// Runs the server when started by `spawn()`; a no-op in the normal test run. On SIGUSR2 it
/// upgrades itself: it starts its successor on its own listening socket (the crate's
/// `handover_command`: LISTEN_FDS), waits for the successor's READY=1 on a notify socket of
/// its own, then closes and drains.
#[test]
fn child_entry() {
    if std::env::var_os(SCENARIO).is_none() {
        return;
    }
    let listener = Listener::from_systemd()
        .expect("from_systemd")
        .pop()
        .expect("a socket in LISTEN_FDS");
    println!("pid {}", std::process::id());
    let upgrade = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(libc::SIGUSR2, upgrade.clone()).unwrap();
    let me: Arc<OnceLock<(RawFd, ServerHandle)>> = Arc::new(OnceLock::new());
    let slot = me.clone();
    let server = WsgiServer::builder(listener, deploy::pid_app)
        .access_log(None)
        .stop_timeout(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(10))
        .service_actions(move || {
            if upgrade.swap(false, Ordering::SeqCst) {
                let (fd, handle) = slot.get().expect("set before serving");
                upgrade_to_successor(*fd);
                handle.close(); // serve_forever then stops (drains) and returns
            }
        })
        .build()
        .expect("build");
    let _ = me.set((server.fileno().unwrap(), server.handle()));
    let result = server.serve_forever();
    println!("serve_forever returned {result:?}");
    assert!(result.is_ok());
}

/// The binary upgrade without systemd: the successor gets our socket as descriptor 3 and
/// tells us on our own NOTIFY_SOCKET when it accepts.
fn upgrade_to_successor(fd: RawFd) {
    let dir = deploy::TempDir::new("upgrade");
    let path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut command = may_gevent::systemd::handover_command(&exe, &[(fd, "web")]);
    // The successor outlives this process (it is the upgrade): never waited for here.
    #[allow(clippy::zombie_processes)]
    let successor = command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("NOTIFY_SOCKET", &path)
        .spawn()
        .expect("spawn the successor");
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 from the successor");
    let ready = String::from_utf8_lossy(&buf[..n]);
    assert!(ready.starts_with("READY=1"), "{ready:?}");
    println!("upgraded to {}", successor.id());
}

fn spawn(socket: &socket2::Socket, notify: &NotifySocket, n: usize) -> (Running, String) {
    let exe = std::env::current_exe().unwrap();
    let args = ["--exact", "child_entry", "--nocapture", "--test-threads=1"];
    let mut command = activated(&exe, &args, &[deploy::raw(socket)], &["web"]);
    command
        .env(SCENARIO, "1")
        .env("NOTIFY_SOCKET", &notify.address);
    let child = Running::spawn(&format!("server {n}"), &mut command).unwrap();
    let line = child
        .stdout
        .wait_for(WAIT, |l| l.contains("pid "))
        .unwrap_or_else(|| panic!("server {n} did not start: {:?}", child.stderr.all()));
    let pid = line.rsplit("pid ").next().unwrap().to_owned();
    // Ready (accepting) as systemd would learn it: READY=1 with this pid as MAINPID.
    notify.wait_for(WAIT, &format!("MAINPID={pid}"));
    (child, pid)
}

#[test]
fn restarts_on_a_shared_socket_lose_no_request() {
    let _serial = one_at_a_time();
    let socket = listening_socket("127.0.0.1:0".parse().unwrap());
    let addr = local_addr(&socket);
    let notify = NotifySocket::path();
    let (mut old, mut old_pid) = spawn(&socket, &notify, 0);

    // Keep-alive clients (their idle connections are closed by the stopping server) and
    // clients that open a new connection per request (they go through the backlog), with
    // requests in flight (each takes a few ms) when SIGTERM comes.
    let check = deploy::pid_check();
    let kept = Load::start(4, addr, None, "/sleep?ms=3", "", false, check.clone());
    let fresh = Load::start(2, addr, None, "/sleep?ms=1", "", true, check);
    let mut socket = Some(socket);
    for generation in 1..=3 {
        kept.wait("the old server answers", WAIT, |t| t.count(&old_pid) >= 30);
        fresh.wait("the old server answers", WAIT, |t| t.count(&old_pid) >= 10);
        let (new, new_pid) = spawn(socket.as_ref().unwrap(), &notify, generation);
        // The last restart as in a binary upgrade: only the two processes hold the socket
        // (no systemd keeping a copy), and the old one's close must leave it to the new one.
        if generation == 3 {
            socket = None;
        }
        old.signal(libc::SIGTERM);
        notify.wait_for(WAIT, "STOPPING=1");
        let status = old.wait_exit(WAIT);
        assert!(status.success(), "{status:?} {:?}", old.stderr.all());
        let (kept_old, fresh_old) = (kept.count(&old_pid), fresh.count(&old_pid));
        // After the old process is gone, the new one answers everything.
        let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            kept.wait("the new server answers", WAIT, |t| t.count(&new_pid) >= 30);
            fresh.wait("the new server answers", WAIT, |t| t.count(&new_pid) >= 10);
        }));
        if let Err(panic) = answers {
            // what the new server said, had it failed or exited, and what it holds
            let mut new = new;
            let fds: Vec<String> = std::fs::read_dir(format!("/proc/{new_pid}/fd"))
                .map(|dir| {
                    dir.flatten()
                        .map(|e| {
                            let target = std::fs::read_link(e.path()).unwrap_or_default();
                            format!("{}->{}", e.file_name().to_string_lossy(), target.display())
                        })
                        .take(12)
                        .collect()
                })
                .unwrap_or_default();
            eprintln!(
                "server {generation} (pid {new_pid}) exited: {:?}; first descriptors: {fds:?}\n\
                 stdout: {:?}\nstderr: {:?}",
                new.exited(),
                new.stdout.all(),
                new.stderr.all()
            );
            std::panic::resume_unwind(panic);
        }
        assert_eq!(kept.count(&old_pid), kept_old);
        assert_eq!(fresh.count(&old_pid), fresh_old);
        let (ok, failed, retries) = kept.snapshot();
        println!(
            "restart {generation}: {ok} keep-alive requests, {failed} failed, {retries} retried"
        );
        (old, old_pid) = (new, new_pid);
    }
    let (kept, fresh) = (kept.stop(), fresh.stop());
    assert!(
        kept.failures.is_empty(),
        "keep-alive clients: {:?}",
        kept.failures
    );
    assert!(
        fresh.failures.is_empty(),
        "new-connection clients: {:?}",
        fresh.failures
    );
    // Fresh connections never race a keep-alive close.
    assert_eq!(fresh.retries, 0, "{fresh:?}");
    assert!(
        kept.by_tag.len() == 4 && fresh.by_tag.len() >= 4,
        "{kept:?} {fresh:?}"
    );
    println!(
        "keep-alive: {} ok, {} retried on a new connection; new connection each: {} ok",
        kept.ok, kept.retries, fresh.ok
    );
    old.signal(libc::SIGTERM);
    assert!(old.wait_exit(WAIT).success());
}

/// A process this test did not spawn itself (the successor of an upgrade): SIGKILLed when
/// the test ends or fails. Known by its pid and its start time, so that a pid the kernel has
/// given to another process (or thread) since is never signalled.
struct Orphan {
    pid: i32,
    started: Option<String>,
}

/// Field 22 of `/proc/<pid>/stat` (the start time, in clock ticks since boot) and the state.
fn stat_of(pid: i32) -> Option<(String, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // after the command name in parentheses: state, then fields 4..
    let rest = stat.rsplit(')').next()?.trim_start();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.to_owned();
    Some((started, state))
}

impl Orphan {
    fn new(pid: i32) -> Orphan {
        Orphan {
            pid,
            started: stat_of(pid).map(|(started, _)| started),
        }
    }

    fn alive(&self) -> bool {
        // Gone, a zombie nobody has reaped yet, or the pid reused by someone else.
        match (stat_of(self.pid), &self.started) {
            (Some((started, state)), Some(ours)) => state != 'Z' && &started == ours,
            _ => false,
        }
    }

    fn signal(&self, signal: i32) {
        if !self.alive() {
            return;
        }
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on the pid this test learned from its child, checked above to still
        // be that process; no memory is passed.
        unsafe {
            libc::kill(self.pid, signal);
        }
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// The tests here run process trees and signal pids: one at a time, so that no test's
/// signals or descriptor handovers can meet another's processes.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn binary_upgrade_by_the_old_process_loses_no_request() {
    let _serial = one_at_a_time();
    let socket = listening_socket("127.0.0.1:0".parse().unwrap());
    let addr = local_addr(&socket);
    let notify = NotifySocket::path();
    let (mut old, old_pid) = spawn(&socket, &notify, 0);
    // No systemd: from now on only the processes hold the socket.
    drop(socket);
    let check = deploy::pid_check();
    let kept = Load::start(4, addr, None, "/sleep?ms=3", "", false, check.clone());
    let fresh = Load::start(2, addr, None, "/sleep?ms=1", "", true, check);
    kept.wait("the old server answers", WAIT, |t| t.count(&old_pid) >= 30);
    fresh.wait("the old server answers", WAIT, |t| t.count(&old_pid) >= 10);

    old.signal(libc::SIGUSR2);
    let line = old
        .stdout
        .wait_for(WAIT, |l| l.contains("upgraded to "))
        .unwrap_or_else(|| panic!("no upgrade: {:?}", old.stderr.all()));
    let new_pid = line.rsplit("upgraded to ").next().unwrap().to_owned();
    let successor = Orphan::new(new_pid.parse().unwrap());
    let status = old.wait_exit(WAIT);
    assert!(status.success(), "{status:?} {:?}", old.stderr.all());
    let (kept_old, fresh_old) = (kept.count(&old_pid), fresh.count(&old_pid));
    kept.wait("the successor answers", WAIT, |t| t.count(&new_pid) >= 30);
    fresh.wait("the successor answers", WAIT, |t| t.count(&new_pid) >= 10);
    assert_eq!(
        (kept.count(&old_pid), fresh.count(&old_pid)),
        (kept_old, fresh_old)
    );
    let (kept, fresh) = (kept.stop(), fresh.stop());
    assert!(
        kept.failures.is_empty(),
        "keep-alive clients: {:?}",
        kept.failures
    );
    assert!(
        fresh.failures.is_empty(),
        "new-connection clients: {:?}",
        fresh.failures
    );
    println!(
        "upgrade: keep-alive {} ok ({} retried), new connection each {} ok",
        kept.ok, kept.retries, fresh.ok
    );

    successor.signal(libc::SIGTERM);
    let deadline = Instant::now() + WAIT;
    while successor.alive() {
        assert!(
            Instant::now() < deadline,
            "the successor did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    support::assert_connection_refused(addr);
}
