//! `Group`: the unbounded pool (gevent: `gevent.pool.Group`).

use std::ops::Deref;

use super::Pool;

/// A group of coroutines without a limit: it only tracks its members, so that they can be
/// joined, killed, iterated over or mapped over. gevent: `gevent.pool.Group`.
///
/// A `Group` is a [`Pool::unbounded`] under gevent's name: it dereferences to [`Pool`], so
/// every `Pool` method ([`spawn`](Pool::spawn), [`join`](Pool::join), [`kill`](Pool::kill),
/// [`map`](Pool::map), [`imap_unordered`](Pool::imap_unordered)…) is a `Group` method, and
/// `spawn` never blocks. Cloning gives another handle to the same group.
///
/// ```
/// use may_gevent::Group;
/// use std::time::Duration;
///
/// let group = Group::new();
/// let gate = std::sync::Arc::new(may::sync::SyncFlag::new());
/// for _ in 0..3 {
///     let gate = gate.clone();
///     group.spawn(move || gate.wait());
/// }
/// assert_eq!(group.len(), 3);
/// gate.fire();
/// assert!(group.join(Duration::from_secs(5)));
/// assert_eq!(group.map(|n: u32| n + 1, vec![1, 2, 3]), Ok(vec![2, 3, 4]));
/// ```
#[derive(Clone, Debug)]
pub struct Group(Pool);

impl Group {
    /// An empty group. gevent: `Group()`.
    pub fn new() -> Group {
        Group(Pool::unbounded())
    }

    /// The group as the [`Pool`] it is (for a server's `spawn`, which accepts a `Pool`).
    pub fn into_pool(self) -> Pool {
        self.0
    }
}

impl Default for Group {
    fn default() -> Group {
        Group::new()
    }
}

impl Deref for Group {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        &self.0
    }
}

impl From<Group> for Pool {
    fn from(group: Group) -> Pool {
        group.0
    }
}
