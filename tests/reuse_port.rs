//! Several processes on one port with `reuse_port(true)` (SO_REUSEPORT): each has its own
//! listening socket and backlog, and the kernel spreads new connections over them. Each is
//! stopped in turn (SIGTERM) while the others keep serving.
//!
//! What this measures, honestly: a connection the kernel has already queued in the backlog
//! of the process that closes its socket is reset (Linux does not move it to another socket
//! unless `net.ipv4.tcp_migrate_req` is 1). The test counts those resets and checks that
//! nothing else fails: no truncated response, no keep-alive connection cut mid-response,
//! and the remaining processes answer every request once the stopped one is gone.

#[path = "support/deploy.rs"]
mod deploy;
mod support;

use std::time::Duration;

use deploy::{Load, NotifySocket, WAIT};
use may_gevent::pywsgi::WsgiServer;
use support::child::Running;

const SCENARIO: &str = "MAY_GEVENT_REUSE_PORT_CHILD";

/// Runs a server on `127.0.0.1:$PORT` with SO_REUSEPORT when started by `spawn()`.
#[test]
fn child_entry() {
    let Ok(port) = std::env::var(SCENARIO) else {
        return;
    };
    let server = WsgiServer::builder(format!("127.0.0.1:{port}"), deploy::pid_app)
        .reuse_port(true)
        .access_log(None)
        .stop_timeout(Duration::from_secs(5))
        .build()
        .expect("build");
    server.init_socket().expect("bind with SO_REUSEPORT");
    println!(
        "pid {} port {}",
        std::process::id(),
        server.local_addr().unwrap().port()
    );
    let result = server.serve_forever();
    println!("serve_forever returned {result:?}");
    assert!(result.is_ok());
}

fn spawn(port: u16, notify: &NotifySocket) -> (Running, String, u16) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, port.to_string())
        .env("NOTIFY_SOCKET", &notify.address);
    let child = Running::spawn(&format!("server on {port}"), &mut command).unwrap();
    let line = child
        .stdout
        .wait_for(WAIT, |l| l.contains("pid "))
        .unwrap_or_else(|| panic!("server did not start: {:?}", child.stderr.all()));
    let mut words = line.rsplit("pid ").next().unwrap().split(' ');
    let pid = words.next().unwrap().to_owned();
    let port = words.nth(1).unwrap().parse().unwrap();
    notify.wait_for(WAIT, &format!("MAINPID={pid}"));
    (child, pid, port)
}

#[test]
fn processes_on_one_port_stop_in_turn_while_the_others_serve() {
    let notify = NotifySocket::path();
    let (first, first_pid, port) = spawn(0, &notify);
    let mut servers = vec![(first, first_pid)];
    for _ in 0..2 {
        let (child, pid, _) = spawn(port, &notify);
        servers.push((child, pid));
    }
    let addr = ([127, 0, 0, 1], port).into();
    let check = deploy::pid_check();
    // New connections (spread by the kernel over the three sockets) and keep-alive ones.
    let fresh = Load::start(16, addr, None, "/", "", true, check.clone());
    let kept = Load::start(3, addr, None, "/sleep?ms=2", "", false, check);
    for (_, pid) in &servers {
        fresh.wait("every process answers", WAIT, |t| t.count(pid) >= 5);
    }
    let mut resets = Vec::new();
    while servers.len() > 1 {
        let (mut child, pid) = servers.remove(0);
        let before = fresh.snapshot().1;
        child.signal(libc::SIGTERM);
        let status = child.wait_exit(WAIT);
        assert!(status.success(), "{status:?} {:?}", child.stderr.all());
        let gone = fresh.count(&pid);
        // The others take everything.
        for (_, other) in &servers {
            let now = fresh.count(other);
            fresh.wait("the others keep serving", WAIT, |t| {
                t.count(other) >= now + 20
            });
        }
        assert_eq!(fresh.count(&pid), gone, "a stopped process answered");
        resets.push(fresh.snapshot().1 - before);
    }
    let (fresh, kept) = (fresh.stop(), kept.stop());
    println!(
        "SO_REUSEPORT: {} new-connection requests, failed per stop {resets:?}; keep-alive: {} ok, {} retried, {} failed",
        fresh.ok,
        kept.ok,
        kept.retries,
        kept.failures.len()
    );
    if let Some(failure) = fresh.failures.first() {
        println!("SO_REUSEPORT: a failed request: {failure}");
    }
    // A failure may only be a connection reset before any byte of the response: a new
    // connection queued in the closed socket's backlog (`tcp_migrate_req` is 0), also when a
    // keep-alive client reconnects after its server closed the connection between requests.
    // Never a truncated or malformed response, never a reused connection cut mid-response.
    let reset_before_any_byte = |failure: &String| {
        failure.starts_with("on a new connection: read: ")
            || failure.starts_with("on a new connection: connect: ")
            || failure.starts_with("on a new connection: EOF before the response")
            || failure.starts_with("on a new connection: write: ")
    };
    for failure in fresh.failures.iter().chain(&kept.failures) {
        assert!(reset_before_any_byte(failure), "{failure}");
    }
    let (mut last, _) = servers.pop().unwrap();
    last.signal(libc::SIGTERM);
    assert!(last.wait_exit(WAIT).success());
}
