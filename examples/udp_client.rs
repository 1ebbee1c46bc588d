//! gevent's examples/udp_client.py: send the command line as one datagram and print the
//! reply.
//!
//! ```text
//! cargo run --example udp_client -- hello world
//! ```
//!
//! It sends to 127.0.0.1:9001 as gevent's example does (whose docstring says 9000); set
//! `UDP_CLIENT_ADDRESS` to send elsewhere, e.g. `UDP_CLIENT_ADDRESS=127.0.0.1:9000` for the
//! `udp_server` example.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let address = std::env::var("UDP_CLIENT_ADDRESS").unwrap_or_else(|_| "127.0.0.1:9001".into());
    let message = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let run = || -> std::io::Result<String> {
        let sock = may::net::UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        println!("Sending {} bytes to {address}", message.len());
        sock.send_to(message.as_bytes(), address.as_str())?;
        let mut buf = [0u8; 65_535];
        let (n, from) = sock.recv_from(&mut buf)?;
        Ok(format!(
            "{from}: got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ))
    };
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("udp_client: {err}");
            ExitCode::from(1)
        }
    }
}
