//! Cost of the Pool/Greenlet layer (issue 10) against raw `may::go!` + `JoinHandle::join`,
//! in the same process and run:
//!
//! - `spawn+join`: one trivial task spawned and joined at a time (latency of one round trip);
//! - `spawn 1000, join all`: a batch spawned, then joined in order (throughput; the pool
//!   blocks at its size, raw spawns do not);
//! - `map 100k`: `Pool(100).map(|x| x + 1, 0..100_000)` and `imap_unordered` over the same
//!   items, against raw `go!` with a `Semphore(100)` bounding concurrency the same way.
//!
//! Everything runs inside one driver coroutine (as a ported gevent program would) on may's
//! default workers. `cargo bench --bench pool`; `POOL_ROUNDS` (default 5; the median per case
//! is shown), `POOL_N` (items of the map cases, default 100000), `POOL_VERBOSE=1`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use may::sync::Semphore;
use may_gevent::{spawn, Pool};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Case {
    name: &'static str,
    ops: usize,
    run: Box<dyn Fn(usize) + Send + Sync>,
}

fn case(name: &'static str, ops: usize, run: impl Fn(usize) + Send + Sync + 'static) -> Case {
    Case {
        name,
        ops,
        run: Box::new(run),
    }
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    if !filter.is_empty() && !"pool".contains(&filter) {
        println!("pool: skipped (filter {filter:?})");
        return;
    }
    let rounds: usize = env_or("POOL_ROUNDS", 5);
    let n: usize = env_or("POOL_N", 100_000);
    let verbose = env_or("POOL_VERBOSE", 0) != 0;
    const ONE: usize = 20_000;
    const BATCH: usize = 1000;

    let cases = vec![
        case("spawn+join: raw may::go!", ONE, |ops| {
            for i in 0..ops {
                black_box(may::go!(move || i).join().unwrap());
            }
        }),
        case("spawn+join: may_gevent::spawn", ONE, |ops| {
            for i in 0..ops {
                black_box(spawn(move || i).take(None).unwrap());
            }
        }),
        case("spawn+join: Pool(100).spawn", ONE, {
            let pool = Pool::new(100);
            move |ops| {
                for i in 0..ops {
                    black_box(pool.spawn(move || i).take(None).unwrap());
                }
            }
        }),
        case("spawn 1000, join all: raw may::go!", BATCH * 20, |ops| {
            for _ in 0..ops / BATCH {
                let handles: Vec<_> = (0..BATCH).map(|i| may::go!(move || i)).collect();
                for handle in handles {
                    black_box(handle.join().unwrap());
                }
            }
        }),
        case(
            "spawn 1000, join all: may_gevent::spawn",
            BATCH * 20,
            |ops| {
                for _ in 0..ops / BATCH {
                    let handles: Vec<_> = (0..BATCH).map(|i| spawn(move || i)).collect();
                    for handle in handles {
                        black_box(handle.take(None).unwrap());
                    }
                }
            },
        ),
        case("spawn 1000, join all: Pool(100).spawn", BATCH * 20, {
            let pool = Pool::new(100);
            move |ops| {
                for _ in 0..ops / BATCH {
                    let handles: Vec<_> = (0..BATCH).map(|i| pool.spawn(move || i)).collect();
                    for handle in handles {
                        black_box(handle.take(None).unwrap());
                    }
                }
            }
        }),
        case("map 100k: raw go! + Semphore(100)", n, |ops| {
            let slots = Arc::new(Semphore::new(100));
            let handles: Vec<_> = (0..ops)
                .map(|i| {
                    slots.wait();
                    let slots = slots.clone();
                    may::go!(move || {
                        let value = i + 1;
                        slots.post();
                        value
                    })
                })
                .collect();
            let values: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            black_box(values);
        }),
        case("map 100k: Pool(100).map", n, {
            let pool = Pool::new(100);
            move |ops| {
                black_box(pool.map(|i: usize| i + 1, 0..ops).unwrap());
            }
        }),
        case("map 100k: Pool(100).imap_unordered", n, {
            let pool = Pool::new(100);
            move |ops| {
                let sum: usize = pool
                    .imap_unordered(|i: usize| i + 1, 0..ops)
                    .map(Result::unwrap)
                    .sum();
                black_box(sum);
            }
        }),
    ];

    println!(
        "pool: trivial tasks, driven from one coroutine on may's default workers; {rounds} \
         round(s) per case, median shown"
    );
    let cases = Arc::new(cases);
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (index, slot) in results.iter_mut().enumerate() {
            let shared = cases.clone();
            let per_op = may::go!(move || {
                let case = &shared[index];
                // warm-up: fill may's stack pool and the allocator
                (case.run)(case.ops / 10);
                let begin = Instant::now();
                (case.run)(case.ops);
                begin.elapsed().as_nanos() as f64 / case.ops as f64
            })
            .join()
            .expect("the bench coroutine panicked");
            if verbose {
                println!(
                    "round {round}: {:<42} {per_op:>9.0} ns/op",
                    cases[index].name
                );
            }
            slot.push(per_op);
        }
    }
    println!("{:<42} {:>12} {:>14}", "case", "ns per task", "tasks per s");
    for (case, samples) in cases.iter().zip(&mut results) {
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        println!("{:<42} {:>12.0} {:>14.0}", case.name, median, 1e9 / median);
    }
}
