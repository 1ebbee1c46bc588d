//! gevent's examples/unixsocket_client.py: one `GET /` over the `unixsocket_server`
//! example's Unix domain socket, printing the size of the response and the response.
//!
//! ```text
//! cargo run --example unixsocket_client
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

fn main() -> std::io::Result<()> {
    let mut s = UnixStream::connect("./unixsocket_server.sock")?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut data = [0u8; 1024];
    let n = s.read(&mut data)?;
    println!("received {n} bytes");
    println!("b'{}'", data[..n].escape_ascii());
    Ok(())
}
