//! The live connections of a stream server, so that `stop()` can end the handlers' I/O the
//! gentle way (shut their sockets down) before it resorts to cancelling them.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The sockets of the connections being served.
///
/// An entry must never outlive its socket: a shutdown could then reach an unrelated socket
/// that reused the number. Two ways to hold one:
/// - the socket's own descriptor ([`Registry::register`]), for a registration that the
///   connection's [`Stream`](crate::Stream) carries from the start: its `registration` field
///   is dropped before its socket (field order), so the entry always goes first. One
///   descriptor per connection, as in gevent.
/// - a duplicate ([`Registry::register_dup`]), for a connection whose socket may close before
///   the registration reaches its stream (a failed TLS handshake closes it inside the TLS
///   library).
#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    live: Mutex<HashMap<u64, Held>>,
}

enum Held {
    /// The socket's own descriptor, open while the entry exists.
    Own(RawFd),
    /// A duplicate, closed with the entry.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Dup(OwnedFd),
}

impl Held {
    fn fd(&self) -> RawFd {
        match self {
            Held::Own(fd) => *fd,
            Held::Dup(fd) => fd.as_raw_fd(),
        }
    }
}

/// A connection's entry in a [`Registry`], carried by its [`Stream`](crate::Stream):
/// dropping it (with the stream) removes the entry and closes the duplicate, if any.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Held>> {
        // Single inserts and removals: a panic cannot leave the map half updated.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(self: &Arc<Registry>, held: Held) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, held);
        Registration {
            registry: self.clone(),
            id,
        }
    }

    /// Track the socket behind `fd` by its own descriptor. The registration must go into the
    /// connection's `Stream` before anything can close the socket (see [`Registry`]).
    pub(crate) fn register(self: &Arc<Registry>, fd: BorrowedFd<'_>) -> Registration {
        self.insert(Held::Own(fd.as_raw_fd()))
    }

    /// Track the socket behind `fd` through a duplicate of the descriptor, for a socket that
    /// may close before the registration reaches its stream. `None` when the descriptor cannot
    /// be duplicated (out of descriptors): the connection is then served untracked, and
    /// `stop()` can only cancel it.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn register_dup(self: &Arc<Registry>, fd: BorrowedFd<'_>) -> Option<Registration> {
        let dup = fd.try_clone_to_owned().ok()?;
        Some(self.insert(Held::Dup(dup)))
    }

    /// Shut down both directions of every tracked socket: a handler blocked in a read gets
    /// end-of-file, one blocked in a write an error, and each can leave through its normal
    /// path. Returns how many sockets were shut down.
    pub(crate) fn shutdown_all(&self) -> usize {
        let live = self.lock();
        for held in live.values() {
            #[allow(unsafe_code)]
            // SAFETY: the descriptor is open while its entry exists, and the entry cannot go
            // while we hold the lock: a duplicate is closed only after its entry is removed,
            // and a connection's own descriptor only after its stream has dropped the
            // registration (see `Registry`).
            let fd = unsafe { BorrowedFd::borrow_raw(held.fd()) };
            // Already shut down or reset by the peer: nothing more to do for it.
            let _ = socket2::SockRef::from(&fd).shutdown(Shutdown::Both);
        }
        live.len()
    }

    /// How many connections are tracked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Runs during a cancel's unwinding too: a std mutex held for a moment and a close(2),
        // no may I/O and no may lock. A duplicate is closed outside the lock.
        let held = self.registry.lock().remove(&self.id);
        drop(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn entries_go_with_their_registrations() {
        let registry = Arc::new(Registry::default());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let own = registry.register(a.as_fd());
        let dup = registry.register_dup(a.as_fd()).expect("dup");
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.shutdown_all(), 2);
        drop(own);
        drop(dup);
        assert_eq!(registry.len(), 0);
    }
}
