//! gevent's examples/unixsocket_client.py: one `GET /` over a Unix domain socket (to the
//! `unixsocket_server` example), printing the response.
//!
//! ```text
//! cargo run --example unixsocket_client                  # connects to ./socket
//! cargo run --example unixsocket_client -- /tmp/wsgi.sock
//! ```

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let sockname = std::env::args().nth(1).unwrap_or_else(|| "./socket".into());
    let response = UnixStream::connect(&sockname).and_then(|mut sock| {
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        sock.set_write_timeout(Some(Duration::from_secs(10)))?;
        sock.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut response = Vec::new();
        sock.read_to_end(&mut response)?;
        Ok(response)
    });
    match response {
        Ok(response) => {
            println!("{}", String::from_utf8_lossy(&response));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("unixsocket_client: {sockname}: {err}");
            ExitCode::from(1)
        }
    }
}
