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

use may_gevent::wsgi::WsgiServer;

#[path = "support/bench_cli.rs"]
mod bench_cli;

fn main() -> ExitCode {
    let args = match bench_cli::args("wsgiserver_minihttp") {
        Ok(args) => args,
        Err(status) => return status,
    };
    let mut builder = WsgiServer::builder(args.address.as_str(), bench_cli::application);
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
