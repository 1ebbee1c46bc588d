//! Sorting accept errors the way gevent does (`BaseServer.fatal_errors`, `_do_read`).

use std::io;

/// What the accept loop does after `accept()`/`recvfrom()` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// The connection went away before it was accepted (or a signal interrupted the call):
    /// try again at once.
    Retry,
    /// A resource problem (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...): pause, doubling the pause.
    Backoff,
    /// The listening socket is unusable (EBADF, EINVAL, ENOTSOCK): close the server.
    Fatal,
}

/// Classify an accept error. gevent: `BaseServer.is_fatal_error` with
/// `fatal_errors = (EBADF, EINVAL, ENOTSOCK)`; everything else backs off.
pub(crate) fn classify(err: &io::Error) -> AcceptError {
    match err.raw_os_error() {
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK) => AcceptError::Fatal,
        Some(
            libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EINTR
            | libc::EAGAIN
            | libc::EPROTO
            | libc::EPERM
            | libc::ECONNREFUSED,
        ) => AcceptError::Retry,
        Some(_) => AcceptError::Backoff,
        None => match err.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut => AcceptError::Retry,
            _ => AcceptError::Backoff,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> AcceptError {
        classify(&io::Error::from_raw_os_error(code))
    }

    #[test]
    fn table() {
        assert_eq!(os(libc::EBADF), AcceptError::Fatal);
        assert_eq!(os(libc::EINVAL), AcceptError::Fatal);
        assert_eq!(os(libc::ENOTSOCK), AcceptError::Fatal);
        assert_eq!(os(libc::EMFILE), AcceptError::Backoff);
        assert_eq!(os(libc::ENFILE), AcceptError::Backoff);
        assert_eq!(os(libc::ENOBUFS), AcceptError::Backoff);
        assert_eq!(os(libc::ENOMEM), AcceptError::Backoff);
        assert_eq!(os(libc::ECONNABORTED), AcceptError::Retry);
        assert_eq!(os(libc::EINTR), AcceptError::Retry);
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::TimedOut)),
            AcceptError::Retry
        );
    }
}
