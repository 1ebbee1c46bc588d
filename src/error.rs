//! The crate's error type.

use std::fmt;
use std::io;

/// A boxed error from user code (handlers, applications).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`enum@Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors reported by the servers when they are configured, bound, started or served.
///
/// Errors that happen while serving a connection never surface here: they reach the
/// server's `handle_error` hook (gevent: `loop.handle_error`).
///
/// `Display` describes this level only; the cause (an `io::Error`, a TLS error) comes from
/// [`source()`](std::error::Error::source), as error reporters expect. `Debug` prints the
/// whole chain on one line, so `fn main() -> Result<(), may_gevent::Error>` ends with a
/// readable message such as `Error: cannot listen on 127.0.0.1:8088: Address already in use
/// (os error 98)`.
#[non_exhaustive]
pub enum Error {
    /// An address could not be parsed (gevent: `ValueError('Failed to parse address ...')`).
    InvalidAddress {
        /// The text that was given.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A configuration value or combination is not allowed
    /// (e.g. a backlog given together with an already bound socket, gevent's `TypeError`).
    InvalidConfig(String),
    /// Binding or listening on an address failed (e.g. the port is already in use).
    Bind {
        /// The address the server tried to bind.
        address: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Setting up TLS failed (unreadable or invalid certificate/key, key does not match).
    Tls {
        /// What was being loaded, usually a file name.
        context: String,
        /// The underlying error.
        source: BoxError,
    },
    /// The operation is not possible in the server's current state
    /// (e.g. `handle_request` while the accept loop runs, or `start` after `close`).
    State(&'static str),
    /// Any other I/O error, with what was being done.
    Io {
        /// What the server was doing.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the error is "address already in use".
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, Error::Bind { source, .. } if source.kind() == io::ErrorKind::AddrInUse)
    }

    /// True when binding failed for lack of permission (e.g. a port below 1024).
    pub fn is_permission_denied(&self) -> bool {
        self.io_error()
            .is_some_and(|err| err.kind() == io::ErrorKind::PermissionDenied)
    }

    /// True when an operating-system call timed out.
    pub fn is_timeout(&self) -> bool {
        self.io_error().is_some_and(|err| {
            matches!(
                err.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            )
        })
    }

    /// True for an address that could not be parsed.
    pub fn is_invalid_address(&self) -> bool {
        matches!(self, Error::InvalidAddress { .. })
    }

    /// True for a configuration that is not allowed.
    pub fn is_invalid_config(&self) -> bool {
        matches!(self, Error::InvalidConfig(_))
    }

    /// True for a TLS setup failure (certificate or key unreadable, invalid or mismatched).
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Tls { .. })
    }

    /// The operating system's error behind this one, if any.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidAddress { input, reason } => {
                write!(f, "failed to parse address {input:?}: {reason}")
            }
            Error::InvalidConfig(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Bind { address, .. } => write!(f, "cannot listen on {address}"),
            Error::Tls { context, .. } => write!(f, "tls setup failed for {context}"),
            Error::State(msg) => write!(f, "{msg}"),
            Error::Io { context, .. } => write!(f, "{context}"),
        }
    }
}

impl fmt::Debug for Error {
    /// The message and its causes, `: `-separated (what `main` prints for an `Err`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_chain(f, self)
    }
}

/// Writes `err` and its causes, `: `-separated: the `Debug` of the crate's errors.
pub(crate) fn write_chain(f: &mut fmt::Formatter<'_>, err: &dyn std::error::Error) -> fmt::Result {
    write!(f, "{err}")?;
    let mut source = err.source();
    while let Some(err) = source {
        write!(f, ": {err}")?;
        source = err.source();
    }
    Ok(())
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Tls { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Whether an I/O error means "the client went away" (not worth an error-log record).
pub(crate) fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Error {
        Error::io("i/o error", source)
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        match err {
            Error::Bind { source, .. } | Error::Io { source, .. } => source,
            other => io::Error::other(format!("{other:?}")),
        }
    }
}
