//! Harness for `may_gevent::wsgi` tests: the pywsgi test helpers (raw clients, response parser,
//! captured logs) around a `wsgi::WsgiServer` on 127.0.0.1:0. Every wait is bounded.
#![allow(dead_code, unreachable_pub, missing_docs)]

#[path = "../wsgi_support/mod.rs"]
pub mod wsgi;

use std::net::{SocketAddr, TcpStream};

use may_gevent::pywsgi::Application;
use may_gevent::wsgi::{WsgiServer, WsgiServerBuilder};

#[allow(unused_imports)] // not every test binary uses each
pub use wsgi::{
    init, read_response, read_to_close, test_config, Client, Records, Sink, CLIENT_TIMEOUT,
};

/// A running `wsgi::WsgiServer` (stopped when dropped).
pub struct Mini {
    pub addr: SocketAddr,
    pub access: Sink,
    pub records: Records,
    pub server: WsgiServer,
}

pub fn serve<A: Application>(app: A) -> Mini {
    serve_with(|b| b, app)
}

pub fn serve_with<A: Application>(
    tweak: impl FnOnce(WsgiServerBuilder) -> WsgiServerBuilder,
    app: A,
) -> Mini {
    init();
    let (config, access, records) = test_config();
    let server = tweak(WsgiServer::builder("127.0.0.1:0", app).config(config))
        .build()
        .expect("build");
    server.start().expect("start");
    let addr = server.local_addr().expect("bound");
    Mini {
        addr,
        access,
        records,
        server,
    }
}

impl Mini {
    pub fn connect(&self) -> TcpStream {
        wsgi::connect_to(self.addr)
    }

    pub fn client(&self) -> Client {
        Client::new(self.connect())
    }

    /// Sends `request` and reads until the server closes.
    pub fn raw(&self, request: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut stream = self.connect();
        stream.write_all(request).unwrap();
        read_to_close(&mut stream)
    }

    /// Asserts a fresh connection is served (the server survived what came before).
    pub fn assert_serving(&self) {
        let mut client = self.client();
        let resp = client.get("/");
        assert_eq!(resp.status, 200, "{resp:?}");
    }
}
