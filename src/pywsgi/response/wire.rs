//! The response head on the wire: the application's head completed by the server (Connection,
//! Date, the framing header), and the canned responses the server sends itself.

use super::super::head::Version;
use super::encode::{push_content_length, Encoder};
use super::validate::AppConnection;
use super::Response;

impl Response {
    /// Serialises the head into the output buffer. `known_len`: the total body length, when the
    /// whole body is already known.
    pub(super) fn send_head(&mut self, known_len: Option<u64>) {
        let head = &self.head;
        let app = &head.app;
        let code = head.code;
        let mut length_header = None;
        self.encoder = if code == 101 {
            self.close = true;
            Encoder::Raw
        } else if code < 200 || code == 204 || code == 304 {
            Encoder::NoBody
        } else if let Some(n) = app.length {
            if self.request.is_head {
                Encoder::HeadOnly
            } else {
                Encoder::length(n)
            }
        } else if let Some(n) = known_len {
            length_header = Some(n);
            if self.request.is_head {
                Encoder::HeadOnly
            } else {
                Encoder::length(n)
            }
        } else if self.request.is_head {
            // unknown length: no framing header (RFC 9110 9.3.2 lets us omit what is only known
            // while generating the content)
            Encoder::HeadOnly
        } else if self.request.version == Version::Http11 {
            Encoder::Chunked
        } else {
            // RFC 9112 6.3 (8): the body ends when the connection closes.
            self.close = true;
            Encoder::CloseDelimited
        };
        if app.connection == AppConnection::Close {
            self.close = true;
        }
        let mut link = self.link.borrow_mut();
        // the server began stopping while this request ran: this is its last response
        if !self.close && link.stream.server_closing() {
            self.close = true;
        }
        let before = link.wbuf.len();
        let wbuf = &mut link.wbuf;
        wbuf.reserve(head.head.len() + 96);
        wbuf.extend_from_slice(&head.head);
        if code == 101 {
            if !app.connection_value.is_empty() {
                wbuf.extend_from_slice(b"Connection: ");
                wbuf.extend_from_slice(&app.connection_value);
                wbuf.extend_from_slice(b"\r\n");
            }
        } else if self.close {
            if app.connection == AppConnection::Close {
                wbuf.extend_from_slice(b"Connection: ");
                wbuf.extend_from_slice(&app.connection_value);
                wbuf.extend_from_slice(b"\r\n");
            } else {
                wbuf.extend_from_slice(b"Connection: close\r\n");
            }
        } else if app.connection == AppConnection::Other {
            wbuf.extend_from_slice(b"Connection: ");
            wbuf.extend_from_slice(&app.connection_value);
            wbuf.extend_from_slice(b"\r\n");
        } else if self.request.version == Version::Http10 {
            wbuf.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        if !app.date {
            wbuf.extend_from_slice(self.date.http_date_line());
        }
        if let Some(n) = length_header {
            push_content_length(wbuf, n);
        } else if self.encoder == Encoder::Chunked {
            wbuf.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        } else {
            wbuf.extend_from_slice(b"\r\n");
        }
        self.bytes_sent += (link.wbuf.len() - before) as u64;
        link.phase = link.phase.sent(code);
    }

    /// Queues a canned error response (`Connection: close`, empty body).
    pub(crate) fn send_error(&mut self, code: u16) {
        let mut link = self.link.borrow_mut();
        if link.phase.is_dead() {
            return;
        }
        let before = link.wbuf.len();
        let wbuf = &mut link.wbuf;
        wbuf.extend_from_slice(b"HTTP/1.1 ");
        wbuf.extend_from_slice(&[
            b'0' + (code / 100 % 10) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        wbuf.extend_from_slice(reason(code).as_bytes());
        wbuf.extend_from_slice(b"\r\nConnection: close\r\nContent-Length: 0\r\n");
        wbuf.extend_from_slice(self.date.http_date_line());
        wbuf.extend_from_slice(b"\r\n");
        self.bytes_sent += (link.wbuf.len() - before) as u64;
        link.phase = link.phase.sent(code);
        self.close = true;
    }

    /// Queues gevent's `500 Internal Server Error` (text/plain, body `Internal Server Error`).
    pub(crate) fn send_internal_error(&mut self) {
        const BODY: &[u8] = b"Internal Server Error";
        let mut link = self.link.borrow_mut();
        if link.phase.is_dead() {
            return;
        }
        let before = link.wbuf.len();
        let wbuf = &mut link.wbuf;
        wbuf.extend_from_slice(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 21\r\n",
        );
        wbuf.extend_from_slice(self.date.http_date_line());
        wbuf.extend_from_slice(b"\r\n");
        if !self.request.is_head {
            wbuf.extend_from_slice(BODY);
        }
        self.bytes_sent += (link.wbuf.len() - before) as u64;
        link.phase = link.phase.sent(500);
        self.close = true;
    }
}

/// RFC 9110 reason phrases of the statuses the server itself sends.
pub(super) fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}
