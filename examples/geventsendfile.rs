//! gevent's examples/geventsendfile.py: a cooperative `sendfile` — send with `sendfile(2)` as
//! long as the socket takes it, and on `EAGAIN` wait for writability (gevent's `wait_write`)
//! instead of blocking the thread. gevent's file only defines `gevent_sendfile` (and patches
//! py-sendfile with it); this port also serves a file with it: a StreamServer that sends the
//! file to each client, then closes. `Stream::sendfile` is this same loop, ready-made.
//!
//! ```text
//! cargo run --example geventsendfile                          # this file, on 127.0.0.1:16002
//! cargo run --example geventsendfile -- 127.0.0.1:0 /etc/hosts  # any port, any file
//! curl -s --http0.9 127.0.0.1:16002                           # or: nc 127.0.0.1 16002
//! ```

use std::fs::File;
use std::io::{ErrorKind, Result};

use may_gevent::{Address, Stream, StreamServer};

// gevent's (out_fd, in_fd, offset, count); returns (new offset, bytes sent) like py-sendfile
fn gevent_sendfile(out: &mut Stream, f: &File, offset: u64, count: usize) -> Result<(u64, usize)> {
    let mut total_sent = 0;
    while total_sent < count {
        match out.try_sendfile(f, offset + total_sent as u64, count - total_sent) {
            Ok(0) => break, // the file is shorter than `count`
            Ok(sent) => total_sent += sent,
            Err(err) if err.kind() == ErrorKind::WouldBlock => out.wait_writable()?,
            Err(err) => return Err(err),
        }
    }
    Ok((offset + total_sent as u64, total_sent))
}

fn main() -> may_gevent::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:16002".into());
    let default = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/geventsendfile.rs");
    let path: &'static str = args.next().map_or(default, |path| path.leak());
    let handle = move |mut socket: Stream, _: Address| -> Result<()> {
        let file = File::open(path)?;
        gevent_sendfile(&mut socket, &file, 0, file.metadata()?.len() as usize).map(drop)
    };
    let server = StreamServer::builder(address.as_str(), handle).build()?;
    server.init_socket()?;
    println!("Serving {path} on {}", server.address().expect("bound"));
    server.serve_forever()
}
