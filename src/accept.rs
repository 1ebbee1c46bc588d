//! The accept loop (gevent: `BaseServer._do_read`): accept or receive, check, hand over to
//! a handler coroutine, back off on resource errors, close the server on a fatal one.

use std::sync::Arc;

use may::coroutine;
use slog::{debug, error, warn};

use crate::accept_error::{classify, AcceptError};
use crate::backoff::Backoff;
use crate::pool::Permit;
use crate::protocol::Protocol;
use crate::shared::Shared;

/// gevent `handle_and_close_when_done`: run the handler for one connection or datagram in a
/// coroutine of the server's pool.
pub(crate) fn do_handle<P: Protocol>(
    shared: &Arc<Shared<P>>,
    socket: &Arc<P::Socket>,
    incoming: P::Incoming,
    permit: Permit,
) {
    let handler = shared.handler();
    let (s, b) = (shared.clone(), socket.clone());
    let spawned = shared
        .pool
        .spawn_with(permit, shared.opts.stack_words, move || {
            P::serve(&*handler, incoming, &b, &s.extra, &s.ctx());
        });
    if let Err(err) = spawned {
        // gevent test_error_in_spawn: the connection is closed (dropped with the closure).
        error!(shared.logger, "cannot spawn a handler"; "server" => shared.name, "error" => %err);
        coroutine::sleep(shared.opts.min_delay);
    }
}

/// The accept loop, in its own coroutine, until the server closes.
pub(crate) fn accept_loop<P: Protocol>(shared: Arc<Shared<P>>, socket: Arc<P::Socket>) {
    let opts = &shared.opts;
    let mut backoff = Backoff::new(opts.min_delay, opts.max_delay);
    let mut buf = P::buffer(opts);
    let mut streak = 0usize;
    loop {
        // While the pool is full this blocks: nothing is accepted (gevent: stop_accepting()
        // until a slot frees).
        let permit = shared.pool.acquire();
        match P::read(&socket, &mut buf) {
            Ok(incoming) => {
                backoff.reset();
                if shared.verify(&P::peer(&incoming, &shared.ctx())) {
                    do_handle(&shared, &socket, incoming, permit);
                } else {
                    // socketserver: verify_request false -> close without handling.
                    drop(incoming);
                }
                streak += 1;
                if streak >= opts.max_accept {
                    streak = 0;
                    coroutine::yield_now();
                }
            }
            Err(err) => {
                drop(permit);
                streak = 0;
                match classify(&err) {
                    AcceptError::Retry => {
                        debug!(shared.logger, "accept interrupted"; "error" => %err);
                    }
                    AcceptError::Fatal => {
                        {
                            let mut state = shared.state();
                            if !state.started {
                                return; // we are being closed: shutdown() woke the accept
                            }
                            error!(shared.logger, "the listening socket failed, closing the server";
                                "server" => shared.name, "error" => %err);
                            state.failure = Some(err);
                        }
                        shared.close(false);
                        return;
                    }
                    AcceptError::Backoff => {
                        let pause = backoff.fail();
                        warn!(shared.logger, "accept failed, pausing";
                            "server" => shared.name, "error" => %err,
                            "pause_ms" => pause.as_millis() as u64);
                        coroutine::sleep(pause);
                    }
                }
            }
        }
    }
}
