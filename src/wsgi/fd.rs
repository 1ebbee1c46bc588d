//! The few operations on a may_minihttp connection that need `unsafe`: may_minihttp hands a
//! service its connection's file descriptor number only (`new_service(id)`, id = fd), and wants
//! response headers as `&'static str`.
//!
//! Each function states its contract; each caller says why it holds. `tests/wsgi_minihttp*.rs`
//! exercise every one of them over real sockets (headers that differ on every response, stop
//! with idle, busy and half-read connections, `Connection: close`).

use std::net::{Shutdown, SocketAddr};
use std::os::fd::{BorrowedFd, RawFd};

use socket2::SockRef;

/// Shuts down `how` of the socket `fd`; errors (e.g. already shut down) are ignored.
///
/// # Safety
/// `fd` must be an open socket for the duration of the call (a number that was closed and
/// reused would shut down someone else's socket).
#[allow(unsafe_code)]
pub(super) unsafe fn shutdown(fd: RawFd, how: Shutdown) {
    // SAFETY: the caller guarantees `fd` is open during this call; the borrow ends with it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = SockRef::from(&borrowed).shutdown(how);
}

/// The peer address of the socket `fd`, if it has an IP one.
///
/// # Safety
/// As for [`shutdown`].
#[allow(unsafe_code)]
pub(super) unsafe fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: the caller guarantees `fd` is open during this call; the borrow ends with it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    SockRef::from(&borrowed).peer_addr().ok()?.as_socket()
}

/// Sets `TCP_NODELAY` on the socket `fd` (one write per batch of responses: no Nagle delay
/// behind a previous small write).
///
/// # Safety
/// As for [`shutdown`].
#[allow(unsafe_code)]
pub(super) unsafe fn set_nodelay(fd: RawFd) {
    // SAFETY: the caller guarantees `fd` is open during this call; the borrow ends with it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = SockRef::from(&borrowed).set_tcp_nodelay(true);
}

/// `text` with its lifetime extended to `'static`, for may_minihttp's
/// `Response::status_code(_, &'static str)` and `Response::header(&'static str)`.
///
/// # Safety
/// The bytes behind `text` must stay allocated and unmodified for as long as the returned
/// reference is used: here, until may_minihttp has encoded the response the reference was
/// given to. See the caller.
#[allow(unsafe_code)]
pub(super) unsafe fn until_encoded(text: &str) -> &'static str {
    // SAFETY: the caller guarantees the referent outlives every use of the result.
    unsafe { &*(text as *const str) }
}
