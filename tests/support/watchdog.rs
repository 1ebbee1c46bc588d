//! A backstop for the waits the tests cannot bound themselves (calls into the library that
//! must return on their own, such as `stop()`): once armed, it ends the whole test binary with
//! a failure if it is still running after `LIMIT`, so a hang fails instead of stalling CI.
//! Every wait of the tests' own is bounded much more tightly than this.
//!
//! `MAY_GEVENT_TEST_WATCHDOG_SECS` overrides the limit (0 disables it, e.g. under a debugger).

use std::io::Write;
use std::sync::Once;
use std::time::Duration;

/// Far beyond the time any of these test binaries takes, even run one test at a time.
const LIMIT: Duration = Duration::from_secs(600);

static ARM: Once = Once::new();

/// Start the watchdog of this test binary (once; later calls do nothing).
pub fn arm() {
    ARM.call_once(|| {
        let limit = match std::env::var("MAY_GEVENT_TEST_WATCHDOG_SECS") {
            Ok(secs) => match secs.parse::<u64>() {
                Ok(0) => return,
                Ok(secs) => Duration::from_secs(secs),
                Err(_) => LIMIT,
            },
            Err(_) => LIMIT,
        };
        std::thread::Builder::new()
            .name("test watchdog".into())
            .spawn(move || {
                std::thread::sleep(limit);
                // Straight to the process's stderr: the test harness does not capture it.
                let _ = writeln!(
                    std::io::stderr(),
                    "test watchdog: this test binary is still running after {limit:?}: \
                     a test hangs; failing"
                );
                std::process::exit(101);
            })
            .expect("spawn the test watchdog");
    });
}
