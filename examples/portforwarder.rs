//! gevent's examples/portforwarder.py: forward every connection made to SOURCE to DEST.
//!
//! ```text
//! cargo run --example portforwarder -- 127.0.0.1:10011 127.0.0.1:10012
//! ```
//!
//! SIGTERM or SIGINT closes the listening socket; the connections already open keep being
//! forwarded and the process exits when the last one ends. A second signal exits at once.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::ExitCode;

use may_gevent::{Address, Stream, StreamServer};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

fn log(msg: &str) {
    eprintln!("{msg}");
}

/// Copy from `source` to `dest` until EOF, then half-close both directions as gevent does.
fn forward(mut source: Stream, mut dest: Stream) {
    let mut buf = [0u8; 8192];
    loop {
        match source.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if dest.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = source.shutdown(Shutdown::Read);
    let _ = dest.shutdown(Shutdown::Write);
}

/// Cancels the second pump if the handler itself is cancelled (server stop).
struct CancelOnDrop(Option<may::coroutine::JoinHandle<()>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(pump) = self.0.take() {
            if !pump.is_done() {
                #[allow(unsafe_code)]
                // SAFETY: cancelling a coroutine blocked in socket I/O; it only owns sockets.
                unsafe {
                    pump.coroutine().cancel()
                };
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, dest] = args.as_slice() else {
        eprintln!("Usage: portforwarder SOURCE:PORT DEST:PORT");
        return ExitCode::from(1);
    };
    let dest = match may_gevent::parse_address(dest) {
        Ok(dest) => dest,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(1);
        }
    };
    let handle = move |source: Stream, address: Address| {
        log(&format!("{address} accepted"));
        // gevent: create_connection(self.dest) (cooperative: resolves on the thread pool)
        let dest_sock = match may_gevent::create_connection(dest, None, None) {
            Ok(sock) => sock,
            Err(err) => {
                log(&format!("{address} failed to connect to {dest}: {err}"));
                return Ok(());
            }
        };
        let (source2, dest2) = (source.try_clone()?, dest_sock.try_clone()?);
        // if we return from this handler, the stream will be closed out from under us,
        // so wait for the second pump
        let mut other = CancelOnDrop(Some(may::go!(move || forward(dest2, source2))));
        forward(source, dest_sock);
        if let Some(pump) = other.0.take() {
            pump.wait();
        }
        log(&format!("{address} closed"));
        Ok::<(), std::io::Error>(())
    };
    let server = match StreamServer::builder(source.as_str(), handle).build() {
        Ok(server) => server,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(1);
        }
    };
    if let Err(err) = server.start() {
        eprintln!("{err}");
        return ExitCode::from(1);
    }
    let mut signals = Signals::new([SIGTERM, SIGINT]).expect("signal handlers");
    println!(
        "Starting port forwarder {} -> {dest}",
        server.address().expect("bound")
    );
    let _ = std::io::stdout().flush();
    if let Some(sig) = signals.forever().next() {
        log(&format!("Received signal {sig}; closing the listener"));
        server.close();
    }
    // A second signal aborts the connections still open.
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            log("Multiple signals received - aborting.");
            std::process::exit(1);
        }
    });
    server.pool().join(None);
    ExitCode::SUCCESS
}
