//! WebSocket over pywsgi's Upgrade hand-off: the application of examples/websocket_echo.rs on
//! an in-process `WsgiServer`, driven by tungstenite's client over std sockets with timeouts;
//! and the example itself as a process. Every wait is bounded.
//!
//! `cargo test` builds the examples first; `cargo test --test websocket` alone does not (run
//! `cargo build --examples` before it) and the process test then says so.
#![allow(missing_docs)]

mod support;
#[allow(dead_code, unreachable_pub)] // its main() is unused here; application() is pub there
#[path = "../examples/websocket_echo.rs"]
mod websocket_echo;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use may_gevent::pywsgi::WsgiServer;
use support::child::Running;
use support::{connect, eventually, inet, within, Rendezvous, RENDEZVOUS_WAIT, WAIT};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error, Message, WebSocket};

/// The server's log records at ERROR and above (`LEVEL message`).
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl slog::Drain for Errors {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, record: &slog::Record<'_>, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        if record.level().is_at_least(slog::Level::Error) {
            let line = format!("{} {}", record.level().as_str(), record.msg());
            self.0.lock().unwrap().push(line);
        }
        Ok(())
    }
}

impl Errors {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// The example's application on 127.0.0.1:0, started, access log off, errors captured.
fn serve() -> (WsgiServer, SocketAddr, Errors) {
    let errors = Errors::default();
    let server = WsgiServer::builder("127.0.0.1:0", websocket_echo::application)
        .access_log(None)
        .logger(slog::Logger::root(errors.clone(), slog::o!()))
        .build()
        .expect("build");
    server.start().expect("start");
    let addr = inet(&server);
    (server, addr, errors)
}

/// A WebSocket client after a completed opening handshake (read and write timeouts: WAIT).
fn client(addr: SocketAddr) -> WebSocket<TcpStream> {
    let (ws, response) =
        tungstenite::client(format!("ws://{addr}/"), connect(addr)).expect("opening handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Sends `message` and returns the next message received.
fn round_trip(ws: &mut WebSocket<TcpStream>, message: Message) -> Message {
    ws.send(message).expect("send");
    ws.read().expect("read the reply")
}

#[test]
fn text_message_is_echoed() {
    let (_server, addr, _) = serve();
    let mut ws = client(addr);
    for text in ["hello", "", "héllo wörld ✓"] {
        assert_eq!(
            round_trip(&mut ws, Message::text(text)),
            Message::text(text)
        );
    }
}

#[test]
fn binary_message_is_echoed() {
    let (_server, addr, _) = serve();
    let mut ws = client(addr);
    let data: Vec<u8> = (0..=255).collect();
    assert_eq!(
        round_trip(&mut ws, Message::binary(data.clone())),
        Message::binary(data)
    );
}

#[test]
fn ping_is_answered_with_a_pong_carrying_its_payload() {
    let (_server, addr, _) = serve();
    let mut ws = client(addr);
    assert_eq!(
        round_trip(&mut ws, Message::Ping(b"are you there?".to_vec().into())),
        Message::Pong(b"are you there?".to_vec().into())
    );
    // and the connection goes on echoing
    assert_eq!(
        round_trip(&mut ws, Message::text("after")),
        Message::text("after")
    );
}

#[test]
fn close_handshake_is_answered_and_the_connection_ends() {
    let (server, addr, errors) = serve();
    let mut ws = client(addr);
    assert_eq!(
        round_trip(&mut ws, Message::text("hi")),
        Message::text("hi")
    );
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.close(Some(frame.clone())).expect("send Close");
    // the server's Close answers ours, with its code
    assert_eq!(ws.read().expect("read Close"), Message::Close(Some(frame)));
    // then the server closes the TCP connection: tungstenite sees its end after the handshake
    match ws.read() {
        Err(Error::ConnectionClosed) => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
    let mut rest = [0u8; 1];
    assert_eq!(ws.get_mut().read(&mut rest).expect("read EOF"), 0);
    // (the server lingers, draining, until the client closes its end too)
    drop(ws);
    eventually("the handler returned", || server.pool().is_empty());
    assert_eq!(errors.lines(), Vec::<String>::new());
}

#[test]
fn one_mebibyte_message_is_echoed_intact() {
    let (_server, addr, _) = serve();
    let mut ws = client(addr);
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    match round_trip(&mut ws, Message::binary(data.clone())) {
        Message::Binary(echoed) => {
            assert_eq!(echoed.len(), data.len());
            assert!(echoed == data, "the 1 MiB echo differs from what was sent");
        }
        other => panic!("expected a binary message, got {other:?}"),
    }
    let text = "0123456789abcdef".repeat(1 << 16);
    assert_eq!(
        round_trip(&mut ws, Message::text(text.clone())),
        Message::text(text)
    );
}

#[test]
fn hundred_concurrent_sockets_each_echo() {
    const CLIENTS: usize = 100;
    let (server, addr, errors) = serve();
    let all_open = Arc::new(Rendezvous::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let all_open = all_open.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || -> Result<(), String> {
                    let mut ws = client(addr);
                    let first = format!("client {i}: first");
                    if round_trip(&mut ws, Message::text(&*first)) != Message::text(&*first) {
                        return Err(format!("client {i}: wrong first echo"));
                    }
                    // all 100 are open at once here
                    all_open.wait(RENDEZVOUS_WAIT)?;
                    let second = vec![i as u8; 1000 + i];
                    if round_trip(&mut ws, Message::binary(second.clone()))
                        != Message::binary(second)
                    {
                        return Err(format!("client {i}: wrong second echo"));
                    }
                    ws.close(None)
                        .map_err(|e| format!("client {i}: close: {e}"))?;
                    loop {
                        match ws.read() {
                            Ok(_) => {}
                            Err(Error::ConnectionClosed) => return Ok(()),
                            Err(e) => return Err(format!("client {i}: closing: {e}")),
                        }
                    }
                })
                .expect("spawn a client thread")
        })
        .collect();
    for (i, thread) in threads.into_iter().enumerate() {
        support::join_within(&format!("client {i}"), RENDEZVOUS_WAIT + WAIT, thread)
            .unwrap_or_else(|err| panic!("{err}"));
    }
    eventually("every handler returned", || server.pool().is_empty());
    assert_eq!(errors.lines(), Vec::<String>::new());
}

#[test]
fn stop_ends_open_idle_websockets_and_empties_the_pool() {
    let (server, addr, errors) = serve();
    let mut sockets: Vec<_> = (0..5).map(|_| client(addr)).collect();
    for ws in &mut sockets {
        // open and served: the application is in its read loop
        assert_eq!(round_trip(ws, Message::text("x")), Message::text("x"));
    }
    assert_eq!(server.pool().len(), 5);
    let control = server.handle();
    let begin = Instant::now();
    within("stop", WAIT, move || {
        control.stop(Duration::from_millis(100))
    });
    let stopped = begin.elapsed();
    // the idle sockets do not hold stop() up: after the timeout it shuts them down
    assert!(stopped < Duration::from_secs(3), "stop took {stopped:?}");
    assert!(
        server.pool().is_empty(),
        "{} handlers left",
        server.pool().len()
    );
    for ws in &mut sockets {
        match ws.read() {
            Err(Error::Protocol(_) | Error::ConnectionClosed) => {}
            Err(Error::Io(err))
                if !matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected the connection to end, got {other:?}"),
        }
    }
    let ended = begin.elapsed();
    assert!(
        ended < Duration::from_secs(5),
        "connections ended after {ended:?}"
    );
    assert_eq!(errors.lines(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// The example as a process

fn example_path(name: &str) -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

#[test]
fn example_serves_its_page_and_echoes() {
    let mut command = Command::new(example_path("websocket_echo"));
    command.arg("127.0.0.1:0");
    let child = Running::spawn("websocket_echo", &mut command).unwrap_or_else(|err| {
        panic!("cannot run example websocket_echo ({err}): run `cargo build --examples` first")
    });
    let line = child
        .stdout
        .wait_for(WAIT, |line| line.starts_with("Serving on "))
        .unwrap_or_else(|| panic!("exited early; stderr: {:?}", child.stderr.all()));
    let addr: SocketAddr = line["Serving on ".len()..]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no address in {line:?}"));

    let mut http = connect(addr);
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let page = String::from_utf8(support::read_to_end(&mut http)).unwrap();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("new WebSocket("), "{page}");

    let mut ws = client(addr);
    assert_eq!(
        round_trip(&mut ws, Message::text("from a test")),
        Message::text("from a test")
    );
    drop(child); // kills it
}
