//! gevent's examples/unixsocket_server.py: a WSGI server on a Unix domain socket that the
//! program binds itself (`./unixsocket_server.sock`, removed first if it exists) and hands to
//! the server as a ready listener.
//!
//! ```text
//! cargo run --example unixsocket_server    # then: cargo run --example unixsocket_client
//! ```

use std::os::unix::net::UnixListener;

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};

fn application(environ: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    assert!(!environ.is_empty());
    start_response.call("200 OK", &[])?;
    Ok(().into())
}

fn main() -> Result<(), may_gevent::Error> {
    let sockname = "./unixsocket_server.sock";
    if std::fs::symlink_metadata(sockname).is_ok() {
        std::fs::remove_file(sockname)?;
    }
    let listener = UnixListener::bind(sockname)?;
    WsgiServer::new(listener, application)?.serve_forever()
}
