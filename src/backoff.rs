//! Accept-error back-off (gevent: `BaseServer.delay`, `min_delay`, `max_delay`).

use std::time::Duration;

/// First pause after an accept error. gevent: `BaseServer.min_delay` (0.01 s).
pub const MIN_DELAY: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts after repeated errors. gevent: `BaseServer.max_delay` (1 s).
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Doubling delay: `min_delay`, then twice as long per consecutive error up to `max_delay`;
/// reset to `min_delay` by a successful accept.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// A success: the next error waits `min_delay` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }

    /// An error: how long to pause now; the following pause doubles (capped at `max_delay`).
    pub(crate) fn fail(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::new(MIN_DELAY, MAX_DELAY);
        let seq: Vec<u128> = (0..10).map(|_| b.fail().as_millis()).collect();
        assert_eq!(seq, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.fail(), MIN_DELAY);
    }

    #[test]
    fn max_below_min_is_min() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_millis(5));
        assert_eq!(b.fail(), Duration::from_millis(50));
        assert_eq!(b.fail(), Duration::from_millis(50));
    }
}
