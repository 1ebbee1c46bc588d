//! Idle-connection memory benchmark (issue 2): hold 10 000 idle connections open to a server
//! whose handler blocks in `read`, and report the server's resident memory per connection.
//! Servers: `StreamServer` (default spawn), `StreamServer` with `Pool::new(10_000)`, and raw
//! may; each in its own child process with one may worker.
//!
//! `cargo bench --bench idle_memory`. Knob: `IDLE_CONNS` (default 10000; lowered, with a
//! note, when RLIMIT_NOFILE's hard limit is too low).

mod support;

use std::time::Duration;

use support::echo::{RAW_MAY, ROLES, STREAM_DEFAULT, STREAM_POOL};
use support::{env_or, open_idle_connections, ChildServer, Table};

fn main() {
    support::serve_if_child(ROLES);
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    if !filter.is_empty() && !"idle_memory".contains(&filter) {
        println!("idle_memory: skipped (filter {filter:?})");
        return;
    }

    let wanted: usize = env_or("IDLE_CONNS", 10_000);
    // Both processes hold one descriptor per connection, plus a few of their own.
    let limit = usize::try_from(support::raise_nofile()).unwrap_or(usize::MAX);
    let count = wanted.min(limit.saturating_sub(64));
    println!(
        "idle_memory: {count} idle connections per server (handler blocked in read; each \
         connection proven served by a 1-byte echo first); server = child process with 1 may \
         worker; RSS = VmRSS of /proc/<pid>/status"
    );
    if count < wanted {
        println!(
            "note: RLIMIT_NOFILE hard limit is {limit}: reduced from {wanted} to {count} connections"
        );
    }

    // may keeps a pool of 1000 ready coroutines (stacks mapped and partly resident) from its
    // start: they are in "RSS before", and the first 1000 connections reuse them. So the
    // marginal cost is measured between a first batch past the pool and the full count.
    let first = (count / 5).max(count.min(1_500));
    let mut table = Table::new(&[
        "server",
        "conns",
        "RSS before KiB",
        "RSS after KiB",
        "KiB/conn",
        "marginal KiB/conn",
        "of which stacks",
        "threads",
    ]);
    for server in [RAW_MAY, STREAM_DEFAULT, STREAM_POOL] {
        let child = ChildServer::spawn(server).expect("start server child");
        // Let the runtime settle (worker and timer threads, first allocations).
        std::thread::sleep(Duration::from_millis(100));
        let sample = || {
            std::thread::sleep(Duration::from_millis(100));
            (
                child.rss_kib().expect("rss") as f64,
                child.stack_rss_kib().expect("smaps") as f64,
            )
        };
        let before = sample();
        let mut conns = match open_idle_connections(child.addr(), first) {
            Ok(conns) => conns,
            Err(err) => {
                eprintln!("idle_memory: {server}: connecting failed: {err}");
                continue;
            }
        };
        let mid = sample();
        match open_idle_connections(child.addr(), count - first) {
            Ok(more) => conns.extend(more),
            Err(err) => {
                eprintln!("idle_memory: {server}: connecting failed: {err}");
                continue;
            }
        }
        let after = sample();
        let marginal = |i: fn(&(f64, f64)) -> f64| (i(&after) - i(&mid)) / (count - first) as f64;
        table.row(vec![
            server.to_string(),
            conns.len().to_string(),
            format!("{:.0}", before.0),
            format!("{:.0}", after.0),
            format!("{:.2}", (after.0 - before.0) / count as f64),
            format!("{:.2}", marginal(|s| s.0)),
            format!("{:.2}", marginal(|s| s.1)),
            child.threads().map_or("?".into(), |n| n.to_string()),
        ]);
        drop(child); // stop the server first, then close our ends
        drop(conns);
    }
    print!("{}", table.render());
    println!(
        "KiB/conn = (RSS after - RSS before) / conns (raw may is expected around 4.4 KiB). \
         marginal = the same between connection {first} and {count}, past may's pool of 1000 \
         pre-made coroutines; of which stacks = resident coroutine stack pages (anonymous \
         8 KiB-1 MiB mappings in /proc/<pid>/smaps). threads = the child's OS threads (main + \
         1 may worker + may's timer thread)."
    );
}
