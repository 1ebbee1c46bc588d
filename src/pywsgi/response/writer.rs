//! The callables handed to the application: [`StartResponse`] and the `write` callable
//! [`Writer`].

use std::fmt;
use std::io;

use super::validate::ResponseError;
use super::{Failure, Response};

/// The `start_response` callable handed to the application.
///
/// ```
/// # use may_gevent::pywsgi::{AppResult, Environ, StartResponse};
/// fn app(_env: &mut Environ, start_response: &mut StartResponse<'_>) -> AppResult {
///     let mut write = start_response.call("200 OK", &[("Content-Type", "text/plain")])?;
///     write.write(b"written at once; ")?; // gevent's write() callable
///     Ok("then the returned body".into())
/// }
/// # let _ = app;
/// ```
///
/// - [`StartResponse::call`] may be called again to replace the status and headers as long as the
///   head has not been sent (gevent's `exc_info` rule); afterwards it fails with
///   [`ResponseError::HeadersAlreadySent`].
/// - A CR or LF in the status, a header name or a header value is an error (no header injection);
///   so are other control characters and characters above U+00FF (headers are latin-1).
/// - The status must start with a 3-digit code (`"200"` alone is fine). 1xx statuses other than
///   `101` are refused; `101` only for an HTTP/1.1 request that asked for an upgrade.
/// - `Transfer-Encoding` is the server's business and refused. A Content-Length other than 0 on a
///   204 or 304 is refused with gevent's message.
///
/// gevent: `WSGIHandler.start_response`.
pub struct StartResponse<'a> {
    resp: &'a mut Response,
}

impl fmt::Debug for StartResponse<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartResponse")
            .field("status", &self.status_code())
            .field("headers_sent", &self.headers_sent())
            .finish()
    }
}

impl<'a> StartResponse<'a> {
    pub(crate) fn new(resp: &'a mut Response) -> StartResponse<'a> {
        StartResponse { resp }
    }

    /// Sets the response status and headers, and returns the `write` callable.
    ///
    /// # Errors
    ///
    /// A [`ResponseError`] for an invalid status or header, or when the head was already sent; a
    /// failed call changes nothing.
    pub fn call(
        &mut self,
        status: &str,
        headers: &[(&str, &str)],
    ) -> Result<Writer<'_>, ResponseError> {
        self.resp.start(status, headers)?;
        Ok(Writer {
            resp: &mut *self.resp,
        })
    }

    /// The `write` callable again (after a successful [`StartResponse::call`]).
    ///
    /// # Errors
    ///
    /// [`ResponseError::NotStarted`] before `call`.
    pub fn writer(&mut self) -> Result<Writer<'_>, ResponseError> {
        if !self.resp.phase().started() {
            return Err(ResponseError::NotStarted);
        }
        Ok(Writer {
            resp: &mut *self.resp,
        })
    }

    /// Whether the response head has been sent (then `call` can no longer change it).
    pub fn headers_sent(&self) -> bool {
        self.resp.head_sent()
    }

    /// The status code set by the last successful `call` (0 before).
    pub fn status_code(&self) -> u16 {
        self.resp.status_code()
    }
}

/// The `write` callable returned by [`StartResponse::call`] (PEP 3333 "the write() callable").
///
/// The first write sends the head (a `write(b"")` sends only the head); each write goes out
/// immediately. Without an application Content-Length, a response using `write` is chunked on
/// HTTP/1.1 and close-delimited on HTTP/1.0. After a `101`, bytes are written raw.
pub struct Writer<'a> {
    resp: &'a mut Response,
}

impl fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("headers_sent", &self.resp.head_sent())
            .finish()
    }
}

impl Writer<'_> {
    /// Writes `data` to the client now (all of it or an error).
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidInput` wrapping a [`ResponseError`] for a body on a 204/304 response or
    /// more bytes than the declared Content-Length; the I/O error when the client is gone.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.resp
            .write_data(data, true)
            .map_err(|failure| match failure {
                Failure::Protocol(err) => err.into(),
                Failure::Disconnect(err) => err,
                Failure::App(err) => io::Error::other(err),
            })
    }
}

impl io::Write for Writer<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        Writer::write(self, data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.resp.flush()
    }
}
