//! gevent's examples/udp_server.py: a DatagramServer on :9000 that answers every datagram
//! with `Received N bytes`.
//!
//! ```text
//! cargo run --example udp_server              # then: cargo run --example udp_client -- hello
//! cargo run --example udp_server -- 127.0.0.1:0
//! ```

use std::net::SocketAddr;

use may_gevent::{DatagramServer, DatagramSocket};

fn handle(data: Vec<u8>, address: SocketAddr, socket: &DatagramSocket) -> std::io::Result<()> {
    println!("{address}: got {:?}", String::from_utf8_lossy(&data));
    socket.sendto(format!("Received {} bytes", data.len()).as_bytes(), address)?;
    Ok(())
}

fn main() -> Result<(), may_gevent::Error> {
    let address = std::env::args().nth(1).unwrap_or_else(|| ":9000".into());
    let server = DatagramServer::builder(address.as_str(), handle).build()?;
    server.init_socket()?;
    println!(
        "Receiving datagrams on {}",
        server.address().expect("bound")
    );
    server.serve_forever()
}
