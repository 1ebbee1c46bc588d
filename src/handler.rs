//! Handler traits and socketserver-style hooks (gevent: the `handle` argument;
//! socketserver: `verify_request`, `handle_error`, `service_actions`, `handle_timeout`).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::address::Address;
use crate::datagram_socket::DatagramSocket;
use crate::error::BoxError;
use crate::stream::Stream;

/// What a handler returns: `Ok(())`, or an error that the server reports through its
/// `handle_error` hook.
pub type HandlerResult = Result<(), BoxError>;

/// A stream (TCP/Unix/TLS) connection handler. gevent: `handle(socket, address)`.
///
/// Runs in its own coroutine (or in the pool's), so blocking calls are fine. When it returns,
/// the server closes the connection. Implemented for closures `Fn(Stream, Address)` returning
/// `()` or `Result<(), E>`:
///
/// ```
/// use may_gevent::{Address, Stream};
/// use std::io::Write;
/// let handler = |mut sock: Stream, addr: Address| -> std::io::Result<()> {
///     writeln!(sock, "hello {addr}")
/// };
/// # fn takes<H: may_gevent::StreamHandler>(_: H) {}
/// # takes(handler);
/// ```
pub trait StreamHandler: Send + Sync + 'static {
    /// Serve one connection.
    fn handle(&self, stream: Stream, address: Address) -> HandlerResult;
}

/// A datagram handler. gevent: `DatagramServer.handle(data, address)`.
///
/// Called once per datagram, each in its own coroutine (or per the server's spawn strategy).
/// Reply with `socket.sendto(..)` (gevent: `self.socket.sendto`).
pub trait DatagramHandler: Send + Sync + 'static {
    /// Handle one datagram `data` from `address`.
    fn handle(&self, data: Vec<u8>, address: SocketAddr, socket: &DatagramSocket) -> HandlerResult;
}

/// The return types a handler closure may have: `()` or `Result<(), E>`.
pub trait IntoHandlerResult {
    /// Convert into a [`HandlerResult`].
    fn into_handler_result(self) -> HandlerResult;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> HandlerResult {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> HandlerResult {
        self.map_err(Into::into)
    }
}

impl<F, R> StreamHandler for F
where
    F: Fn(Stream, Address) -> R + Send + Sync + 'static,
    R: IntoHandlerResult,
{
    fn handle(&self, stream: Stream, address: Address) -> HandlerResult {
        self(stream, address).into_handler_result()
    }
}

impl<F, R> DatagramHandler for F
where
    F: Fn(Vec<u8>, SocketAddr, &DatagramSocket) -> R + Send + Sync + 'static,
    R: IntoHandlerResult,
{
    fn handle(&self, data: Vec<u8>, address: SocketAddr, socket: &DatagramSocket) -> HandlerResult {
        self(data, address, socket).into_handler_result()
    }
}

/// Why a handler failed, as given to the `handle_error` hook.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandlerError {
    /// The handler returned `Err`.
    Error(BoxError),
    /// The handler panicked; the panic message.
    Panic(String),
}

impl HandlerError {
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> HandlerError {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_owned()
        };
        HandlerError::Panic(msg)
    }
}

impl HandlerError {
    /// True when the handler failed because the client went away: an I/O error (anywhere in
    /// the error's `source()` chain) of kind `ConnectionReset`, `BrokenPipe`,
    /// `ConnectionAborted`, `NotConnected` or `UnexpectedEof`. Servers log these at DEBUG
    /// level, not ERROR.
    pub fn is_disconnect(&self) -> bool {
        let HandlerError::Error(err) = self else {
            return false;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
        while let Some(err) = next {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return crate::error::is_disconnect(io);
            }
            next = err.source();
        }
        false
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Error(err) => write!(f, "{err}"),
            HandlerError::Panic(msg) => write!(f, "handler panicked: {msg}"),
        }
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandlerError::Error(err) => Some(err.as_ref()),
            HandlerError::Panic(_) => None,
        }
    }
}

pub(crate) type VerifyHook = Arc<dyn Fn(&Address) -> bool + Send + Sync>;
pub(crate) type ErrorHook = Arc<dyn Fn(&HandlerError, &Address) + Send + Sync>;
pub(crate) type ActionHook = Arc<dyn Fn() + Send + Sync>;

/// The socketserver hooks a server was built with.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) verify_request: Option<VerifyHook>,
    pub(crate) handle_error: Option<ErrorHook>,
    pub(crate) service_actions: Option<ActionHook>,
    pub(crate) handle_timeout: Option<ActionHook>,
}
