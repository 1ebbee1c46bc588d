//! gevent's examples/udp_client.py: send the command line as one datagram to
//! 127.0.0.1:9001 and print the reply.
//!
//! ```text
//! cargo run --example udp_client -- hello world
//! ```
//!
//! As in gevent the socket is connected: when nothing listens there, the kernel's "port
//! unreachable" fails the receive at once and the program exits with status 1 and the error
//! on standard error. `UDP_CLIENT_ADDRESS` sends elsewhere (e.g. `127.0.0.1:9000`, the
//! `udp_server` example).

use std::time::Duration;

fn main() -> std::io::Result<()> {
    let address = std::env::var("UDP_CLIENT_ADDRESS").unwrap_or_else(|_| "127.0.0.1:9001".into());
    let message = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let sock = may::net::UdpSocket::bind("127.0.0.1:0")?;
    sock.connect(&address)?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    println!("Sending {} bytes to {address}", message.len());
    sock.send(message.as_bytes())?;
    let mut data = [0u8; 8192];
    let (n, address) = sock.recv_from(&mut data)?;
    // gevent prints the reply with %r: b'...'
    println!("{address}: got b'{}'", data[..n].escape_ascii());
    Ok(())
}
