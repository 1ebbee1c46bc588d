//! The classic gevent chat server: a `StreamServer(('127.0.0.1', 16001), handle,
//! spawn=Pool(1000))` whose handler keeps every client's socket in a shared dict, calls
//! `sock.sendall()` on the *other* clients' sockets for each line it reads, and removes itself
//! in a `finally:`. Each client gets a welcome line; every line it sends reaches all other
//! clients as `PEER: line`; when it leaves, they get `PEER left`.
//!
//! ```text
//! cargo run --example chat                    # then, in two terminals: telnet 127.0.0.1 16001
//! cargo run --example chat -- 127.0.0.1:0     # any free port
//! ```
//!
//! Once listening it prints `Chat server on 127.0.0.1:PORT`.
//!
//! Writing to another connection from any coroutine: each client's entry in the map is a
//! `try_clone()` of its stream (another descriptor for the same socket), its writer, while the
//! client's own handler keeps reading from the original. Which lock where:
//!
//! - the map is behind a `std::sync::Mutex`, held only to insert, remove or copy out the list
//!   of writers, never across a blocking call (a std lock held while a coroutine parks would
//!   block the worker thread of every coroutine that waits for it);
//! - each writer is behind a `may::sync::Mutex`, held across the blocking write, so that
//!   broadcasters take turns per client (whole lines, never interleaved) and a broadcaster
//!   waiting for its turn parks only its coroutine.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use may_gevent::{Address, Pool, Stream, StreamServer};

/// A client's writing half, shared by every coroutine that sends to it.
type Writer = Arc<may::sync::Mutex<Stream>>;

/// The connected clients, by peer address (gevent: the shared dict).
#[derive(Debug, Default)]
pub struct Clients(std::sync::Mutex<HashMap<String, Writer>>);

impl Clients {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Writer>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Whether the client at `peer` is connected.
    pub fn contains(&self, peer: &str) -> bool {
        self.map().contains_key(peer)
    }

    /// Sends `line` to every client but `from` (gevent: `sock.sendall(line)` for each).
    fn broadcast(&self, from: &str, line: &[u8]) {
        // Copy the writers out and let the map go: the writes below may block.
        let others: Vec<Writer> = self
            .map()
            .iter()
            .filter(|(peer, _)| peer.as_str() != from)
            .map(|(_, writer)| writer.clone())
            .collect();
        for writer in others {
            let mut stream = writer.lock().unwrap_or_else(PoisonError::into_inner);
            if stream.write_all(line).is_err() {
                // Gone, or too slow to take a line within the write timeout: disconnect it.
                // Its own handler then reads the end of its stream and removes it.
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Removes a client from the map when its handler ends, however it ends: Rust's `finally:`.
struct Leave<'a> {
    clients: &'a Clients,
    peer: String,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        // This also runs when stop() (or Pool::kill) cancels the handler: may unwinds the
        // coroutine's stack, and while it does, every may call that would wait fails at once.
        // Waiting for a may::sync::Mutex that another coroutine holds would then panic inside
        // this drop, and a panic during unwinding aborts the process. The map's std Mutex,
        // held for a moment and never across a may call, is safe here.
        self.clients.map().remove(&self.peer);
        // Telling the others takes their writers' may Mutexes: only on a normal return.
        if !std::thread::panicking() {
            let line = format!("{} left\n", self.peer);
            self.clients.broadcast(&self.peer, line.as_bytes());
        }
    }
}

fn handle(clients: &Clients, socket: Stream, address: Address) -> io::Result<()> {
    let peer = address.to_string();
    let writer = socket.try_clone()?;
    // A client that takes no line for 10 s is disconnected rather than holding up the others.
    writer.set_write_timeout(Some(Duration::from_secs(10)))?;
    let writer = Arc::new(may::sync::Mutex::new(writer));
    // Join holding our own writer, so that the welcome is our first line.
    let mut first = writer.lock().unwrap_or_else(PoisonError::into_inner);
    clients.map().insert(peer.clone(), writer.clone());
    let _leave = Leave {
        clients,
        peer: peer.clone(),
    };
    let others = clients.len() - 1;
    writeln!(
        first,
        "Welcome to the chat, {peer}! {others} other(s) here."
    )?;
    drop(first);
    let mut reader = BufReader::new(socket);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line)? > 0 {
        let text = String::from_utf8_lossy(&line);
        let message = format!("{peer}: {}\n", text.trim_end());
        clients.broadcast(&peer, message.as_bytes());
        line.clear();
    }
    Ok(())
}

/// The chat server on `address`, sharing `clients` (not started).
pub fn chat_server(address: &str, clients: Arc<Clients>) -> may_gevent::Result<StreamServer> {
    StreamServer::builder(address, move |socket: Stream, address: Address| {
        handle(&clients, socket, address)
    })
    .spawn(Pool::new(1000))
    .build()
}

fn main() -> Result<(), may_gevent::Error> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:16001".into());
    let server = chat_server(&address, Arc::new(Clients::default()))?;
    server.init_socket()?;
    println!("Chat server on {}", server.address().expect("bound"));
    server.serve_forever()
}
