//! End-to-end TCP echo benchmark (issue 2): 64-byte ping-pong at 16 and 256 connections
//! through `StreamServer` (default spawn), `StreamServer` with `Pool::new(10_000)`, and a raw
//! may echo server (no server machinery), each in its own child process with one may worker.
//! A second table churns connections (connect, one echo, close) to exercise the accept and
//! spawn path, which the ping-pong over open connections never touches.
//!
//! `cargo bench --bench echo`. Knobs (environment): `ECHO_ROUNDS` (default 3; the tables show
//! the median per case), `ECHO_WARMUP_MS` (300), `ECHO_MEASURE_MS` (1200), `ECHO_CONNS`
//! (comma-separated, default `16,256`), `ECHO_THREADS` (client threads, default 1),
//! `ECHO_CHURN_THREADS` (blocking churn clients, default 4; 0 skips the churn table),
//! `ECHO_SPIN` (1: the client busy-polls, the default; 0: it sleeps in `epoll_wait`),
//! `ECHO_VERBOSE=1` (print every run).

mod support;

use std::time::Duration;

use support::echo::{fixed_size, RAW_MAY, ROLES, STREAM_DEFAULT, STREAM_POOL};
use support::{env_or, median, ChildServer, Churn, Load, Measured, Table};

const MESSAGE: usize = 64;
const SERVERS: [&str; 3] = [RAW_MAY, STREAM_DEFAULT, STREAM_POOL];

fn main() {
    support::serve_if_child(ROLES);
    // `cargo bench -- <filter>` passes a filter (and `--bench`): skip unless it matches.
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    if !filter.is_empty() && !"echo".contains(&filter) {
        println!("echo: skipped (filter {filter:?})");
        return;
    }
    support::raise_nofile();

    let rounds: usize = env_or("ECHO_ROUNDS", 3);
    let warmup = Duration::from_millis(env_or("ECHO_WARMUP_MS", 300));
    let measure = Duration::from_millis(env_or("ECHO_MEASURE_MS", 1200));
    let threads: usize = env_or("ECHO_THREADS", 1);
    let churn_threads: usize = env_or("ECHO_CHURN_THREADS", 4);
    let verbose = env_or("ECHO_VERBOSE", 0) != 0;
    let spin = env_or("ECHO_SPIN", 1) != 0;
    let conns: Vec<usize> = std::env::var("ECHO_CONNS")
        .unwrap_or_else(|_| "16,256".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let request = [b'x'; MESSAGE];

    println!(
        "echo: {MESSAGE}-byte ping-pong over 127.0.0.1; each server in its own process with 1 may \
         worker; client: {threads} epoll thread(s) in the bench process{}; {rounds} round(s) of \
         {} ms warm-up + {} ms measured per case, median shown",
        if spin { ", busy-polling" } else { "" },
        warmup.as_millis(),
        measure.as_millis()
    );
    // results[case][server] = one Measured per round. Rounds interleave the servers so slow
    // drifts of the machine hit every server alike.
    let mut results = vec![vec![Vec::<Measured>::new(); SERVERS.len()]; conns.len()];
    for _round in 0..rounds {
        for (s, server) in SERVERS.iter().enumerate() {
            for (c, &n) in conns.iter().enumerate() {
                let child = ChildServer::spawn(server).expect("start server child");
                let mut load = Load::new(child.addr(), n, &request, fixed_size(MESSAGE));
                load.warmup = warmup;
                load.measure = measure;
                load.threads = threads;
                load.spin = spin;
                record(&mut results[c][s], load.run(&child), &child, n, verbose);
            }
        }
    }
    let mut table = Table::new(&[
        "server",
        "conns",
        "msgs/s",
        "server CPU us/msg",
        "msgs/s vs raw",
        "CPU vs raw",
    ]);
    for (c, &n) in conns.iter().enumerate() {
        add_rows(&mut table, &results[c], &n.to_string());
    }
    print!("{}", table.render());
    println!(
        "msgs/s vs raw = rate / raw rate; CPU vs raw = raw CPU per msg / this CPU per msg \
         (both >= 0.95x meet the target).\n\
         On 2 cores the client saturates its core first, so server CPU per message is the figure \
         that counts; CPU time has 10 ms resolution and differences under ~20 % are noise here."
    );

    if churn_threads == 0 {
        return;
    }
    println!(
        "\nconnection churn: {churn_threads} blocking clients, each: connect, one {MESSAGE}-byte \
         echo, close (RST); one message = one connection; {rounds} round(s) of {} ms warm-up + \
         {} ms, median shown",
        warmup.as_millis(),
        measure.as_millis()
    );
    let mut results = vec![Vec::<Measured>::new(); SERVERS.len()];
    for _round in 0..rounds {
        for (s, server) in SERVERS.iter().enumerate() {
            let child = ChildServer::spawn(server).expect("start server child");
            let mut churn = Churn::new(child.addr(), churn_threads, &request, fixed_size(MESSAGE));
            churn.warmup = warmup;
            churn.measure = measure;
            record(&mut results[s], churn.run(&child), &child, 0, verbose);
        }
    }
    let mut table = Table::new(&[
        "server",
        "clients",
        "conns/s",
        "server CPU us/conn",
        "conns/s vs raw",
        "CPU vs raw",
    ]);
    add_rows(&mut table, &results, &churn_threads.to_string());
    print!("{}", table.render());
    println!("Same ratios; this is where the server machinery (accept loop, pool, spawn) shows.");
}

fn record(
    runs: &mut Vec<Measured>,
    run: std::io::Result<Measured>,
    child: &ChildServer,
    conns: usize,
    verbose: bool,
) {
    match run {
        Ok(m) => {
            if verbose {
                println!(
                    "  {:<26} {conns:>4} conns: {:>8.0}/s {:>6.2} us CPU each ({} server threads)",
                    child.role,
                    m.rate(),
                    m.cpu_us_per_msg(),
                    child.threads().unwrap_or(0)
                );
            }
            runs.push(m);
        }
        Err(err) => eprintln!("echo: {} ({conns} conns) failed: {err}", child.role),
    }
}

/// One row per server (index 0 is raw may, the reference), medians over the rounds.
fn add_rows(table: &mut Table, per_server: &[Vec<Measured>], label: &str) {
    let summary = |runs: &[Measured]| -> (f64, f64) {
        let mut rates: Vec<f64> = runs.iter().map(Measured::rate).collect();
        let mut cpus: Vec<f64> = runs.iter().map(Measured::cpu_us_per_msg).collect();
        (median(&mut rates), median(&mut cpus))
    };
    let (raw_rate, raw_cpu) = summary(&per_server[0]);
    for (server, runs) in SERVERS.iter().zip(per_server) {
        let (rate, cpu) = summary(runs);
        table.row(vec![
            server.to_string(),
            label.to_string(),
            format!("{rate:.0}"),
            format!("{cpu:.2}"),
            format!("{:.2}x", rate / raw_rate),
            // Efficiency: raw CPU / this CPU, so >= 0.95x meets the target too.
            format!("{:.2}x", raw_cpu / cpu),
        ]);
    }
}
