//! gevent's examples/wsgiserver_ssl.py: the `wsgiserver` example over https on 127.0.0.1:8443,
//! with the certificate and key read from `server.crt` and `server.key` in the working directory.
//!
//! ```text
//! openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 365 \
//!     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1
//! cargo run --example wsgiserver_ssl             # then: curl --cacert server.crt https://localhost:8443/
//! cargo run --example wsgiserver_ssl -- 0        # any free port
//! ```
//!
//! Usage: `wsgiserver_ssl [PORT]` (default 8443; an `IP:PORT` address is accepted too). It
//! prints `Serving on https://127.0.0.1:PORT` once listening. A missing or invalid certificate
//! or key is reported (naming the file) with the command above, and the exit status is 1.
//! SIGTERM or SIGINT stops it gracefully (exit status 0).

#[cfg(feature = "tls")]
use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};
use std::process::ExitCode;

#[cfg(feature = "tls")]
fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }
    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

/// How to make the self-signed certificate this example reads.
const HINT: &str = "\
To make a self-signed certificate for localhost in the working directory, run:
    openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 365 \\
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1";

#[cfg(feature = "tls")]
fn main() -> ExitCode {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use std::io::Write;

    let address = match std::env::args().nth(1) {
        None => "127.0.0.1:8443".to_owned(),
        Some(arg) if arg.contains(':') => arg,
        Some(arg) => match arg.parse::<u16>() {
            Ok(port) => format!("127.0.0.1:{port}"),
            Err(_) => {
                eprintln!("wsgiserver_ssl: bad port {arg:?}\nusage: wsgiserver_ssl [PORT]");
                return ExitCode::from(2);
            }
        },
    };
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("wsgiserver_ssl: cannot install signal handlers: {err}");
            return ExitCode::from(1);
        }
    };
    // gevent: WSGIServer(('127.0.0.1', 8443), application,
    //                    keyfile='server.key', certfile='server.crt').serve_forever()
    let server = match WsgiServer::builder(address.as_str(), application)
        .tls_files("server.crt", "server.key")
        .build()
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("wsgiserver_ssl: {err}");
            if matches!(err, may_gevent::Error::Tls { .. }) {
                eprintln!("{HINT}");
            }
            return ExitCode::from(1);
        }
    };
    if let Err(err) = server.start() {
        eprintln!("wsgiserver_ssl: {err}");
        return ExitCode::from(1);
    }
    let control = server.base();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            control.close();
        }
    });
    println!("Serving on https://{}", server.address().expect("bound"));
    let _ = std::io::stdout().flush();
    if let Err(err) = server.serve_forever() {
        eprintln!("wsgiserver_ssl: {err}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(not(feature = "tls"))]
fn main() -> ExitCode {
    eprintln!("wsgiserver_ssl: may_gevent was built without its `tls` feature\n{HINT}");
    ExitCode::from(1)
}
