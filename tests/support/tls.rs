//! TLS helpers for the integration tests: certificates generated at test time (rcgen), written
//! to a temporary directory, TLS clients (native-tls over std sockets, every wait bounded) and a
//! slog drain that collects records. Include with
//! `#[path = "support/tls.rs"] mod tls_support;` (it uses `super::support` nowhere, so it also
//! works on its own).
#![allow(dead_code, unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use native_tls::{Certificate, TlsConnector, TlsStream};

/// Upper bound for any single wait of a TLS client.
pub const TLS_WAIT: Duration = Duration::from_secs(10);

/// Password of the PKCS#12 file in [`TestCert`].
pub const P12_PASSWORD: &str = "secret";

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "may_gevent-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Write `contents` to `name` in this directory and return its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1 with its key, as files:
/// `cert.pem`, `key.pem` (PKCS#8), `combined.pem` (key and certificate in one file),
/// `server.p12` (PKCS#12, password [`P12_PASSWORD`]) and `other-key.pem` (an unrelated key).
#[derive(Debug)]
pub struct TestCert {
    pub dir: TempDir,
    pub cert_pem: String,
    pub key_pem: String,
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    pub combined: PathBuf,
    pub p12file: PathBuf,
    pub other_keyfile: PathBuf,
    connector: std::sync::OnceLock<TlsConnector>,
}

impl TestCert {
    pub fn generate() -> TestCert {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .expect("generate certificate");
        let other = rcgen::KeyPair::generate().expect("generate key");
        let cert_pem = cert.pem();
        let key_pem = signing_key.serialize_pem();
        let dir = TempDir::new();
        let certfile = dir.write("cert.pem", &cert_pem);
        let keyfile = dir.write("key.pem", &key_pem);
        let combined = dir.write("combined.pem", format!("{key_pem}{cert_pem}"));
        let other_keyfile = dir.write("other-key.pem", other.serialize_pem());
        let p12file = dir.write("server.p12", pkcs12(&cert_pem, &key_pem, P12_PASSWORD));
        TestCert {
            dir,
            cert_pem,
            key_pem,
            certfile,
            keyfile,
            combined,
            p12file,
            other_keyfile,
            connector: std::sync::OnceLock::new(),
        }
    }

    /// A server-side acceptor for this certificate (gevent's `ssl_context`).
    pub fn acceptor(&self) -> native_tls::TlsAcceptor {
        let identity =
            native_tls::Identity::from_pkcs8(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
                .expect("identity");
        native_tls::TlsAcceptor::new(identity).expect("acceptor")
    }

    /// A client that trusts only this certificate (built once, shared by every connection).
    pub fn connector(&self) -> &TlsConnector {
        self.connector.get_or_init(|| self.new_connector())
    }

    /// A new client that trusts only this certificate.
    pub fn new_connector(&self) -> TlsConnector {
        let root = Certificate::from_pem(self.cert_pem.as_bytes()).expect("parse certificate");
        TlsConnector::builder()
            .add_root_certificate(root)
            .disable_built_in_roots(true)
            .build()
            .expect("connector")
    }

    /// Connect to `addr` and finish the handshake as `localhost` (read/write timeouts set).
    pub fn connect(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        self.try_connect(addr).expect("tls connect")
    }

    /// Like [`connect`](Self::connect), returning the error.
    pub fn try_connect(&self, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect_timeout(&addr, TLS_WAIT)?;
        tcp.set_read_timeout(Some(TLS_WAIT))?;
        tcp.set_write_timeout(Some(TLS_WAIT))?;
        self.connector()
            .connect("localhost", tcp)
            .map_err(|err| io::Error::other(err.to_string()))
    }
}

/// A PKCS#12 archive of `cert_pem` and `key_pem` protected by `password`.
pub fn pkcs12(cert_pem: &str, key_pem: &str, password: &str) -> Vec<u8> {
    let cert = openssl::x509::X509::from_pem(cert_pem.as_bytes()).expect("x509");
    let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes()).expect("key");
    openssl::pkcs12::Pkcs12::builder()
        .name("localhost")
        .pkey(&key)
        .cert(&cert)
        .build2(password)
        .expect("pkcs12")
        .to_der()
        .expect("pkcs12 der")
}

/// Write `line` and read one `\n`-terminated reply line.
pub fn round_trip<S: Read + Write>(stream: &mut S, line: &str) -> io::Result<String> {
    stream.write_all(line.as_bytes())?;
    stream.flush()?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while reply.last() != Some(&b'\n') {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        reply.push(byte[0]);
    }
    String::from_utf8(reply).map_err(io::Error::other)
}

/// What the peer did with a connection we are waiting on.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// Orderly EOF (possibly after some bytes, e.g. a TLS alert).
    Eof(Vec<u8>),
    /// Reset by the peer.
    Reset,
}

/// Read until the peer closes the connection (EOF or reset); panics if it is still open after
/// `within`.
pub fn wait_closed(stream: &mut TcpStream, within: Duration) -> Closed {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Closed::Eof(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Closed::Reset
            }
            Err(err) => panic!("connection still open after {within:?}: {err}"),
        }
    }
}

/// True while the peer has neither closed nor reset `stream` and sent nothing (checked
/// without waiting).
pub fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!(
        stream.peek(&mut buf),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock
    );
    stream.set_nonblocking(false).unwrap();
    open
}

/// One record seen by [`Collector`].
#[derive(Debug, Clone)]
pub struct Logged {
    pub level: slog::Level,
    pub msg: String,
    /// `key=value` pairs of the record and its logger.
    pub kv: Vec<(String, String)>,
}

impl Logged {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.kv
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A slog drain that keeps every record (all levels) for the test to inspect.
#[derive(Debug, Clone, Default)]
pub struct Collector(Arc<Mutex<Vec<Logged>>>);

struct KvCollect<'a>(&'a mut Vec<(String, String)>);

impl slog::Serializer for KvCollect<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.push((key.to_string(), val.to_string()));
        Ok(())
    }
}

impl slog::Drain for Collector {
    type Ok = ();
    type Err = slog::Never;

    fn log(
        &self,
        record: &slog::Record<'_>,
        values: &slog::OwnedKVList,
    ) -> Result<(), slog::Never> {
        use slog::KV;
        let mut kv = Vec::new();
        let _ = record.kv().serialize(record, &mut KvCollect(&mut kv));
        let _ = values.serialize(record, &mut KvCollect(&mut kv));
        let logged = Logged {
            level: record.level(),
            msg: record.msg().to_string(),
            kv,
        };
        self.0.lock().unwrap().push(logged);
        Ok(())
    }
}

impl Collector {
    pub fn logger(&self) -> slog::Logger {
        slog::Logger::root(slog::Drain::fuse(self.clone()), slog::o!())
    }

    pub fn records(&self) -> Vec<Logged> {
        self.0.lock().unwrap().clone()
    }

    /// Records whose message contains `needle`.
    pub fn matching(&self, needle: &str) -> Vec<Logged> {
        self.records()
            .into_iter()
            .filter(|r| r.msg.contains(needle))
            .collect()
    }
}
