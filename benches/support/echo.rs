//! Echo servers for the benchmarks, each started in a child process by [`ROLES`].
//!
//! Every server echoes what it reads through the same `echo` loop (a 256-byte buffer on the
//! coroutine stack, blocking reads and writes), so the only difference between them is the
//! machinery around it: raw may (a `TcpListener` accept loop spawning one coroutine per
//! connection) or `StreamServer` with the default spawn or a `Pool`.

use std::io::{self, Read, Write};

use may_gevent::{Address, Pool, Stream, StreamServer};

use super::{Role, Running};

/// Role names.
pub(crate) const RAW_MAY: &str = "raw-may";
pub(crate) const STREAM_DEFAULT: &str = "StreamServer";
pub(crate) const STREAM_POOL: &str = "StreamServer+Pool(10000)";

/// Every echo server role, for [`super::serve_if_child`].
pub(crate) const ROLES: &[Role] = &[
    (RAW_MAY, raw_may),
    (STREAM_DEFAULT, stream_default),
    (STREAM_POOL, stream_pool),
];

/// The handler loop every server runs: echo until EOF or error. A reset by the client (the
/// churn load closes with one) is a normal end, so no server reports it as an error.
fn echo<S: Read + Write>(mut sock: S) -> io::Result<()> {
    let mut buf = [0u8; 256];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        };
        sock.write_all(&buf[..n])?;
    }
}

/// No server machinery: accept loop + one coroutine per connection.
fn raw_may() -> Running {
    let listener = may::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local_addr").port();
    let accept = may::go!(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_nodelay(true);
            may::go!(move || {
                let _ = echo(conn);
            });
        }
    });
    Running {
        port,
        keep: Box::new(accept),
    }
}

fn stream_server(pool: Option<Pool>) -> Running {
    let handler = |sock: Stream, _addr: Address| {
        sock.set_nodelay(true)?;
        echo(sock)
    };
    let mut builder = StreamServer::builder("127.0.0.1:0", handler).logger(None);
    if let Some(pool) = pool {
        builder = builder.spawn(pool);
    }
    let server = builder.build().expect("build");
    server.start().expect("start");
    let port = server.server_port().expect("bound port");
    Running {
        port,
        keep: Box::new(server),
    }
}

fn stream_default() -> Running {
    stream_server(None)
}

fn stream_pool() -> Running {
    stream_server(Some(Pool::new(10_000)))
}

/// Parser for echoed fixed-size messages: how many whole `size`-byte echoes are buffered.
pub(crate) fn fixed_size(size: usize) -> impl Fn(&[u8]) -> (usize, usize) + Send + Sync {
    move |buf: &[u8]| {
        let n = buf.len() / size;
        (n, n * size)
    }
}
