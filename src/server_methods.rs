//! The lifecycle every server type has (gevent: `gevent.baseserver.BaseServer`; Python:
//! `socketserver.BaseServer`), written out on each server's own type: `start`,
//! `serve_forever`, `stop(timeout)`, `close`, `shutdown`, `handle_request`, the bound address,
//! and the `Drop` that stops a started server.

/// Inherent lifecycle methods for a server type with a `base: BaseServer` field.
macro_rules! lifecycle_methods {
    ($ty:ident) => {
        impl $ty {
            /// Start accepting connections (or receiving datagrams) in the background and
            /// return at once. Binds the address first if needed; calling it on a started
            /// server does nothing. gevent: `BaseServer.start`.
            ///
            /// # Errors
            /// Binding failed ([`Error::Bind`](crate::Error::Bind), e.g. the port is in use),
            /// or the server was closed and was built on a socket, which is gone with it.
            pub fn start(&self) -> $crate::Result<()> {
                self.base.start()
            }

            /// Start the server if needed and block until it is closed — by `close()`,
            /// `stop()`, `shutdown()`, a [`ServerHandle`](crate::ServerHandle), SIGINT or
            /// SIGTERM, or a fatal accept error — then `stop()` it with `stop_timeout`
            /// (default 1 s) and return. gevent: `BaseServer.serve_forever`; Python:
            /// `serve_forever(poll_interval)`.
            ///
            /// While it runs, SIGINT (Ctrl-C) and SIGTERM (a process manager's stop) stop
            /// the server gracefully and `serve_forever` then returns `Ok(())`, as a gevent
            /// program run from a terminal or under systemd behaves; the signal handlers
            /// that were installed before are restored when it returns. Turn this off with
            /// the builder's `handle_signals(false)` when the program manages signals
            /// itself. A server that was started and then closed (e.g. by another thread
            /// just before this call) is not restarted: this returns at once. While it
            /// waits it calls the `service_actions` hook every `poll_interval`.
            ///
            /// # Errors
            /// Starting failed (e.g. the port is in use), or the listening socket failed
            /// while serving ([`Error::Io`](crate::Error::Io) with the accept error as its
            /// source); the server is closed and stopped in both cases.
            pub fn serve_forever(&self) -> $crate::Result<()> {
                self.base.serve_forever()
            }

            /// Stop the server: close it, let the running handlers finish, and end those
            /// that do not. gevent: `BaseServer.stop(timeout)` — for every spawn strategy,
            /// not only for a pool, and gently:
            ///
            /// 1. [`close`](Self::close): stop accepting; new connects are refused.
            /// 2. Wait up to `timeout` (`None`: the server's `stop_timeout`, default 1 s)
            ///    for the handlers to return.
            /// 3. Shut down the socket of every connection still being served: a handler
            ///    blocked in `read` gets end-of-file, one blocked in `write` an error, and it
            ///    leaves through its normal path. Then wait up to
            ///    [`STOP_GRACE`](crate::STOP_GRACE) (250 ms) more.
            /// 4. Cancel what is still running, one handler at a time, and wait up to
            ///    [`KILL_TIMEOUT`](crate::KILL_TIMEOUT) (1 s) for them to unwind; see the
            ///    crate docs, "What a `Drop` may do when a handler is cancelled". Handlers
            ///    still running after that are logged at WARN and left alone.
            ///
            /// Called from one of this server's own handlers it would wait for that handler
            /// too: there, call [`close`](Self::close), or `stop` from a new coroutine.
            pub fn stop(&self, timeout: impl Into<Option<std::time::Duration>>) {
                self.base.stop(timeout)
            }

            /// Stop accepting and close the listening socket: new connects are refused at
            /// once. Running handlers are not touched (see [`stop`](Self::stop)). Also makes
            /// `serve_forever` return. gevent: `BaseServer.close`.
            pub fn close(&self) {
                self.base.close()
            }

            /// Ask `serve_forever` to return and wait until it has (it stops the server on
            /// its way out). Without a running `serve_forever` this closes the server.
            /// Python: `socketserver.BaseServer.shutdown`.
            pub fn shutdown(&self) {
                self.base.shutdown()
            }

            /// True between `start()` and `close()`/`stop()`. gevent: `BaseServer.started`.
            pub fn started(&self) -> bool {
                self.base.started()
            }

            /// True when the server has no listening socket (before the first `start()` of
            /// a server built on an address, and after `close()`). gevent:
            /// `BaseServer.closed`.
            pub fn closed(&self) -> bool {
                self.base.closed()
            }

            /// Resume accepting after [`stop_accepting`](Self::stop_accepting). Does nothing
            /// if the server is not started. gevent: `BaseServer.start_accepting`.
            ///
            /// # Errors
            /// The accept coroutine could not be spawned.
            pub fn start_accepting(&self) -> $crate::Result<()> {
                self.base.start_accepting()
            }

            /// Stop accepting, keeping the listening socket open: new clients wait in the
            /// backlog. Running handlers are not touched. gevent:
            /// `BaseServer.stop_accepting`.
            pub fn stop_accepting(&self) {
                self.base.stop_accepting()
            }

            /// Bind the listener now if it is not bound yet (normally done by `start()`),
            /// so that [`address`](Self::address) knows the real port. gevent:
            /// `BaseServer.init_socket`.
            ///
            /// # Errors
            /// The address cannot be bound (e.g. [`Error::Bind`](crate::Error::Bind) when
            /// the port is in use).
            pub fn init_socket(&self) -> $crate::Result<()> {
                self.base.init_socket()
            }

            /// Accept and handle exactly one connection (or datagram), blocking the calling
            /// coroutine or thread until it is handled, waiting at most the server's
            /// `timeout`; if nothing came, call the `handle_timeout` hook. Returns true when
            /// a request was handled. Python: `socketserver.BaseServer.handle_request`.
            ///
            /// # Errors
            /// The server's accept loop is running ([`Error::State`](crate::Error::State)),
            /// binding failed, or accept failed.
            pub fn handle_request(&self) -> $crate::Result<bool> {
                self.base.handle_request()
            }

            /// The address the server listens on: once bound, the real one (after binding
            /// port 0, the port the system chose); before that, the configured one.
            /// gevent: `BaseServer.address`.
            pub fn address(&self) -> Option<$crate::Address> {
                self.base.address()
            }

            /// The IP address and port the server listens on (`None` for a Unix socket).
            /// Same rules as [`address`](Self::address).
            pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
                self.base.address().and_then(|address| address.as_inet())
            }

            /// Python: `socketserver.BaseServer.server_address`; same as
            /// [`address`](Self::address).
            pub fn server_address(&self) -> Option<$crate::Address> {
                self.base.address()
            }

            /// The IP the server listens on, as text. gevent: `BaseServer.server_host`.
            pub fn server_host(&self) -> Option<String> {
                self.base.address().and_then(|address| address.host())
            }

            /// The port the server listens on. gevent: `BaseServer.server_port`.
            pub fn server_port(&self) -> Option<u16> {
                self.base.address().and_then(|address| address.port())
            }

            /// The listening socket's file descriptor, once bound. Python:
            /// `socketserver.BaseServer.fileno`.
            pub fn fileno(&self) -> Option<std::os::fd::RawFd> {
                self.base.fileno()
            }

            /// The pool that runs (and tracks) the handlers.
            pub fn pool(&self) -> &$crate::Pool {
                self.base.pool()
            }

            /// The logger the server reports to.
            pub fn logger(&self) -> &slog::Logger {
                self.base.logger()
            }

            /// A cloneable, `Send` handle that stops or closes this server from another
            /// thread, coroutine or signal-handling thread. Dropping a handle does nothing.
            pub fn handle(&self) -> $crate::ServerHandle {
                $crate::ServerHandle::new(std::sync::Arc::new(self.base.clone()))
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.base, f)
            }
        }

        impl Drop for $ty {
            /// Stops the server (gevent: leaving its `with` block calls `stop()`): blocks
            /// up to the `stop` sequence's bound when handlers are running. During a panic
            /// or a cancel it only closes the server, shuts its connections down and cancels
            /// its handlers, without waiting. [`ServerHandle`](crate::ServerHandle)s stay
            /// usable but the server is closed.
            fn drop(&mut self) {
                $crate::base_server::stop_on_drop(&self.base);
            }
        }
    };
}
pub(crate) use lifecycle_methods;
