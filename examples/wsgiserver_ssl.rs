//! gevent's examples/wsgiserver_ssl.py: the hello-world WSGI server over TLS on
//! 127.0.0.1:8443, with `server.crt` and `server.key` from the working directory.
//!
//! ```text
//! openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 365 \
//!   -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1
//! cargo run --release --example wsgiserver_ssl    # then: curl --cacert server.crt https://localhost:8443/
//! ```

use may_gevent::pywsgi::{AppResult, Environ, StartResponse, WsgiServer};

fn hello_world(env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    if env.path_info() == "/" {
        start_response.call("200 OK", &[("Content-Type", "text/html")])?;
        return Ok(b"<b>hello world</b>".into());
    }

    start_response.call("404 Not Found", &[("Content-Type", "text/html")])?;
    Ok(b"<h1>Not Found</h1>".into())
}

fn main() -> Result<(), may_gevent::Error> {
    println!("Serving on https://:8443");
    // the openssl command above makes server.crt and server.key (see also the README)
    let server = WsgiServer::builder(("127.0.0.1", 8443), hello_world)
        .tls_files("server.crt", "server.key")
        .build()?;
    // to start the server asynchronously, call server.start()
    // we use blocking serve_forever() here because we have no other jobs
    server.serve_forever()
}
