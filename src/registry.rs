//! The live connections of a stream server, so that `stop()` can end the handlers' I/O the
//! gentle way (shut their sockets down) before it resorts to cancelling them.

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The sockets of the connections being served. Each entry holds its own duplicate of the
/// connection's descriptor, so a shutdown can never reach an unrelated socket that reused the
/// number after the handler closed its stream.
#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    live: Mutex<HashMap<u64, OwnedFd>>,
}

/// A connection's entry in a [`Registry`], carried by its [`Stream`](crate::Stream):
/// dropping it (with the stream) removes the entry and closes the duplicate.
pub(crate) struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, OwnedFd>> {
        // Single inserts and removals: a panic cannot leave the map half updated.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Track the socket behind `fd`. `None` when the descriptor cannot be duplicated (out of
    /// descriptors): the connection is then served untracked, and `stop()` can only cancel it.
    pub(crate) fn register(self: &Arc<Registry>, fd: BorrowedFd<'_>) -> Option<Registration> {
        let dup = fd.try_clone_to_owned().ok()?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, dup);
        Some(Registration {
            registry: self.clone(),
            id,
        })
    }

    /// Shut down both directions of every tracked socket: a handler blocked in a read gets
    /// end-of-file, one blocked in a write an error, and each can leave through its normal
    /// path. Returns how many sockets were shut down.
    pub(crate) fn shutdown_all(&self) -> usize {
        let live = self.lock();
        for fd in live.values() {
            // Already shut down or reset by the peer: nothing more to do for it.
            let _ = socket2::SockRef::from(fd).shutdown(Shutdown::Both);
        }
        live.len()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Runs during a cancel's unwinding too: a std mutex held for a moment and a close(2),
        // no may I/O and no may lock. The duplicate is closed outside the lock.
        let dup = self.registry.lock().remove(&self.id);
        drop(dup);
    }
}
