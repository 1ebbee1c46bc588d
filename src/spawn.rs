//! How a server runs its handlers (gevent: the `spawn` argument of `BaseServer`).

use crate::pool::Pool;

/// The spawn strategy of a server. gevent: `spawn='default' | Pool | int | None`.
///
/// Whatever the strategy, the server tracks its handlers so that
/// [`stop`](crate::StreamServer::stop) can wait for them and then cancel them (gevent only does
/// this with a pool).
#[derive(Debug, Clone, Default)]
pub enum Spawn {
    /// One new coroutine per connection, no limit. gevent: `spawn='default'`.
    #[default]
    Default,
    /// Run handlers in this pool; while it is full, no connection is accepted (clients wait
    /// in the kernel backlog). gevent: `spawn=Pool(n)`; an integer is `Pool::new(n)`.
    Pool(Pool),
    /// Run each handler to completion before accepting the next connection: handlers run
    /// one at a time (in a pool of one), and nothing is accepted while one runs.
    /// gevent: `spawn=None` — but here the handler may block.
    Inline,
}

impl Spawn {
    /// The pool that tracks the handlers for this strategy.
    pub(crate) fn into_pool(self) -> Pool {
        match self {
            Spawn::Default => Pool::unbounded(),
            Spawn::Pool(pool) => pool,
            Spawn::Inline => Pool::new(1),
        }
    }
}

impl From<Pool> for Spawn {
    fn from(pool: Pool) -> Spawn {
        Spawn::Pool(pool)
    }
}

impl From<&Pool> for Spawn {
    fn from(pool: &Pool) -> Spawn {
        Spawn::Pool(pool.clone())
    }
}

impl From<usize> for Spawn {
    /// gevent: an integer `spawn` is a shortcut for `Pool(n)`.
    fn from(size: usize) -> Spawn {
        Spawn::Pool(Pool::new(size))
    }
}

impl From<crate::Group> for Spawn {
    /// A [`Group`](crate::Group) is an unbounded pool (gevent rejects a `Group`, #442).
    fn from(group: crate::Group) -> Spawn {
        Spawn::Pool(group.into_pool())
    }
}

impl From<&crate::Group> for Spawn {
    fn from(group: &crate::Group) -> Spawn {
        Spawn::Pool(Pool::clone(group))
    }
}
