//! gevent-websocket's echo server (`WebSocketServer(('', 8000), Resource({'/': EchoApplication}))`,
//! or pywsgi's `WSGIServer` with `handler_class=WebSocketHandler`): a WSGI server on
//! 127.0.0.1:8000 whose application serves a small page at `/` and, on a WebSocket upgrade
//! (any path), echoes every text and binary message back.
//!
//! ```text
//! cargo run --example websocket_echo                  # then open http://127.0.0.1:8000/
//! cargo run --example websocket_echo -- 127.0.0.1:0   # any free port
//! ```
//!
//! Once listening it prints `Serving on 127.0.0.1:PORT`. The WebSocket protocol is
//! tungstenite's blocking API over the connection that `101 Switching Protocols` hands over:
//! raw bytes in through `wsgi.input`, raw bytes out through the `write` callable. tungstenite
//! answers pings and completes the closing handshake itself.

use std::io::{self, Read, Write};

use may_gevent::pywsgi::{AppResult, Body, Environ, Input, StartResponse, Writer, WsgiServer};
use tungstenite::error::ProtocolError;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;
use tungstenite::{Error, Message, WebSocket};

const PAGE: &str = r#"<!doctype html>
<title>WebSocket echo</title>
<input id="text" value="hello"> <button onclick="ws.send(text.value)">send</button>
<pre id="log"></pre>
<script>
  const ws = new WebSocket(`ws://${location.host}/`);
  ws.onmessage = (event) => { log.textContent += event.data + "\n"; };
</script>
"#;

/// The upgraded connection as one `Read + Write`, which is what tungstenite wants.
struct Upgraded<'a> {
    input: &'a mut Input, // raw bytes from the client (already-buffered ones first)
    output: Writer<'a>,   // raw bytes to the client
}

impl Read for Upgraded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Upgraded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)?; // all of it, or an error
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::Write::flush(&mut self.output)
    }
}

/// The WSGI application: the page at `/`, the echo on a WebSocket upgrade.
pub fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    let upgrade = env.header("Upgrade").unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("websocket") {
        if env.path_info() != "/" {
            start_response.call("404 Not Found", &[("Content-Type", "text/plain")])?;
            return Ok("Not Found".into());
        }
        start_response.call("200 OK", &[("Content-Type", "text/html; charset=utf-8")])?;
        return Ok(PAGE.into());
    }
    if env.header("Sec-WebSocket-Version") != Some("13") {
        start_response.call("426 Upgrade Required", &[("Sec-WebSocket-Version", "13")])?;
        return Ok(Body::empty());
    }
    let Some(key) = env.header("Sec-WebSocket-Key") else {
        start_response.call("400 Bad Request", &[("Content-Type", "text/plain")])?;
        return Ok("no Sec-WebSocket-Key".into());
    };
    let accept = derive_accept_key(key.as_bytes());
    let mut output = start_response.call(
        "101 Switching Protocols",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", &accept),
        ],
    )?;
    output.write(b"")?; // sends the 101 head now: the client waits for it
    let input = env.input();
    // A WebSocket may rightly stay silent for long (stop() still ends it).
    input.set_read_timeout(None);
    let mut ws = WebSocket::from_raw_socket(Upgraded { input, output }, Role::Server, None);
    loop {
        match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => ws.send(message)?,
            Ok(_) => {} // ping, pong, close: tungstenite replies on the next read
            // the closing handshake is complete
            Err(Error::ConnectionClosed) => return Ok(Body::empty()),
            // the client went away without one (or stop() shut the connection down)
            Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                return Ok(Body::empty())
            }
            Err(err) => return Err(err.into()),
        }
    }
}

fn main() -> Result<(), may_gevent::Error> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let server = WsgiServer::new(address.as_str(), application)?;
    server.init_socket()?;
    println!("Serving on {}", server.address().expect("bound"));
    server.serve_forever()
}
