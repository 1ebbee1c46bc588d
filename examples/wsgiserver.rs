//! gevent's examples/wsgiserver.py: a WSGI server on 127.0.0.1:8088 that answers `/` with
//! hello world and every other path with a 404. Ctrl-C or SIGTERM stops it gracefully.
//!
//! ```text
//! cargo run --release --example wsgiserver    # then: curl http://127.0.0.1:8088/
//! ```
//!
//! The same application with a port argument and benchmark knobs: `wsgiserver_bench`.

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};

fn application(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }

    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

fn main() -> Result<(), may_gevent::Error> {
    println!("Serving on 8088...");
    WsgiServer::new(("127.0.0.1", 8088), application)?.serve_forever()
}
