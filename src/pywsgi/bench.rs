//! Internals exposed for benchmarks and fuzzing only (`__private`); not a stable API.

use std::cell::RefCell;
use std::rc::Rc;

use super::chunked::ChunkedDecoder;
use super::head::{self, Limits, RequestHead};
use super::io::{Link, Shared};
use super::response::Response;

/// A reusable request-head parser (the engine's, with the default limits).
#[derive(Debug, Default)]
pub struct HeadParser(RequestHead);

impl HeadParser {
    /// Parses one request head; returns its length, `None` when incomplete, or the status
    /// code of the rejection.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<usize>, u16> {
        let limits = Limits::new(super::MAX_REQUEST_LINE, super::MAX_HEADER_BLOCK, None);
        head::parse(buf, &mut self.0, &limits).map_err(|err| err.status())
    }
}

/// Fuzzing: panics if the fast head tokenizer takes `buf` and httparse refuses it or splits
/// it differently; true if the fast tokenizer took it.
pub fn check_fast_head(buf: &[u8]) -> bool {
    match head::compare_fast_with_httparse(buf) {
        Ok(taken) => taken,
        Err(diff) => panic!("fast head tokenizer disagrees with httparse: {diff}"),
    }
}

/// Serialises a hello-world response (`start_response` with one header, a static body)
/// through the engine's response writer into an in-memory buffer, as a benchmark target.
pub struct ResponseBench {
    resp: Response,
    link: Shared,
    head: RequestHead,
}

impl std::fmt::Debug for ResponseBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseBench")
    }
}

struct Sink;

impl std::io::Read for Sink {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Ok(0)
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl super::Connection for Sink {
    fn set_read_timeout(&mut self, _: Option<std::time::Duration>) -> std::io::Result<()> {
        Ok(())
    }
    fn set_write_timeout(&mut self, _: Option<std::time::Duration>) -> std::io::Result<()> {
        Ok(())
    }
}

impl Default for ResponseBench {
    fn default() -> ResponseBench {
        let link: Shared = Rc::new(RefCell::new(Link::new(Sink)));
        let mut head = RequestHead::default();
        let limits = Limits::new(8192, 65536, None);
        let _ = head::parse(
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            &mut head,
            &limits,
        );
        ResponseBench {
            resp: Response::new(Rc::clone(&link)),
            link,
            head,
        }
    }
}

impl ResponseBench {
    /// One response with `status` and `headers` (the same arguments every time hit the
    /// `start_response` cache; vary them to measure validation); returns its wire length.
    pub fn run(&mut self, status: &str, headers: &[(&str, &str)], body: &'static [u8]) -> usize {
        self.resp.begin(&self.head, true);
        if self.resp.start(status, headers).is_err() {
            return 0;
        }
        let _ = self.resp.send_body(super::Body::from(body));
        let mut link = self.link.borrow_mut();
        let len = link.wbuf.len();
        link.wbuf.clear();
        len
    }
}

/// Decodes a whole chunked body fed in `piece`-byte slices (through the engine's decoder);
/// returns the decoded length, or `None` if it is malformed or incomplete.
pub fn decode_chunked(body: &[u8], piece: usize, out: &mut Vec<u8>) -> Option<usize> {
    let mut decoder = ChunkedDecoder::new();
    out.clear();
    for slice in body.chunks(piece.max(1)) {
        let mut pos = 0;
        while pos < slice.len() && !decoder.is_done() {
            pos += decoder.decode(&slice[pos..], out).ok()?;
        }
    }
    decoder.is_done().then_some(out.len())
}

/// Resolves the forwarded headers of a request from a trusted peer, as the engine does
/// (`rfc7239`: the `Forwarded` header, else `X-Forwarded-For`/`X-Forwarded-Proto`); the client
/// (port 0 when the header had none) and the scheme.
pub fn resolve_forwarded(
    headers: &[(&[u8], &[u8])],
    rfc7239: bool,
    trusted: &crate::IpAllowList,
) -> (Option<std::net::SocketAddr>, Option<&'static str>) {
    let kind = if rfc7239 {
        super::ForwardedHeader::Forwarded
    } else {
        super::ForwardedHeader::XForwardedFor
    };
    let resolved = super::forwarded::resolve(headers.iter().copied(), kind, trusted);
    (resolved.client_addr(), resolved.scheme)
}

/// Scans the start of a connection for a PROXY protocol header: `Ok(Some(len))` when the
/// header is the first `len` bytes, `Ok(None)` when every byte so far belongs to an incomplete
/// header, or why it is refused.
pub fn scan_proxy_header(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    match crate::proxy_protocol::scan(buf) {
        Ok(crate::proxy_protocol::Scan::Done { len, .. }) => Ok(Some(len)),
        Ok(crate::proxy_protocol::Scan::Need(_)) => Ok(None),
        Err(err) => Err(err.0),
    }
}
