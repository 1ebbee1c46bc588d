//! `serve_forever` and real signals, on a child process (this test binary run again with
//! `MAY_GEVENT_SIGNAL_CHILD` naming the scenario): SIGINT and SIGTERM stop the server
//! gracefully and `serve_forever` returns `Ok(())`; the handler that was installed before is
//! back afterwards; with `handle_signals(false)` a signal keeps its own meaning.

mod support;

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use may_gevent::{Address, Stream, StreamServer};
use support::child::Running;
use support::{connect, read_to_end, WAIT};

const SCENARIO: &str = "MAY_GEVENT_SIGNAL_CHILD";

/// Start this test binary as a child that runs `scenario` (the test `child_entry`).
fn child(scenario: &str) -> Running {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario);
    Running::spawn(scenario, &mut command).unwrap()
}

/// Runs the scenario when started by `child()`; a no-op in the normal test run.
#[test]
fn child_entry() {
    let Ok(scenario) = std::env::var(SCENARIO) else {
        return;
    };
    // A handler of our own for SIGTERM, installed before serve_forever.
    let got_term = Arc::new(AtomicBool::new(false));
    if scenario != "unhandled" {
        signal_hook::flag::register(libc::SIGTERM, got_term.clone()).unwrap();
    }
    // "serving" comes from inside serve_forever's wait: its signal handlers are in place.
    let announced = std::sync::Once::new();
    let server = StreamServer::builder("127.0.0.1:0", |mut s: Stream, _a: Address| {
        s.write_all(b"hello\n")
    })
    .handle_signals(scenario != "unhandled")
    .poll_interval(std::time::Duration::from_millis(10))
    .service_actions(move || announced.call_once(|| println!("serving")))
    .build()
    .unwrap();
    server.init_socket().unwrap();
    println!("listening {}", server.local_addr().unwrap());
    let result = server.serve_forever();
    println!("serve_forever returned {result:?}");
    assert!(!server.started());
    // Ours again: a SIGTERM now reaches the handler installed before serve_forever.
    assert!(
        !got_term.load(Ordering::SeqCst),
        "serve_forever's signal leaked"
    );
    #[allow(unsafe_code)]
    // SAFETY: raise(3) sends a signal to this process; the handler is signal-hook's flag.
    unsafe {
        libc::raise(libc::SIGTERM);
    }
    support::eventually("our own SIGTERM handler ran", || {
        got_term.load(Ordering::SeqCst)
    });
    println!("previous handler restored");
}

fn listening(child: &Running) -> std::net::SocketAddr {
    let line = child
        .stdout
        .wait_for(WAIT, |line| line.contains("listening "))
        .unwrap_or_else(|| panic!("child did not start: {:?}", child.stderr.all()));
    // libtest prints "test child_entry ... " on the same line
    let addr = line.rsplit("listening ").next().unwrap().parse().unwrap();
    child
        .stdout
        .wait_for(WAIT, |line| line.ends_with("serving"))
        .unwrap_or_else(|| panic!("child did not serve: {:?}", child.stderr.all()));
    addr
}

fn stops_on(signal: libc::c_int) {
    let mut child = child("handled");
    let addr = listening(&child);
    let mut client = connect(addr);
    assert_eq!(read_to_end(&mut client), b"hello\n");
    child.signal(signal);
    let status = child.wait_exit(WAIT);
    let out = child.stdout.all();
    assert!(
        status.success(),
        "{status:?} {out:?} {:?}",
        child.stderr.all()
    );
    assert!(
        out.iter()
            .any(|l| l.ends_with("serve_forever returned Ok(())")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.ends_with("previous handler restored")),
        "{out:?}"
    );
    support::assert_connection_refused(addr);
}

#[test]
fn sigterm_stops_serve_forever_gracefully_and_restores_the_previous_handler() {
    stops_on(libc::SIGTERM);
}

#[test]
fn sigint_stops_serve_forever_gracefully_and_restores_the_previous_handler() {
    stops_on(libc::SIGINT);
}

#[test]
fn with_handle_signals_off_a_signal_keeps_its_default_meaning() {
    let mut child = child("unhandled");
    let addr = listening(&child);
    assert_eq!(read_to_end(&mut connect(addr)), b"hello\n");
    child.signal(libc::SIGTERM);
    let status = child.wait_exit(WAIT);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}
