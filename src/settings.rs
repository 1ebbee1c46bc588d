//! Server settings: the defaults gevent documents, what a builder collects, and the builder
//! methods every server kind shares (gevent: `BaseServer`'s keyword arguments and class
//! attributes).

use std::fmt;
use std::time::Duration;

use slog::Logger;

use crate::backoff::{MAX_DELAY, MIN_DELAY};
use crate::error::Result;
use crate::handler::Hooks;
use crate::socket::{IntoListener, Listener};
use crate::spawn::Spawn;

/// Accepts in a row before the accept loop yields to other coroutines.
/// gevent: `BaseServer.max_accept` (100).
pub const MAX_ACCEPT: usize = 100;
/// Default time `stop()` waits for handlers before cancelling them.
/// gevent: `BaseServer.stop_timeout` (1 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(1);
/// Default interval at which `serve_forever` calls `service_actions`.
/// Python: `serve_forever(poll_interval=0.5)`.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long `stop()` waits for cancelled handlers to unwind. gevent: `pool.kill(timeout=1)`.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `stop()` gives handlers to return after it has shut their connections down,
/// before it cancels those still running (see [`StreamServer::stop`](crate::StreamServer::stop)).
pub const STOP_GRACE: Duration = Duration::from_millis(250);

/// Settings fixed when the server is built.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) backlog: Option<i32>,
    pub(crate) reuse_port: bool,
    pub(crate) max_accept: usize,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) timeout: Option<Duration>,
    /// Handler coroutine stack, in machine words (may's unit); `None`: may's default.
    pub(crate) stack_words: Option<usize>,
    /// `serve_forever` stops the server on SIGINT/SIGTERM.
    pub(crate) handle_signals: bool,
    pub(crate) max_datagram_size: usize,
    /// `SO_RCVBUF` to ask for on a datagram socket; `None`: [`RECV_BUFFER_SIZE`](crate::RECV_BUFFER_SIZE) on a socket
    /// the server binds, the socket's own on a given one.
    pub(crate) recv_buffer_size: Option<usize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backlog: None,
            reuse_port: false,
            max_accept: MAX_ACCEPT,
            min_delay: MIN_DELAY,
            max_delay: MAX_DELAY,
            stop_timeout: STOP_TIMEOUT,
            poll_interval: POLL_INTERVAL,
            timeout: None,
            stack_words: None,
            handle_signals: true,
            max_datagram_size: crate::datagram_socket::DATAGRAM_SIZE,
            recv_buffer_size: None,
        }
    }
}

/// What every server builder collects besides its handler.
pub(crate) struct Common {
    pub(crate) listener: Result<Listener>,
    pub(crate) spawn: Spawn,
    pub(crate) opts: Options,
    pub(crate) hooks: Hooks,
    pub(crate) logger: Option<Logger>,
}

impl Common {
    pub(crate) fn new(listener: impl IntoListener) -> Common {
        Common {
            listener: listener.into_listener(),
            spawn: Spawn::Default,
            opts: Options::default(),
            hooks: Hooks::default(),
            logger: None,
        }
    }
}

impl fmt::Debug for Common {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Common")
            .field("listener", &self.listener)
            .field("spawn", &self.spawn)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Builder settings shared by every server kind (generated into each builder).
macro_rules! common_builder_methods {
    () => {
        /// How handlers run: [`Spawn::Default`](crate::Spawn::Default) (a coroutine per
        /// connection), a [`Pool`](crate::Pool) (accept stops while it is full), an integer
        /// (`Pool::new(n)`) or [`Spawn::Inline`](crate::Spawn::Inline).
        /// Default: `Spawn::Default`. gevent: `spawn=`.
        pub fn spawn(mut self, spawn: impl Into<crate::Spawn>) -> Self {
            self.common.spawn = spawn.into();
            self
        }

        /// The listen backlog. Default: 128. Setting it together with an already bound
        /// socket is an error at `build()`. gevent: `backlog=`.
        pub fn backlog(mut self, backlog: i32) -> Self {
            self.common.opts.backlog = Some(backlog);
            self
        }

        /// Set `SO_REUSEPORT` so several servers can share the port. Default: off
        /// (`SO_REUSEADDR` is always on, as in gevent).
        pub fn reuse_port(mut self, on: bool) -> Self {
            self.common.opts.reuse_port = on;
            self
        }

        /// Accepts in a row before the accept loop yields. Default: 100; must be at least 1.
        /// gevent: `BaseServer.max_accept`.
        pub fn max_accept(mut self, n: usize) -> Self {
            self.common.opts.max_accept = n;
            self
        }

        /// First pause after an accept error. Default: 10 ms. gevent: `min_delay`.
        pub fn min_delay(mut self, delay: std::time::Duration) -> Self {
            self.common.opts.min_delay = delay;
            self
        }

        /// Longest pause after repeated accept errors. Default: 1 s. gevent: `max_delay`.
        pub fn max_delay(mut self, delay: std::time::Duration) -> Self {
            self.common.opts.max_delay = delay;
            self
        }

        /// How long `stop()` and `serve_forever` wait for handlers before cancelling them.
        /// Default: 1 s. gevent: `stop_timeout`.
        pub fn stop_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.opts.stop_timeout = timeout;
            self
        }

        /// How often `serve_forever` calls `service_actions`. Default: 0.5 s.
        /// Python: `serve_forever(poll_interval)`.
        pub fn poll_interval(mut self, interval: std::time::Duration) -> Self {
            self.common.opts.poll_interval = interval;
            self
        }

        /// How long `handle_request()` waits for a request. Default: `None` (forever).
        /// Python: `socketserver.BaseServer.timeout`.
        pub fn timeout(mut self, timeout: impl Into<Option<std::time::Duration>>) -> Self {
            self.common.opts.timeout = timeout.into();
            self
        }

        /// Stack size of each handler coroutine, in bytes (rounded to machine words).
        /// Default: may's default (32 KiB; 128 KiB when TLS is on). Only default-sized
        /// stacks are recycled by may.
        pub fn stack_size(mut self, bytes: usize) -> Self {
            self.common.opts.stack_words = Some(bytes.div_ceil(std::mem::size_of::<usize>()));
            self
        }

        /// Where errors go (handler failures, accept errors). Default: standard error
        /// (INFO and up); `None` discards them.
        pub fn logger(mut self, logger: impl Into<Option<slog::Logger>>) -> Self {
            self.common.logger = Some(logger.into().unwrap_or_else(crate::log::discard_logger));
            self
        }

        /// Called with each client address before its connection is handled; `false`
        /// closes the connection unhandled. Python: `verify_request`.
        pub fn verify_request(
            mut self,
            hook: impl Fn(&crate::Address) -> bool + Send + Sync + 'static,
        ) -> Self {
            self.common.hooks.verify_request = Some(std::sync::Arc::new(hook));
            self
        }

        /// Called when a handler returns `Err` or panics; the server keeps serving.
        /// Default: log it at ERROR level. Python: `handle_error`.
        pub fn handle_error(
            mut self,
            hook: impl Fn(&crate::HandlerError, &crate::Address) + Send + Sync + 'static,
        ) -> Self {
            self.common.hooks.handle_error = Some(std::sync::Arc::new(hook));
            self
        }

        /// Called every `poll_interval` while `serve_forever` runs.
        /// Python: `service_actions`.
        pub fn service_actions(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
            self.common.hooks.service_actions = Some(std::sync::Arc::new(hook));
            self
        }

        /// Whether `serve_forever` stops the server gracefully on SIGINT and SIGTERM (and
        /// then returns `Ok(())`), restoring the previous signal handlers when it returns.
        /// Default: on. Turn it off when the program handles signals itself.
        pub fn handle_signals(mut self, on: bool) -> Self {
            self.common.opts.handle_signals = on;
            self
        }

        /// Called when `handle_request()` timed out. Python: `handle_timeout`.
        pub fn handle_timeout(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
            self.common.hooks.handle_timeout = Some(std::sync::Arc::new(hook));
            self
        }
    };
}
pub(crate) use common_builder_methods;
