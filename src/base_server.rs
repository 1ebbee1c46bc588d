//! `BaseServer`: the lifecycle every server shares (gevent: `gevent.baseserver.BaseServer`;
//! Python: `socketserver.BaseServer`), written once over the server's [`Protocol`]. Each
//! server type holds one and exposes these methods as its own (`server_methods.rs`).

use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use may::coroutine;
use may::sync::SyncFlag;
use slog::{debug, info, warn, Logger};

use crate::accept::accept_loop;
use crate::address::Address;
use crate::error::{Error, Result};
use crate::handle::Control;
use crate::pool::{cancel, Pool};
use crate::protocol::Protocol;
use crate::settings::{Common, KILL_TIMEOUT, STOP_GRACE};
use crate::shared::{LifecycleHook, Shared, Source, State};
use crate::signals::SignalGuard;
use crate::socket::ListenerKind;

pub(crate) struct BaseServer<P: Protocol> {
    pub(crate) shared: Arc<Shared<P>>,
}

impl<P: Protocol> Clone for BaseServer<P> {
    fn clone(&self) -> Self {
        BaseServer {
            shared: self.shared.clone(),
        }
    }
}

impl<P: Protocol> fmt::Debug for BaseServer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state();
        let mut d = f.debug_struct(self.shared.name);
        if let Some(address) = &state.address {
            d.field("address", &format_args!("{address}"));
        }
        if let Some(bound) = &state.bound {
            d.field("fileno", &bound.as_raw_fd());
        }
        d.field("started", &state.started)
            .field("pool", &self.shared.pool)
            .finish()
    }
}

impl<P: Protocol> BaseServer<P> {
    pub(crate) fn from_parts(
        name: &'static str,
        common: Common,
        handler: Arc<P::Handler>,
        extra: P::Extra,
    ) -> Result<BaseServer<P>> {
        let Common {
            listener,
            spawn,
            opts,
            hooks,
            logger,
        } = common;
        let listener = listener?;
        let shutdown_listener = !listener.inherited;
        let logger = logger.unwrap_or_else(crate::log::default_logger);
        if opts.max_accept < 1 {
            return Err(Error::InvalidConfig(
                "max_accept must be a positive number".into(),
            ));
        }
        let source = match listener.kind {
            ListenerKind::Address(addr) => Source::Address(addr),
            ListenerKind::Socket(kind, fd) => {
                if opts.backlog.is_some() {
                    // gevent: TypeError('backlog must be None when a socket instance is passed')
                    return Err(Error::InvalidConfig(
                        "backlog must not be set when an already bound socket is passed".into(),
                    ));
                }
                if !P::accepts(kind) {
                    return Err(Error::InvalidConfig(format!(
                        "{name} needs a {} socket, got a {kind:?} socket",
                        P::WANTS
                    )));
                }
                Source::Socket(kind, fd)
            }
        };
        let server = BaseServer {
            shared: Arc::new(Shared {
                name,
                opts,
                pool: spawn.into_pool(),
                hooks,
                logger,
                handler: Mutex::new(handler),
                lifecycle: Mutex::new(Vec::new()),
                extra,
                shutdown_listener,
                state: Mutex::new(State {
                    source,
                    bound: None,
                    address: None,
                    accept_loop: None,
                    started: false,
                    stop_event: Arc::new(SyncFlag::new()),
                    serving: None,
                    close_requested: false,
                    failure: None,
                }),
            }),
        };
        // A given socket is live at once: connects queue in its backlog until start()
        // (gevent test: created on a pre-bound socket, not started -> connect OK, no response).
        {
            let mut state = server.shared.state();
            if matches!(state.source, Source::Socket(..)) {
                server.shared.init_socket_locked(&mut state)?;
            }
        }
        Ok(server)
    }

    pub(crate) fn on_lifecycle(&self, hook: LifecycleHook) {
        self.shared
            .lifecycle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// `set_handle`: replace the handler before `start()`.
    pub(crate) fn set_handler(&self, handler: Arc<P::Handler>) -> Result<()> {
        if self.started() {
            return Err(Error::State("set_handle() must be called before start()"));
        }
        *self
            .shared
            .handler
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = handler;
        Ok(())
    }

    /// The bound socket, if any.
    pub(crate) fn bound(&self) -> Option<Arc<P::Socket>> {
        self.shared.state().bound.clone()
    }

    pub(crate) fn init_socket(&self) -> Result<()> {
        let mut state = self.shared.state();
        self.shared.init_socket_locked(&mut state)
    }

    pub(crate) fn start(&self) -> Result<()> {
        let mut state = self.shared.state();
        if state.started {
            return Ok(());
        }
        self.shared.init_socket_locked(&mut state)?;
        state.started = true;
        state.close_requested = false;
        state.failure = None;
        if state.stop_event.is_fired() {
            state.stop_event = Arc::new(SyncFlag::new());
        }
        self.shared.run_lifecycle(true);
        self.start_accepting_locked(&mut state)
    }

    fn start_accepting_locked(&self, state: &mut State<P>) -> Result<()> {
        if !state.started || state.accept_loop.is_some() {
            return Ok(());
        }
        let Some(bound) = state.bound.clone() else {
            return Err(Error::State("the server has no listening socket"));
        };
        let shared = self.shared.clone();
        let builder = coroutine::Builder::new().name(format!("{}-accept", self.shared.name));
        let handle = may::go!(builder, move || accept_loop(shared, bound))
            .map_err(|err| Error::io("spawning the accept loop", err))?;
        state.accept_loop = Some(handle);
        Ok(())
    }

    pub(crate) fn start_accepting(&self) -> Result<()> {
        let mut state = self.shared.state();
        self.start_accepting_locked(&mut state)
    }

    pub(crate) fn stop_accepting(&self) {
        let handle = self.shared.state().accept_loop.take();
        if let Some(handle) = handle {
            cancel(handle.coroutine());
            handle.wait();
        }
    }

    pub(crate) fn started(&self) -> bool {
        self.shared.state().started
    }

    pub(crate) fn closed(&self) -> bool {
        self.shared.state().bound.is_none()
    }

    pub(crate) fn address(&self) -> Option<Address> {
        self.shared.address()
    }

    pub(crate) fn fileno(&self) -> Option<RawFd> {
        self.shared
            .state()
            .bound
            .as_ref()
            .map(|bound| bound.as_raw_fd())
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    pub(crate) fn logger(&self) -> &Logger {
        &self.shared.logger
    }

    pub(crate) fn close(&self) {
        self.shared.close(true);
    }

    /// The `stop(timeout)` sequence (documented on each server's `stop`).
    pub(crate) fn stop(&self, timeout: impl Into<Option<Duration>>) {
        self.close();
        let timeout = timeout.into().unwrap_or(self.shared.opts.stop_timeout);
        let shared = &self.shared;
        let pool = &shared.pool;
        if pool.join(timeout) {
            return;
        }
        let shut = P::shutdown_connections(&shared.extra);
        if shut > 0 {
            debug!(shared.logger, "stop: shutting down the connections still served";
                "server" => shared.name, "connections" => shut, "running" => pool.len());
            if pool.join(STOP_GRACE) {
                return;
            }
        }
        debug!(shared.logger, "stop: cancelling handlers"; "server" => shared.name,
            "running" => pool.len());
        if !pool.kill(KILL_TIMEOUT) {
            warn!(shared.logger, "handlers still running after cancel";
                "server" => shared.name, "running" => pool.len());
        }
    }

    pub(crate) fn serve_forever(&self) -> Result<()> {
        let done = Arc::new(SyncFlag::new());
        // SIGINT/SIGTERM close the server (the wait below then ends and it is stopped);
        // installed before the server starts accepting, so that no signal that follows a
        // served connection can find the default action (terminate) still in place.
        let _signals = self
            .shared
            .opts
            .handle_signals
            .then(|| self.catch_signals())
            .flatten();
        let mut state = self.shared.state();
        if !state.started {
            if state.close_requested {
                // Closed from elsewhere after a start(): do not resurrect the server.
                drop(state);
                self.stop(None);
                return self.take_failure();
            }
            drop(state);
            self.start()?;
            state = self.shared.state();
        }
        state.serving = Some(done.clone());
        let stop_event = state.stop_event.clone();
        drop(state);
        // systemd Type=notify: ready once accepting (automatic when NOTIFY_SOCKET is set).
        crate::systemd::auto_notify(&self.shared.logger, true);
        match &self.shared.hooks.service_actions {
            Some(actions) => {
                while !stop_event.wait_timeout(self.shared.opts.poll_interval) {
                    actions();
                }
            }
            None => stop_event.wait(),
        }
        crate::systemd::auto_notify(&self.shared.logger, false);
        self.stop(None);
        self.shared.state().serving = None;
        done.fire();
        self.take_failure()
    }

    /// Close this server on SIGINT/SIGTERM while the guard lives.
    fn catch_signals(&self) -> Option<SignalGuard> {
        let weak = Arc::downgrade(&self.shared);
        let on_signal = Arc::new(move |signal: libc::c_int| {
            if let Some(shared) = weak.upgrade() {
                info!(shared.logger, "signal received, stopping"; "server" => shared.name,
                    "signal" => signal);
                shared.close(true);
            }
        });
        match SignalGuard::install(on_signal) {
            Ok(guard) => Some(guard),
            Err(err) => {
                warn!(self.shared.logger, "cannot install the SIGINT/SIGTERM handlers";
                    "server" => self.shared.name, "error" => %err);
                None
            }
        }
    }

    /// The accept loop's fatal error, if it closed the server, as `serve_forever`'s result.
    fn take_failure(&self) -> Result<()> {
        match self.shared.state().failure.take() {
            Some(err) => Err(Error::io(
                "the listening socket failed and the server was closed",
                err,
            )),
            None => Ok(()),
        }
    }

    pub(crate) fn shutdown(&self) {
        let serving = self.shared.state().serving.clone();
        self.close();
        if let Some(done) = serving {
            done.wait();
        }
    }

    pub(crate) fn handle_request(&self) -> Result<bool> {
        let bound = {
            let mut state = self.shared.state();
            if state.accept_loop.is_some() {
                return Err(Error::State(
                    "handle_request() cannot run while the server is accepting (started)",
                ));
            }
            self.shared.init_socket_locked(&mut state)?;
            state
                .bound
                .clone()
                .ok_or(Error::State("the server has no listening socket"))?
        };
        let flag = Arc::new(SyncFlag::new());
        let (b, f) = (bound.clone(), flag.clone());
        let mut buf = P::buffer(&self.shared.opts);
        let reader = may::go!(move || {
            let got = P::read(&b, &mut buf);
            f.fire();
            got
        });
        let arrived = match self.shared.opts.timeout {
            Some(timeout) => flag.wait_timeout(timeout),
            None => {
                flag.wait();
                true
            }
        };
        if !arrived {
            cancel(reader.coroutine());
        }
        let incoming = match reader.join() {
            // A connection that came just as the timeout passed is handled, not dropped.
            Ok(Ok(incoming)) => incoming,
            Ok(Err(err)) if arrived => return Err(Error::io("accept failed", err)),
            Err(_) if arrived => return Err(Error::State("accept was interrupted")),
            _ => {
                if let Some(hook) = &self.shared.hooks.handle_timeout {
                    hook();
                }
                return Ok(false);
            }
        };
        if !self.shared.verify(&P::peer(&incoming, &self.shared.ctx())) {
            return Ok(true);
        }
        let handler = self.shared.handler();
        // The handler (and a TLS handshake) get the server's handler stack, not the caller's.
        let shared = self.shared.clone();
        let mut builder = coroutine::Builder::new();
        if let Some(words) = self.shared.opts.stack_words {
            builder = builder.stack_size(words);
        }
        let worker = may::go!(builder, move || {
            P::serve(&*handler, incoming, &bound, &shared.extra, &shared.ctx())
        })
        .map_err(|err| Error::io("spawning the request handler", err))?;
        worker.wait();
        Ok(true)
    }
}

impl<P: Protocol> Control for BaseServer<P> {
    fn stop(&self, timeout: Option<Duration>) {
        BaseServer::stop(self, timeout);
    }
    fn close(&self) {
        BaseServer::close(self);
    }
    fn shutdown(&self) {
        BaseServer::shutdown(self);
    }
    fn started(&self) -> bool {
        BaseServer::started(self)
    }
    fn closed(&self) -> bool {
        BaseServer::closed(self)
    }
    fn address(&self) -> Option<Address> {
        BaseServer::address(self)
    }
}

/// What dropping a server does: stop it (gevent: `__exit__` calls `stop()`). During a panic
/// or a cancel, only close it, shut its connections down and cancel the handlers, without
/// blocking.
pub(crate) fn stop_on_drop<P: Protocol>(base: &BaseServer<P>) {
    if std::thread::panicking() {
        base.shared.close(false);
        P::shutdown_connections(&base.shared.extra);
        base.shared.pool.cancel_all();
    } else if base.started() || !base.closed() || !base.shared.pool.is_empty() {
        base.stop(None);
    }
}
