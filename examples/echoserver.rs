//! gevent's examples/echoserver.py: a StreamServer on 127.0.0.1:16000 that greets each
//! client, echoes every line, and closes the connection on `quit`.
//!
//! ```text
//! cargo run --example echoserver            # then: telnet 127.0.0.1 16000
//! cargo run --example echoserver -- 127.0.0.1:0   # any free port
//! ```

use std::io::{BufRead, BufReader, Write};

use may_gevent::{Address, Stream, StreamServer};

// this handler will be run for each incoming connection in a dedicated coroutine
fn echo(socket: Stream, address: Address) -> std::io::Result<()> {
    println!("New connection from {address}");
    let mut writer = socket.try_clone()?;
    writer.write_all(b"Welcome to the echo server! Type quit to exit.\r\n")?;
    // using a buffered reader, as gevent's example uses makefile()
    let mut rfileobj = BufReader::new(socket);
    let mut line = Vec::new();
    loop {
        line.clear();
        if rfileobj.read_until(b'\n', &mut line)? == 0 {
            println!("client disconnected");
            break;
        }
        if line.trim_ascii().eq_ignore_ascii_case(b"quit") {
            println!("client quit");
            break;
        }
        writer.write_all(&line)?;
        println!("echoed {:?}", String::from_utf8_lossy(&line));
    }
    Ok(())
}

fn main() -> Result<(), may_gevent::Error> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:16000".into());
    // to make the server use SSL, pass certfile and keyfile arguments to the builder
    let server = StreamServer::builder(address.as_str(), echo).build()?;
    server.init_socket()?;
    // to start the server asynchronously, use its start() method;
    // we use blocking serve_forever() here because we have no other jobs
    println!(
        "Starting echo server on {}",
        server.address().expect("bound")
    );
    server.serve_forever()
}
