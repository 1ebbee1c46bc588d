//! gevent's examples/udp_client.py: send the command line as one datagram and print the
//! reply.
//!
//! ```text
//! cargo run --example udp_client -- hello world
//! ```
//!
//! It sends to 127.0.0.1:9001 as gevent's example does (whose docstring says 9000); set
//! `UDP_CLIENT_ADDRESS` to send elsewhere, e.g. `UDP_CLIENT_ADDRESS=127.0.0.1:9000` for the
//! `udp_server` example. As in gevent, the socket is connected: when nothing listens there,
//! the kernel's "port unreachable" fails the receive at once and the program exits with
//! status 1.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let address = std::env::var("UDP_CLIENT_ADDRESS").unwrap_or_else(|_| "127.0.0.1:9001".into());
    let message = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let run = || -> std::io::Result<()> {
        let sock = may::net::UdpSocket::bind("127.0.0.1:0")?;
        sock.connect(address.as_str())?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        println!("Sending {} bytes to {address}", message.len());
        sock.send(message.as_bytes())?;
        let mut buf = [0u8; 8192];
        let (n, from) = sock.recv_from(&mut buf)?;
        println!("{from}: got {}", py_bytes(&buf[..n]));
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("udp_client: {err}");
            ExitCode::from(1)
        }
    }
}

/// The bytes as Python's `repr` shows them (`b'...'`), as gevent's `%r` prints the reply.
fn py_bytes(data: &[u8]) -> String {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote}");
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if char::from(b) == quote => out.extend(['\\', quote]),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push(quote);
    out
}
