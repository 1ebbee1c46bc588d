//! The state a server shares with its accept loop and its handlers.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use may::coroutine::JoinHandle;
use may::sync::SyncFlag;
use slog::Logger;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::handler::Hooks;
use crate::pool::{cancel, Pool};
use crate::protocol::{Ctx, Protocol};
use crate::settings::Options;
use crate::socket::SocketKind;

/// Where the listener comes from.
pub(crate) enum Source {
    /// Bind this address at every `start()` (gevent: `init_socket`).
    Address(SocketAddr),
    /// An already bound socket, not yet handed to may.
    Socket(SocketKind, OwnedFd),
    /// The given socket was used and closed: it cannot be started again.
    Spent,
}

pub(crate) struct State<P: Protocol> {
    pub(crate) source: Source,
    pub(crate) bound: Option<Arc<P::Socket>>,
    pub(crate) address: Option<Address>,
    pub(crate) accept_loop: Option<JoinHandle<()>>,
    pub(crate) started: bool,
    /// Fired by `close()`; `serve_forever` waits on it. Replaced at each `start()`.
    pub(crate) stop_event: Arc<SyncFlag>,
    /// Fired when `serve_forever` has returned (for `shutdown()`).
    pub(crate) serving: Option<Arc<SyncFlag>>,
    /// `close()` was called since the last `start()`: `serve_forever` must not restart.
    pub(crate) close_requested: bool,
    /// The error that made the accept loop close the server; `serve_forever` returns it.
    pub(crate) failure: Option<io::Error>,
}

/// Called on every `start()` (true) and `close()` (false), e.g. to end idle keep-alive
/// connections when a WSGI server stops.
pub(crate) type LifecycleHook = Arc<dyn Fn(bool) + Send + Sync>;

pub(crate) struct Shared<P: Protocol> {
    pub(crate) name: &'static str,
    pub(crate) opts: Options,
    pub(crate) pool: Pool,
    pub(crate) hooks: Hooks,
    pub(crate) logger: Logger,
    pub(crate) handler: Mutex<Arc<P::Handler>>,
    pub(crate) state: Mutex<State<P>>,
    pub(crate) lifecycle: Mutex<Vec<LifecycleHook>>,
    /// What this kind of server keeps (TLS and live connections; datagram counters).
    pub(crate) extra: P::Extra,
    /// `close()` shuts the listening socket down (wakes the accept at once, refuses new
    /// connects). False for an inherited socket that other processes may share: shutdown(2)
    /// would act on the shared socket and stop them too; closing our descriptor (and
    /// cancelling the accept) leaves the socket and its backlog to them.
    pub(crate) shutdown_listener: bool,
}

impl<P: Protocol> Shared<P> {
    pub(crate) fn state(&self) -> MutexGuard<'_, State<P>> {
        // State updates are single assignments; a panic cannot leave them half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            name: self.name,
            hooks: &self.hooks,
            logger: &self.logger,
        }
    }

    pub(crate) fn handler(&self) -> Arc<P::Handler> {
        self.handler
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn verify(&self, address: &Address) -> bool {
        self.hooks
            .verify_request
            .as_ref()
            .is_none_or(|verify| verify(address))
    }

    pub(crate) fn run_lifecycle(&self, started: bool) {
        let hooks = self
            .lifecycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for hook in hooks {
            hook(started);
        }
    }

    /// The bound address, or before binding the configured one (gevent's `server.address`).
    pub(crate) fn address(&self) -> Option<Address> {
        let state = self.state();
        match (&state.address, &state.source) {
            (Some(address), _) => Some(address.clone()),
            (None, Source::Address(addr)) => Some(Address::Inet(*addr)),
            (None, _) => None,
        }
    }

    /// Bind (or take over) the listening socket if it is not bound yet.
    pub(crate) fn init_socket_locked(&self, state: &mut State<P>) -> Result<()> {
        if state.bound.is_some() {
            return Ok(());
        }
        let ctx = self.ctx();
        let bound = match std::mem::replace(&mut state.source, Source::Spent) {
            Source::Address(addr) => {
                state.source = Source::Address(addr);
                P::bind(addr, &self.opts, &self.extra, &ctx)?
            }
            Source::Socket(kind, fd) => P::adopt(kind, fd, &self.opts, &self.extra, &ctx)?,
            Source::Spent => {
                return Err(Error::State(
                    "the server was closed and its listening socket with it",
                ))
            }
        };
        state.address = P::local_address(&bound);
        state.bound = Some(Arc::new(bound));
        Ok(())
    }

    /// gevent `close()`: stop accepting, close the listening socket, end `serve_forever`'s
    /// wait. `wait_accept_loop`: wait until the accept coroutine has unwound (not from the
    /// accept loop itself, nor while panicking).
    pub(crate) fn close(&self, wait_accept_loop: bool) {
        let (accept_loop, bound, stop_event) = {
            let mut state = self.state();
            state.started = false;
            state.close_requested = true;
            (
                state.accept_loop.take(),
                state.bound.take(),
                state.stop_event.clone(),
            )
        };
        if let Some(bound) = bound.as_ref().filter(|_| self.shutdown_listener) {
            // Wakes a blocked accept/recv at once (Linux) and makes new connects fail.
            #[allow(unsafe_code)]
            // SAFETY: shutdown(2) on a descriptor we own; it does not close or invalidate it.
            unsafe {
                libc::shutdown(bound.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
        if let Some(handle) = accept_loop {
            cancel(handle.coroutine());
            if wait_accept_loop && !std::thread::panicking() {
                handle.wait();
            }
        }
        // The accept loop held the other reference; the socket closes here.
        drop(bound);
        self.run_lifecycle(false);
        stop_event.fire();
    }
}
