//! What an application returns: [`Body`], [`AppError`], [`AppResult`] (leaf types shared by the
//! application interface and the response writer).

use std::fmt;
use std::fs::File;
use std::io::{self, Seek};

/// The error an application may return: anything boxed. Before anything was sent the client gets
/// `500 Internal Server Error`; afterwards the connection is closed. The error goes to the error
/// log with the environ redacted.
pub use crate::error::BoxError as AppError;

/// What an application returns: the response body, or an error.
pub type AppResult = Result<Body, AppError>;

type Chunks = Box<dyn Iterator<Item = Result<Vec<u8>, AppError>>>;

pub(crate) enum BodyKind {
    Empty,
    Static(&'static [u8]),
    Bytes(Vec<u8>),
    List(Vec<Vec<u8>>),
    Stream(Chunks),
    /// `len` bytes of `file` from `offset`.
    File {
        file: File,
        offset: u64,
        len: u64,
    },
}

/// Runs a close callback when dropped (exactly once).
pub(crate) struct CloseGuard(Option<Box<dyn FnOnce()>>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if let Some(close) = self.0.take() {
            close();
        }
    }
}

/// A response body.
///
/// - Buffered: a single buffer or a list of buffers (`From<Vec<u8>>`, `From<Vec<Vec<u8>>>`,
///   `From<&'static str>`...). The server knows the length and sends `Content-Length` (gevent: a
///   list result).
/// - Streamed: an iterator of chunks ([`Body::stream`], [`Body::try_stream`]), written as they are
///   produced: chunked on HTTP/1.1, close-delimited on HTTP/1.0 (gevent: a generator result). An
///   `Err` item ends the response: 500 if nothing was sent yet, otherwise the connection is closed
///   after what was sent. Empty chunks are skipped; a stream that yields no data at all is
///   sent as an empty body with `Content-Length: 0`.
/// - From a file ([`Body::file`]): `Content-Length` from the file's size, the bytes sent with
///   `sendfile(2)` (gevent: `environ['wsgi.file_wrapper']`).
///
/// The body is dropped exactly once when the response is done (or abandoned): that is its
/// `close()`. [`Body::on_close`] adds an explicit callback.
pub struct Body {
    kind: BodyKind,
    close: Option<CloseGuard>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            BodyKind::Empty => "empty".to_owned(),
            BodyKind::Static(bytes) => format!("{} bytes", bytes.len()),
            BodyKind::Bytes(bytes) => format!("{} bytes", bytes.len()),
            BodyKind::List(list) => format!("{} buffers", list.len()),
            BodyKind::Stream(_) => "stream".to_owned(),
            BodyKind::File { len, .. } => format!("file, {len} bytes"),
        };
        f.debug_struct("Body")
            .field("kind", &kind)
            .field("on_close", &self.close.is_some())
            .finish()
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl Body {
    /// An empty body (`Content-Length: 0`).
    pub fn empty() -> Body {
        Body {
            kind: BodyKind::Empty,
            close: None,
        }
    }

    /// A streamed body from any iterator of chunks (`Vec<u8>`, `String`, `&'static str`...).
    pub fn stream<I>(chunks: I) -> Body
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: Into<Vec<u8>>,
    {
        Body {
            kind: BodyKind::Stream(Box::new(chunks.into_iter().map(|chunk| Ok(chunk.into())))),
            close: None,
        }
    }

    /// A streamed body from an iterator of fallible chunks; an `Err` ends the response.
    pub fn try_stream<I, T, E>(chunks: I) -> Body
    where
        I: IntoIterator<Item = Result<T, E>>,
        I::IntoIter: 'static,
        T: Into<Vec<u8>>,
        E: Into<AppError>,
    {
        Body {
            kind: BodyKind::Stream(Box::new(
                chunks
                    .into_iter()
                    .map(|item| item.map(Into::into).map_err(Into::into)),
            )),
            close: None,
        }
    }

    /// A body sent from a regular file: from the file's current position (0 for a file just
    /// opened) to its end as it is now. gevent: `environ['wsgi.file_wrapper'](f)` (PEP 3333's
    /// optional file wrapper; here it is this constructor, not an environ key, and it has no
    /// block size: the server picks how it sends).
    ///
    /// - The response gets `Content-Length` (HTTP/1.0 and 1.1 alike), so the connection can
    ///   stay alive; an application `Content-Length` must agree (or the client gets a 500).
    /// - The bytes go out after the head with the connection's
    ///   [`send_file`](super::Connection::send_file): `sendfile(2)` on a plain TCP or Unix
    ///   connection (the kernel copies from the page cache; on a full send buffer the
    ///   coroutine waits under the write timeout, as for any write), a bounded copy (64 KiB at
    ///   a time) over TLS. The file's position is not moved.
    /// - A response to HEAD announces the length and sends nothing; a `304 Not Modified`
    ///   sends neither (the file is the representation a `200` would carry: not an error,
    ///   unlike a non-empty buffered body on a 304).
    /// - If the file has shrunk by the time it is sent (truncated meanwhile), the client gets
    ///   the bytes there are and the connection is closed: the announced length is never
    ///   followed by anything else. The error log says `response body length ... does not
    ///   match its Content-Length`. A file that grew is sent at its length here.
    /// - After the head was already sent through the `write` callable, the file is sent in
    ///   that response's framing (chunked, for instance), copied through the buffer.
    ///
    /// The file is closed when the body is dropped (when the response is done).
    ///
    /// ```no_run
    /// # use may_gevent::pywsgi::{AppResult, Body, Environ, StartResponse};
    /// fn app(_env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
    ///     let file = std::fs::File::open("static/index.html")?;
    ///     let body = Body::file(file)?;
    ///     start_response.call("200 OK", &[("Content-Type", "text/html")])?;
    ///     Ok(body)
    /// }
    /// # let _ = app;
    /// ```
    ///
    /// # Errors
    /// The file's metadata or position cannot be read; `ErrorKind::InvalidInput` when it is
    /// not a regular file (a pipe, a socket, a device or a directory has no length to announce
    /// and may block the worker thread on read: stream those with [`Body::try_stream`]).
    pub fn file(file: File) -> io::Result<Body> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Body::file needs a regular file (stream other files with Body::try_stream)",
            ));
        }
        let offset = (&file).stream_position()?;
        Ok(Body {
            kind: BodyKind::File {
                file,
                offset,
                len: meta.len().saturating_sub(offset),
            },
            close: None,
        })
    }

    /// Adds a callback run exactly once when the server is done with the body (sent, failed or
    /// abandoned), after the body itself was dropped. gevent: the result's `close()`.
    pub fn on_close<F: FnOnce() + 'static>(mut self, close: F) -> Body {
        let previous = self.close.take();
        self.close = Some(CloseGuard(Some(Box::new(move || {
            drop(previous);
            close();
        }))));
        self
    }

    /// The total length, when the body is buffered or a file.
    pub fn len_hint(&self) -> Option<u64> {
        match &self.kind {
            BodyKind::Empty => Some(0),
            BodyKind::Static(bytes) => Some(bytes.len() as u64),
            BodyKind::Bytes(bytes) => Some(bytes.len() as u64),
            BodyKind::List(list) => Some(list.iter().map(|part| part.len() as u64).sum()),
            BodyKind::File { len, .. } => Some(*len),
            BodyKind::Stream(_) => None,
        }
    }

    /// Whether this is a streamed body.
    pub fn is_stream(&self) -> bool {
        matches!(self.kind, BodyKind::Stream(_))
    }

    pub(crate) fn into_parts(self) -> (BodyKind, Option<CloseGuard>) {
        (self.kind, self.close)
    }
}

impl From<Vec<Vec<u8>>> for Body {
    fn from(list: Vec<Vec<u8>>) -> Body {
        Body {
            kind: BodyKind::List(list),
            close: None,
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body {
            kind: BodyKind::Bytes(bytes),
            close: None,
        }
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Body {
        Body {
            kind: BodyKind::Static(bytes),
            close: None,
        }
    }
}

impl<const N: usize> From<&'static [u8; N]> for Body {
    fn from(bytes: &'static [u8; N]) -> Body {
        Body {
            kind: BodyKind::Static(bytes),
            close: None,
        }
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Body {
        Body {
            kind: BodyKind::Static(text.as_bytes()),
            close: None,
        }
    }
}

impl From<String> for Body {
    fn from(text: String) -> Body {
        Body {
            kind: BodyKind::Bytes(text.into_bytes()),
            close: None,
        }
    }
}

impl From<Vec<String>> for Body {
    fn from(list: Vec<String>) -> Body {
        Body {
            kind: BodyKind::List(list.into_iter().map(String::into_bytes).collect()),
            close: None,
        }
    }
}

impl From<()> for Body {
    fn from((): ()) -> Body {
        Body::empty()
    }
}
