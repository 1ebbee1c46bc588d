//! A decoder for the chunked transfer coding of request bodies (RFC 9112 section 7.1).
//!
//! It is a pure state machine over byte slices: it is fed whatever bytes have arrived (down to one
//! byte at a time), consumes framing bytes itself and points the caller at chunk data, which the
//! caller copies out (or hands to the application straight from the read buffer). It never buffers
//! a body, so memory stays bounded whatever the peer sends.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! Decisions (stricter than gevent where gevent is lenient):
//! - the size is 1 to 16 hex digits (gevent: same); whitespace is allowed after it only before a
//!   `;` (BWS); anything else, a bare LF included, is an error;
//! - an extension is not parsed (it is ignored, as RFC 9112 allows) but may not contain control
//!   characters other than HTAB and is at most [`MAX_CHUNK_EXTENSION`] bytes (gevent accepts any byte
//!   but CR, NUL included);
//! - every line ends in CRLF exactly, and chunk data is followed by CRLF exactly;
//! - trailer fields must be `token ":" value` lines (no whitespace before the colon, no obs-fold, no
//!   control characters in the value; gevent accepts a line with no colon), each at most
//!   [`MAX_TRAILER_LINE`] bytes and [`MAX_TRAILER_SECTION`] in all. Trailers are checked and then
//!   ignored. A bad trailer is what CVE-2023-41419 smuggled a request through.
//!
//! [`MAX_CHUNK_EXTENSION`]: super::config::MAX_CHUNK_EXTENSION
//! [`MAX_TRAILER_LINE`]: super::config::MAX_TRAILER_LINE
//! [`MAX_TRAILER_SECTION`]: super::config::MAX_TRAILER_SECTION

use std::fmt;

use super::config::{MAX_CHUNK_EXTENSION, MAX_TRAILER_LINE, MAX_TRAILER_SECTION};
use super::syntax::is_tchar;

/// Why a chunked body is malformed. Each one is answered with a 400 (if nothing was sent yet) and
/// closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// A chunk-size line that does not start with a hex digit or has a stray byte.
    InvalidSize,
    /// More than 16 hex digits.
    SizeTooLarge,
    /// A control character inside a chunk extension.
    InvalidExtension,
    /// A chunk extension over the limit.
    ExtensionTooLong,
    /// A chunk-size line or the final line not ended by CRLF.
    BadLineEnding,
    /// Chunk data not followed by CRLF.
    BadDataEnding,
    /// A malformed trailer line.
    InvalidTrailer,
    /// A trailer line or section over the limit.
    TrailerTooLarge,
}

impl ChunkError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            ChunkError::InvalidSize => "invalid chunk size",
            ChunkError::SizeTooLarge => "chunk size too large",
            ChunkError::InvalidExtension => "invalid character in chunk extension",
            ChunkError::ExtensionTooLong => "chunk extension too long",
            ChunkError::BadLineEnding => "chunk line did not end in CRLF",
            ChunkError::BadDataEnding => "chunk data not followed by CRLF",
            ChunkError::InvalidTrailer => "invalid trailer field",
            ChunkError::TrailerTooLarge => "trailer section too large",
        }
    }
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits.
    Size,
    /// Whitespace after the size; only `;` may follow.
    SizeWs,
    /// Inside an extension, up to CR.
    Ext,
    /// CR of the size line seen, LF expected.
    SizeLf,
    /// Chunk data: `remaining` bytes to go (never 0 in this state).
    Data,
    /// CR after chunk data expected.
    DataCr,
    /// LF after chunk data expected.
    DataLf,
    /// Start of a trailer line, or the CR of the final empty line.
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// CR of a trailer line seen, LF expected.
    TrailerLf,
    /// CR of the final empty line seen, LF expected.
    EndLf,
    /// The body is complete.
    Done,
}

/// State machine decoding one chunked body.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Chunk size being parsed, then the data bytes left in the current chunk.
    remaining: u64,
    digits: u8,
    /// Bytes in the current extension or trailer line.
    line: usize,
    /// Bytes in the trailer section so far.
    trailers: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> ChunkedDecoder {
        ChunkedDecoder::new()
    }
}

/// HTAB, SP, VCHAR or obs-text: what a field value or extension may contain.
#[inline]
fn is_field_char(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

impl ChunkedDecoder {
    pub(crate) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            remaining: 0,
            digits: 0,
            line: 0,
            trailers: 0,
        }
    }

    /// Whether the whole body (last chunk, trailers, final CRLF) has been decoded.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes of the current chunk still to come (0 when not inside chunk data).
    #[inline]
    pub(crate) fn data_remaining(&self) -> u64 {
        if self.state == State::Data {
            self.remaining
        } else {
            0
        }
    }

    /// Records that `n` data bytes (at most [`Self::data_remaining`]) were taken.
    #[inline]
    pub(crate) fn consume_data(&mut self, n: usize) {
        debug_assert!(self.state == State::Data && n as u64 <= self.remaining);
        self.remaining -= (n as u64).min(self.remaining);
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
    }

    /// Consumes framing bytes from the start of `src` until chunk data begins, the body ends or
    /// `src` runs out. Returns how many bytes were consumed. When this returns and
    /// [`Self::data_remaining`] is non-zero, `src[consumed..]` starts with chunk data.
    pub(crate) fn decode_framing(&mut self, src: &[u8]) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < src.len() {
            let b = src[i];
            match self.state {
                State::Data | State::Done => break,
                State::SizeStart => {
                    let digit = hex_value(b).ok_or(ChunkError::InvalidSize)?;
                    self.remaining = u64::from(digit);
                    self.digits = 1;
                    self.state = State::Size;
                }
                State::Size => match b {
                    b'\r' => self.state = State::SizeLf,
                    b';' => {
                        self.line = 0;
                        self.state = State::Ext;
                    }
                    b' ' | b'\t' => self.state = State::SizeWs,
                    _ => {
                        let digit = hex_value(b).ok_or(ChunkError::InvalidSize)?;
                        if self.digits >= 16 {
                            return Err(ChunkError::SizeTooLarge);
                        }
                        self.digits += 1;
                        self.remaining = (self.remaining << 4) | u64::from(digit);
                    }
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => {
                        self.line = 0;
                        self.state = State::Ext;
                    }
                    _ => return Err(ChunkError::InvalidSize),
                },
                State::Ext => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if !is_field_char(b) {
                        return Err(ChunkError::InvalidExtension);
                    } else {
                        self.line += 1;
                        if self.line > MAX_CHUNK_EXTENSION {
                            return Err(ChunkError::ExtensionTooLong);
                        }
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    if self.remaining == 0 {
                        self.line = 0;
                        self.state = State::TrailerStart;
                    } else {
                        self.state = State::Data;
                        i += 1;
                        break;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadDataEnding);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadDataEnding);
                    }
                    self.state = State::SizeStart;
                }
                State::TrailerStart => {
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else if is_tchar(b) {
                        self.line = 1;
                        self.count_trailer_byte()?;
                        self.state = State::TrailerName;
                    } else {
                        // whitespace here would be obs-fold; ':' an empty name; LF a bare LF
                        return Err(ChunkError::InvalidTrailer);
                    }
                }
                State::TrailerName => {
                    self.line += 1;
                    self.count_trailer_byte()?;
                    if b == b':' {
                        self.state = State::TrailerValue;
                    } else if !is_tchar(b) {
                        return Err(ChunkError::InvalidTrailer);
                    }
                }
                State::TrailerValue => {
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if is_field_char(b) {
                        self.line += 1;
                        self.count_trailer_byte()?;
                    } else {
                        return Err(ChunkError::InvalidTrailer);
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::InvalidTrailer);
                    }
                    self.state = State::TrailerStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    self.state = State::Done;
                    i += 1;
                    break;
                }
            }
            i += 1;
        }
        Ok(i)
    }

    fn count_trailer_byte(&mut self) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.line > MAX_TRAILER_LINE || self.trailers > MAX_TRAILER_SECTION {
            return Err(ChunkError::TrailerTooLarge);
        }
        Ok(())
    }

    /// Decodes as much of `src` as possible, appending chunk data to `out`. Returns the bytes of
    /// `src` consumed (all of them unless the body ended inside `src`).
    pub(crate) fn decode(&mut self, src: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut pos = 0;
        loop {
            pos += self.decode_framing(&src[pos..])?;
            let want = self.data_remaining();
            if want == 0 || pos == src.len() {
                return Ok(pos);
            }
            let take = (src.len() - pos).min(usize::try_from(want).unwrap_or(usize::MAX));
            out.extend_from_slice(&src[pos..pos + take]);
            self.consume_data(take);
            pos += take;
        }
    }
}

#[inline]
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole, then byte by byte; both must agree.
    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut whole = ChunkedDecoder::new();
        let mut out = Vec::new();
        let used = whole.decode(input, &mut out);
        let mut bytewise = ChunkedDecoder::new();
        let mut out2 = Vec::new();
        let mut used2 = 0;
        let mut err2 = None;
        for b in input {
            if bytewise.is_done() {
                break;
            }
            match bytewise.decode(std::slice::from_ref(b), &mut out2) {
                Ok(n) => used2 += n,
                Err(err) => {
                    err2 = Some(err);
                    break;
                }
            }
        }
        match used {
            Ok(n) => {
                assert_eq!(err2, None);
                assert_eq!(out, out2);
                assert_eq!(n, used2);
                assert_eq!(whole.is_done(), bytewise.is_done());
                Ok((out, n))
            }
            Err(err) => {
                assert_eq!(err2, Some(err));
                Err(err)
            }
        }
    }

    fn done(input: &[u8]) -> Vec<u8> {
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = dec.decode(input, &mut out).expect("valid");
        assert!(
            dec.is_done(),
            "not done: {:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(n, input.len());
        decode_all(input).expect("valid bytewise");
        out
    }

    fn err(input: &[u8]) -> ChunkError {
        decode_all(input).expect_err("must be rejected")
    }

    #[test]
    fn simple_bodies() {
        assert_eq!(done(b"2\r\noh\r\n4\r\n hai\r\n0\r\n\r\n"), b"oh hai");
        assert_eq!(done(b"0\r\n\r\n"), b"");
        assert_eq!(done(b"A\r\n0123456789\r\n0\r\n\r\n"), b"0123456789");
        assert_eq!(done(b"a\r\n0123456789\r\n000\r\n\r\n"), b"0123456789");
        assert_eq!(done(b"0000000000000001\r\nx\r\n0\r\n\r\n"), b"x");
    }

    #[test]
    fn extensions() {
        assert_eq!(
            done(b"2;token=\"oh hi\"\r\noh\r\n4\r\n hai\r\n0\r\n\r\n"),
            b"oh hai"
        );
        assert_eq!(done(b"2;token=oh_hi\r\noh\r\n0;last\r\n\r\n"), b"oh");
        assert_eq!(done(b"2 ; a=b\r\noh\r\n0\r\n\r\n"), b"oh");
        assert_eq!(done(b"2; here is dirt\r\noh\r\n0\r\n\r\n"), b"oh");
        assert_eq!(
            err(b"2; here is dirt\0bla\r\noh\r\n"),
            ChunkError::InvalidExtension
        );
        let mut long = b"2;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_EXTENSION + 1));
        assert_eq!(err(&long), ChunkError::ExtensionTooLong);
    }

    #[test]
    fn trailers() {
        assert_eq!(
            done(b"2\r\noh\r\n0\r\ntrailer1: value1\r\ntrailer2: value2\r\n\r\n"),
            b"oh"
        );
        assert_eq!(done(b"0\r\nX:\r\n\r\n"), b"");
        // a request line where a trailer should be (CVE-2023-41419)
        assert_eq!(
            err(b"0\r\nGET /path2?a=:123 HTTP/1.1\r\n"),
            ChunkError::InvalidTrailer
        );
        assert_eq!(
            err(b"0\r\nHeader: value\r\nGET / HTTP/1.1\r\n"),
            ChunkError::InvalidTrailer
        );
        assert_eq!(err(b"0\r\nname value\r\n"), ChunkError::InvalidTrailer);
        assert_eq!(err(b"0\r\nname : value\r\n"), ChunkError::InvalidTrailer);
        assert_eq!(err(b"0\r\n: value\r\n"), ChunkError::InvalidTrailer);
        assert_eq!(err(b"0\r\nA: b\r\n c\r\n"), ChunkError::InvalidTrailer);
        assert_eq!(err(b"0\r\nA: b\nB: c\r\n"), ChunkError::InvalidTrailer);
        assert_eq!(err(b"0\r\nA: b\0\r\n"), ChunkError::InvalidTrailer);
        assert_eq!(err(b"0\r\n\n"), ChunkError::InvalidTrailer);
        assert_eq!(err(b"0\r\n\rx"), ChunkError::BadLineEnding);
        let mut long = b"0\r\ntrailer2: value2".to_vec();
        long.extend(std::iter::repeat_n(b't', MAX_TRAILER_LINE));
        assert_eq!(err(&long), ChunkError::TrailerTooLarge);
        let mut many = b"0\r\n".to_vec();
        for _ in 0..(MAX_TRAILER_SECTION / 8 + 1) {
            many.extend_from_slice(b"abcd: xyz\r\n");
        }
        assert_eq!(err(&many), ChunkError::TrailerTooLarge);
    }

    #[test]
    fn bad_sizes_and_line_endings() {
        assert_eq!(err(b"\r\n"), ChunkError::InvalidSize);
        assert_eq!(err(b"x\r\n"), ChunkError::InvalidSize);
        assert_eq!(err(b"{\"hi\": \"ho\"}"), ChunkError::InvalidSize);
        assert_eq!(err(b"-1\r\n"), ChunkError::InvalidSize);
        assert_eq!(err(b"+1\r\n"), ChunkError::InvalidSize);
        assert_eq!(err(b"0x1\r\n"), ChunkError::InvalidSize);
        assert_eq!(err(b" 1\r\n"), ChunkError::InvalidSize);
        assert_eq!(err(b"1 \r\n"), ChunkError::InvalidSize);
        assert_eq!(err(b"1\n"), ChunkError::InvalidSize);
        assert_eq!(err(b"1\rx"), ChunkError::BadLineEnding);
        assert_eq!(err(b"00000000000000001\r\n"), ChunkError::SizeTooLarge);
        assert_eq!(err(b"1\r\nab"), ChunkError::BadDataEnding);
        assert_eq!(err(b"1\r\na\n"), ChunkError::BadDataEnding);
        assert_eq!(err(b"1\r\na\rx"), ChunkError::BadDataEnding);
        // the last chunk missing its CRLF, a request line glued to it
        assert_eq!(err(b"0GET /path2 HTTP/1.1\r\n"), ChunkError::InvalidSize);
    }

    #[test]
    fn huge_size_does_not_allocate() {
        let mut dec = ChunkedDecoder::new();
        let n = dec.decode_framing(b"ffffffffffffffff\r\nabc").unwrap();
        assert_eq!(n, 18);
        assert_eq!(dec.data_remaining(), u64::MAX);
        dec.consume_data(3);
        assert_eq!(dec.data_remaining(), u64::MAX - 3);
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        let input = b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let n = dec.decode(input, &mut out).unwrap();
        assert!(dec.is_done());
        assert_eq!(&input[n..], b"GET / HTTP/1.1\r\n");
        assert_eq!(out, b"a");
    }

    #[test]
    fn partial_input_keeps_state() {
        let mut dec = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(dec.decode(b"5\r\nhel", &mut out).unwrap(), 6);
        assert_eq!(dec.data_remaining(), 2);
        assert_eq!(dec.decode(b"lo\r", &mut out).unwrap(), 3);
        assert!(!dec.is_done());
        assert_eq!(dec.decode(b"\n0\r\n\r\n", &mut out).unwrap(), 6);
        assert!(dec.is_done());
        assert_eq!(out, b"hello");
    }
}
