//! The `wsgiserver` example's application (gevent's examples/wsgiserver.py) with the knobs a
//! benchmark needs: a port, the number of may worker threads, and the access log off.
//!
//! ```text
//! cargo run --release --example wsgiserver_bench                       # 127.0.0.1:8088
//! cargo run --release --example wsgiserver_bench -- 0                  # any free port
//! cargo run --release --example wsgiserver_bench -- 8088 --workers 1 --no-log
//! ```
//!
//! Usage: `wsgiserver_bench [PORT] [--workers N] [--no-log]`. PORT defaults to 8088 (`0`: any
//! free port; an `IP:PORT` address is accepted too). `--workers N` sets the number of may
//! worker threads (default: may's). The access log goes to standard error unless `--no-log`
//! is given. Once listening, it prints `Serving on http://127.0.0.1:PORT` with the bound port.
//! SIGTERM or SIGINT stops the server gracefully (`serve_forever` handles them) and the
//! process exits 0.

use std::process::ExitCode;

use may_gevent::pywsgi::WsgiServer;

#[path = "support/bench_cli.rs"]
mod bench_cli;

fn main() -> ExitCode {
    let args = match bench_cli::args("wsgiserver_bench") {
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
            eprintln!("wsgiserver_bench: {err:?}");
            return ExitCode::from(1);
        }
    };
    // Bound now; accepting starts in serve_forever, after its signal handlers are in place.
    let address = server.address().expect("a bound server has an address");
    println!("Serving on http://{address}");
    // SIGTERM/SIGINT make serve_forever stop the server gracefully and return.
    if let Err(err) = server.serve_forever() {
        eprintln!("wsgiserver_bench: {err:?}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
