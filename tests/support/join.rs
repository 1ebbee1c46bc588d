//! Bounded joins of threads and coroutines, shared by `support` and `wsgi_support`.

use std::time::{Duration, Instant};

/// Join a thread that must end by itself within `within`; fails the test (instead of hanging)
/// if it is still running then. A panic in the thread is re-raised here.
pub fn join_within<T>(what: &str, within: Duration, thread: std::thread::JoinHandle<T>) -> T {
    super::watchdog::arm();
    let deadline = Instant::now() + within;
    while !thread.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Join a coroutine that must end within `within`; fails the test (instead of hanging) if it is
/// still running then. Returns what `join` returns (`Err` if the coroutine panicked or was
/// cancelled).
pub fn join_coroutine_within<T>(
    what: &str,
    within: Duration,
    handle: may::coroutine::JoinHandle<T>,
) -> std::thread::Result<T> {
    super::watchdog::arm();
    let deadline = Instant::now() + within;
    while !handle.is_done() {
        assert!(
            Instant::now() < deadline,
            "{what} still running after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.join()
}
