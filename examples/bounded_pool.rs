//! A standalone Pool, like gevent's examples/dns_mass_resolve.py: run 1000 jobs with at most
//! 10 in flight at any time; `Pool::spawn` blocks while the pool is full.
//!
//! ```text
//! cargo run --example bounded_pool -- [JOBS] [POOL_SIZE]
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use may_gevent::Pool;

fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let pool = Pool::new(size);
    let finished = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    for job in 0..jobs {
        let (finished, running, peak) = (finished.clone(), running.clone(), peak.clone());
        // blocks while `size` jobs are running
        pool.spawn(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            // a blocking call: parks this coroutine only (simulated I/O of 1-4 ms)
            may::coroutine::sleep(Duration::from_millis(1 + (job % 4) as u64));
            running.fetch_sub(1, Ordering::SeqCst);
            finished.fetch_add(1, Ordering::SeqCst);
        });
    }
    let complete = pool.join(Duration::from_secs(60));
    println!(
        "finished {} of {jobs} jobs in {:.2?}; at most {} ran at once (pool size {size}); {}",
        finished.load(Ordering::SeqCst),
        start.elapsed(),
        peak.load(Ordering::SeqCst),
        if complete { "all done" } else { "timed out" }
    );
}
