//! gevent's examples/unixsocket_server.py: a WSGI server on a Unix domain socket, bound by the
//! caller and handed to the server as a ready listener.
//!
//! ```text
//! cargo run --example unixsocket_server                  # listens on ./socket
//! cargo run --example unixsocket_client                  # or: curl --unix-socket ./socket http://localhost/
//! cargo run --example unixsocket_server -- /tmp/wsgi.sock
//! ```
//!
//! Usage: `unixsocket_server [PATH]` (default `./socket`, removed first if it exists, as
//! gevent's example does). It prints `Serving on PATH` once listening; the access log goes to
//! standard error (with `-` as the client: Unix peers have no address).

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::process::ExitCode;

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};

fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

fn main() -> ExitCode {
    let sockname = std::env::args().nth(1).unwrap_or_else(|| "./socket".into());
    // gevent: if os.path.exists(sockname): os.remove(sockname)
    if std::fs::symlink_metadata(&sockname).is_ok() {
        if let Err(err) = std::fs::remove_file(&sockname) {
            eprintln!("unixsocket_server: cannot remove {sockname}: {err}");
            return ExitCode::from(1);
        }
    }
    let listener = match UnixListener::bind(&sockname) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("unixsocket_server: cannot bind {sockname}: {err}");
            return ExitCode::from(1);
        }
    };
    let server = match WsgiServer::new(listener, application)
        .and_then(|server| server.start().map(|()| server))
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("unixsocket_server: {err}");
            return ExitCode::from(1);
        }
    };
    println!("Serving on {sockname}");
    let _ = std::io::stdout().flush();
    if let Err(err) = server.serve_forever() {
        eprintln!("unixsocket_server: {err}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
