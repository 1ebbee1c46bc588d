//! gevent's examples/wsgiserver.py application on the buffered `may_gevent::wsgi` server
//! (may_minihttp's engine; gevent: `from gevent.wsgi import WSGIServer`), with the knobs of
//! `wsgiserver_bench`: the `wsgiserver` example's application, exactly.
//!
//! ```text
//! cargo run --release --example wsgiserver_minihttp                    # 127.0.0.1:8088
//! cargo run --release --example wsgiserver_minihttp -- 0 --workers 1   # any free port
//! ```
//!
//! Usage: `wsgiserver_minihttp [PORT] [--workers N] [--no-log]`. PORT defaults to 8088 (`0`:
//! any free port; an `IP:PORT` address is accepted too). `--workers N` sets the number of may
//! worker threads (default: may's). The access log goes to standard error unless `--no-log`
//! is given. Once listening, it prints `Serving on http://127.0.0.1:PORT` with the bound port.
//! SIGTERM or SIGINT stops the server gracefully and the process exits 0.

use std::process::ExitCode;

use may_gevent::pywsgi::{AppResult, Environ, StartResponse};
use may_gevent::wsgi::WsgiServer;

const USAGE: &str = "usage: wsgiserver_minihttp [PORT] [--workers N] [--no-log]";

fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

/// The command line.
struct Args {
    address: String,
    workers: Option<usize>,
    log: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        address: "127.0.0.1:8088".to_owned(),
        workers: None,
        log: true,
    };
    let mut port_seen = false;
    while let Some(arg) = args.next() {
        if arg == "--no-log" {
            parsed.log = false;
        } else if arg == "--workers" || arg.starts_with("--workers=") {
            let value = match arg.strip_prefix("--workers=") {
                Some(value) => value.to_owned(),
                None => args.next().ok_or("--workers needs a number")?,
            };
            match value.parse::<usize>() {
                Ok(n) if n > 0 => parsed.workers = Some(n),
                _ => return Err(format!("bad number of workers: {value:?}")),
            }
        } else if arg == "-h" || arg == "--help" {
            return Err(String::new());
        } else if !arg.starts_with('-') && !port_seen {
            port_seen = true;
            parsed.address = if arg.contains(':') {
                arg
            } else {
                let port: u16 = arg.parse().map_err(|_| format!("bad port: {arg:?}"))?;
                format!("127.0.0.1:{port}")
            };
        } else {
            return Err(format!("unexpected argument: {arg:?}"));
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("wsgiserver_minihttp: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // may's scheduler reads its configuration when it first starts: set it before anything else.
    if let Some(workers) = args.workers {
        may::config().set_workers(workers);
    }
    let mut builder = WsgiServer::builder(args.address.as_str(), application);
    if !args.log {
        builder = builder.access_log(None); // gevent: log=None
    }
    let server = match builder
        .build()
        .and_then(|server| server.init_socket().map(|()| server))
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("wsgiserver_minihttp: {err:?}");
            return ExitCode::from(1);
        }
    };
    // serve_forever installs the SIGINT/SIGTERM handlers, then binds and serves; announce the
    // bound port once it serves (so a signal that follows the line finds the handlers).
    let handle = server.handle();
    // (not joined: it may still be waiting if the server never starts; main's return ends it)
    std::thread::spawn(move || {
        while !handle.started() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if let Some(address) = handle.address() {
            println!("Serving on http://{address}");
        }
    });
    // SIGTERM/SIGINT make serve_forever stop the server gracefully and return.
    if let Err(err) = server.serve_forever() {
        eprintln!("wsgiserver_minihttp: {err:?}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
