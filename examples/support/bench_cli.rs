//! What `wsgiserver_bench` and `wsgiserver_minihttp` share: the `wsgiserver` example's
//! application (gevent's examples/wsgiserver.py), and the command line
//! `NAME [PORT] [--workers N] [--no-log]`.

use std::process::ExitCode;

use may_gevent::pywsgi::{AppResult, Environ, StartResponse};

/// gevent's examples/wsgiserver.py: `/` is hello world, anything else a 404.
pub(crate) fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

/// The command line.
pub(crate) struct Args {
    /// Where to listen (`127.0.0.1:8088` by default).
    pub(crate) address: String,
    /// `--workers N`: the number of may worker threads.
    pub(crate) workers: Option<usize>,
    /// False with `--no-log`.
    pub(crate) log: bool,
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

/// Parses the command line of the example `name`; on a bad one, prints the error and the usage
/// and gives the exit status. Sets may's number of workers (before anything starts may).
pub(crate) fn args(name: &str) -> Result<Args, ExitCode> {
    match parse_args(std::env::args().skip(1)) {
        Ok(args) => {
            // may's scheduler reads its configuration when it first starts: set it first.
            if let Some(workers) = args.workers {
                may::config().set_workers(workers);
            }
            Ok(args)
        }
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{name}: {msg}");
            }
            eprintln!("usage: {name} [PORT] [--workers N] [--no-log]");
            Err(ExitCode::from(2))
        }
    }
}
