//! Body framing on the wire: one [`Encoder`] per response, chosen with its head.

use std::io;

use super::super::io::Link;

/// How the body of the current response is delimited on the wire (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoder {
    /// 1xx/204/304: no body may be written.
    NoBody,
    /// A response to HEAD: body bytes are dropped.
    HeadOnly,
    /// Content-Length: `remaining` of the `declared` bytes still to send.
    Length {
        /// Bytes still to send.
        remaining: u64,
        /// The length in the head.
        declared: u64,
    },
    /// The chunked transfer coding.
    Chunked,
    /// HTTP/1.0 with an unknown length: the body ends when the connection closes.
    CloseDelimited,
    /// After a `101`: raw bytes.
    Raw,
}

/// What became of body bytes given to [`Encoder::encode`].
#[derive(Debug)]
pub(super) enum Encoded {
    /// Queued (or written through): this many bytes on the wire, and the write's result.
    Queued(u64, io::Result<()>),
    /// Body bytes on a response that cannot have a body.
    NotAllowed,
    /// More bytes than declared: only the first `queued` went out.
    TooLong {
        /// Bytes queued (the rest of the declared length).
        queued: u64,
        /// The declared length.
        declared: u64,
        /// The body's length so far (at least).
        actual: u64,
    },
}

impl Encoder {
    /// A Content-Length body of `n` bytes.
    pub(super) fn length(n: u64) -> Encoder {
        Encoder::Length {
            remaining: n,
            declared: n,
        }
    }

    /// Queues `data` in this framing. Never more than a declared length: that would desynchronise
    /// the connection.
    pub(super) fn encode(&mut self, link: &mut Link, data: &[u8]) -> Encoded {
        match *self {
            Encoder::HeadOnly => Encoded::Queued(0, Ok(())),
            Encoder::NoBody if data.is_empty() => Encoded::Queued(0, Ok(())),
            Encoder::NoBody => Encoded::NotAllowed,
            Encoder::Length {
                remaining,
                declared,
            } => {
                let take = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
                *self = Encoder::Length {
                    remaining: remaining - take as u64,
                    declared,
                };
                let res = link.write_through(&data[..take]);
                if take < data.len() {
                    return Encoded::TooLong {
                        queued: take as u64,
                        declared,
                        actual: declared - remaining + data.len() as u64,
                    };
                }
                Encoded::Queued(take as u64, res)
            }
            Encoder::Chunked if data.is_empty() => Encoded::Queued(0, Ok(())),
            Encoder::Chunked => {
                let digits = push_hex(&mut link.wbuf, data.len());
                link.wbuf.extend_from_slice(b"\r\n");
                let res = link.write_through(data);
                link.wbuf.extend_from_slice(b"\r\n");
                Encoded::Queued((digits + 4 + data.len()) as u64, res)
            }
            Encoder::CloseDelimited | Encoder::Raw => {
                Encoded::Queued(data.len() as u64, link.write_through(data))
            }
        }
    }

    /// Ends the body: `Ok(n)` with the `n` bytes of the chunked terminator queued (0 for other
    /// framings, or a dead link), or `Err((declared, actual))` when a Content-Length was not
    /// reached.
    pub(super) fn finish(&self, link: &mut Link) -> Result<u64, (u64, u64)> {
        match *self {
            Encoder::Chunked if link.phase.is_dead() => Ok(0),
            Encoder::Chunked => {
                link.wbuf.extend_from_slice(b"0\r\n\r\n");
                Ok(5)
            }
            Encoder::Length {
                remaining,
                declared,
            } if remaining > 0 => Err((declared, declared - remaining)),
            _ => Ok(0),
        }
    }
}

/// Appends `Content-Length: <n>\r\n\r\n` (the last header line and the blank line).
#[inline]
pub(super) fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.reserve(44);
    out.extend_from_slice(b"Content-Length: ");
    let mut buf = [0u8; 20];
    // byte-sized copies: no wide read of the narrow stores just made
    for &digit in crate::pywsgi::syntax::decimal(n, &mut buf) {
        out.push(digit);
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends `n` in lower-case hex; returns the number of digits.
fn push_hex(out: &mut Vec<u8>, mut n: usize) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    digits.len() - i
}
