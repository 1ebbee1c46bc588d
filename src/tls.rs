//! TLS for stream servers with native-tls (gevent: `ssl_args` — `keyfile`, `certfile`,
//! `ssl_context`; `StreamServer.wrap_socket_and_handle`).
//!
//! The handshake runs in each connection's own coroutine, bounded by a handshake timeout (a
//! deadline for the whole handshake), so a slow or broken client never stalls the accept loop.
//! A failed or timed-out handshake is logged at DEBUG level with the peer address and the
//! connection is closed. After the handshake the socket has no timeout again.

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use may::sync::SyncFlag;
use native_tls::{Identity, TlsAcceptor};
use slog::debug;

use crate::address::Address;
use crate::error::{Error, Result};
use crate::stream::{PlainStream, Stream};

/// Default time a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handler stack used with TLS unless set: OpenSSL's handshake needs about 16 KiB.
pub const TLS_STACK_SIZE: usize = 128 * 1024;

/// TLS settings of a running server.
#[derive(Clone)]
pub(crate) struct TlsOptions {
    pub(crate) acceptor: Arc<TlsAcceptor>,
    pub(crate) handshake_timeout: Duration,
}

/// Where the server's certificate comes from.
#[derive(Default)]
pub(crate) enum TlsSource {
    #[default]
    None,
    Files {
        certfile: PathBuf,
        keyfile: PathBuf,
    },
    Pkcs12 {
        path: PathBuf,
        password: String,
    },
    Acceptor(TlsAcceptor),
}

/// TLS part of a stream server builder.
#[derive(Default)]
pub(crate) struct TlsBuilder {
    pub(crate) source: TlsSource,
    pub(crate) handshake_timeout: Option<Duration>,
}

impl fmt::Debug for TlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            TlsSource::None => "none",
            TlsSource::Files { .. } => "pem files",
            TlsSource::Pkcs12 { .. } => "pkcs12",
            TlsSource::Acceptor(_) => "acceptor",
        };
        f.debug_struct("TlsBuilder")
            .field("source", &source)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| Error::Tls {
        context: path.display().to_string(),
        source: Box::new(err),
    })
}

fn tls_err(context: &Path, err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Tls {
        context: context.display().to_string(),
        source: Box::new(err),
    }
}

/// Load a PEM certificate (chain) and private key (PKCS#8, PKCS#1 RSA or SEC1 EC) and check
/// that they belong together.
pub(crate) fn identity_from_pem_files(certfile: &Path, keyfile: &Path) -> Result<Identity> {
    let cert_pem = read(certfile)?;
    let key_pem = read(keyfile)?;
    let certs =
        openssl::x509::X509::stack_from_pem(&cert_pem).map_err(|err| tls_err(certfile, err))?;
    let Some(leaf) = certs.first() else {
        return Err(Error::Tls {
            context: certfile.display().to_string(),
            source: "no PEM certificate found".into(),
        });
    };
    let key =
        openssl::pkey::PKey::private_key_from_pem(&key_pem).map_err(|err| tls_err(keyfile, err))?;
    let public = leaf.public_key().map_err(|err| tls_err(certfile, err))?;
    if !public.public_eq(&key) {
        return Err(Error::Tls {
            context: format!("{} and {}", keyfile.display(), certfile.display()),
            source: "the private key does not match the certificate".into(),
        });
    }
    let pkcs8 = key
        .private_key_to_pem_pkcs8()
        .map_err(|err| tls_err(keyfile, err))?;
    Identity::from_pkcs8(&cert_pem, &pkcs8).map_err(|err| tls_err(certfile, err))
}

fn acceptor(identity: Identity, context: &Path) -> Result<TlsAcceptor> {
    TlsAcceptor::new(identity).map_err(|err| tls_err(context, err))
}

impl TlsBuilder {
    /// Load the configured certificate. With TLS on, a handler stack left at may's default
    /// (`stack_words` is `None`) is raised to [`TLS_STACK_SIZE`]; returns the stack to use.
    pub(crate) fn finish(
        self,
        stack_words: Option<usize>,
    ) -> Result<(Option<TlsOptions>, Option<usize>)> {
        if self.handshake_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidConfig(
                "handshake_timeout must be longer than zero".into(),
            ));
        }
        let acceptor = match self.source {
            TlsSource::None => return Ok((None, stack_words)),
            TlsSource::Files { certfile, keyfile } => {
                acceptor(identity_from_pem_files(&certfile, &keyfile)?, &certfile)?
            }
            TlsSource::Pkcs12 { path, password } => {
                let der = read(&path)?;
                let identity =
                    Identity::from_pkcs12(&der, &password).map_err(|err| tls_err(&path, err))?;
                acceptor(identity, &path)?
            }
            TlsSource::Acceptor(acceptor) => acceptor,
        };
        let stack_words = stack_words.or(Some(TLS_STACK_SIZE / std::mem::size_of::<usize>()));
        Ok((
            Some(TlsOptions {
                acceptor: Arc::new(acceptor),
                handshake_timeout: self.handshake_timeout.unwrap_or(HANDSHAKE_TIMEOUT),
            }),
            stack_words,
        ))
    }
}

/// `Watchdog::state` values.
const RUNNING: u8 = 0;
const DONE: u8 = 1;
const EXPIRED: u8 = 2;

/// Bounds the whole handshake, not only each read or write (the socket timeouts alone would
/// let a client that sends a byte now and then hold the handshake open forever). A helper
/// coroutine waits for the deadline and then shuts the socket down, which wakes the handshake
/// with an error. It holds its own duplicate of the descriptor, so it can never shut down an
/// unrelated socket that reused the number.
struct Watchdog {
    finished: Arc<SyncFlag>,
    state: Arc<AtomicU8>,
}

impl Watchdog {
    fn start(plain: &PlainStream, timeout: Duration) -> io::Result<Watchdog> {
        let fd = match plain {
            PlainStream::Tcp(s) => s.inner().as_fd().try_clone_to_owned()?,
            PlainStream::Unix(s) => s.inner().as_fd().try_clone_to_owned()?,
        };
        let finished = Arc::new(SyncFlag::new());
        let state = Arc::new(AtomicU8::new(RUNNING));
        let (f, st) = (finished.clone(), state.clone());
        may::go!(may::coroutine::Builder::new(), move || {
            let expired = !f.wait_timeout(timeout)
                && st
                    .compare_exchange(RUNNING, EXPIRED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
            if expired {
                let _ = socket2::SockRef::from(&fd).shutdown(Shutdown::Both);
            }
        })?;
        Ok(Watchdog { finished, state })
    }

    /// Disarm it; false if the deadline already passed (the socket is shut down).
    fn finish(&self) -> bool {
        self.state
            .compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn expired(&self) -> bool {
        self.state.load(Ordering::Acquire) == EXPIRED
    }
}

impl Drop for Watchdog {
    /// Also on a cancel by `stop()`: wakes the helper at once (lock-free, never blocks).
    fn drop(&mut self) {
        self.finished.fire();
    }
}

/// The TLS handshake, in the connection's coroutine (gevent: `wrap_socket_and_handle`).
/// `None`: the handshake failed or timed out; it was logged and the connection is closed.
pub(crate) fn wrap(
    tls: Option<&TlsOptions>,
    logger: &slog::Logger,
    stream: Stream,
    address: &Address,
) -> Option<Stream> {
    let Some(tls) = tls else {
        return Some(stream);
    };
    let plain = match stream.into_plain() {
        Ok(plain) => plain,
        Err(stream) => return Some(stream),
    };
    let timeout = tls.handshake_timeout;
    let set_timeouts = |plain: &PlainStream, dur| {
        plain
            .set_read_timeout(dur)
            .and_then(|()| plain.set_write_timeout(dur))
    };
    // Each read and write is bounded as well: a backstop for the watchdog.
    let watchdog =
        set_timeouts(&plain, Some(timeout)).and_then(|()| Watchdog::start(&plain, timeout));
    let watchdog = match watchdog {
        Ok(watchdog) => watchdog,
        Err(err) => {
            debug!(logger, "tls handshake setup failed"; "peer" => %address, "error" => %err);
            return None;
        }
    };
    let result = tls.acceptor.accept(plain);
    let in_time = watchdog.finish();
    match result {
        Ok(stream) if in_time => match set_timeouts(stream.get_ref(), None) {
            Ok(()) => Some(Stream::tls(stream)),
            Err(err) => {
                debug!(logger, "tls handshake setup failed"; "peer" => %address, "error" => %err);
                None
            }
        },
        Ok(_) => {
            debug!(logger, "tls handshake timed out"; "peer" => %address,
                "timeout_ms" => timeout.as_millis() as u64);
            None
        }
        Err(err) if watchdog.expired() || is_timeout(&err) => {
            debug!(logger, "tls handshake timed out"; "peer" => %address,
                "timeout_ms" => timeout.as_millis() as u64, "error" => %err);
            None
        }
        Err(err) => {
            debug!(logger, "tls handshake failed"; "peer" => %address, "error" => %err);
            None
        }
    }
}

/// The handshake failed because a socket read or write timed out.
fn is_timeout(err: &native_tls::HandshakeError<PlainStream>) -> bool {
    if let native_tls::HandshakeError::WouldBlock(_) = err {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            );
        }
        source = err.source();
    }
    false
}

/// TLS setters of the stream server builders.
macro_rules! tls_builder_methods {
    () => {
        /// Serve TLS with the PEM certificate (chain) in `certfile` and the private key in
        /// `keyfile` (PKCS#8, PKCS#1 or SEC1). The files are read and checked at `build()`.
        /// gevent: `certfile=`, `keyfile=`.
        pub fn tls_files(
            mut self,
            certfile: impl AsRef<std::path::Path>,
            keyfile: impl AsRef<std::path::Path>,
        ) -> Self {
            self.tls.source = crate::tls::TlsSource::Files {
                certfile: certfile.as_ref().to_path_buf(),
                keyfile: keyfile.as_ref().to_path_buf(),
            };
            self
        }

        /// Serve TLS with the identity in a PKCS#12 (`.p12`/`.pfx`) file.
        pub fn tls_pkcs12(mut self, path: impl AsRef<std::path::Path>, password: &str) -> Self {
            self.tls.source = crate::tls::TlsSource::Pkcs12 {
                path: path.as_ref().to_path_buf(),
                password: password.to_owned(),
            };
            self
        }

        /// Serve TLS with a ready acceptor. gevent: `ssl_context=`.
        pub fn tls_acceptor(mut self, acceptor: native_tls::TlsAcceptor) -> Self {
            self.tls.source = crate::tls::TlsSource::Acceptor(acceptor);
            self
        }

        /// How long a client has to finish the whole TLS handshake (a deadline, not a
        /// per-read timeout); then the connection is closed and the failure logged at DEBUG.
        /// Default: 10 s. Zero is an error at `build()`.
        pub fn handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.tls.handshake_timeout = Some(timeout);
            self
        }
    };
}
pub(crate) use tls_builder_methods;
