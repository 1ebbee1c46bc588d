//! The common request head, tokenized without httparse: a strict subset of what httparse
//! (with every leniency off) accepts, split exactly as httparse splits it.
//!
//! [`tokenize`] takes a head only when every byte is in the plainest form: a token method, a
//! visible-ASCII target, `HTTP/1.0` or `HTTP/1.1`, CRLF line ends, token header names
//! followed at once by `:`, and values of visible ASCII, space and tab. Anything else (a
//! partial head, leading empty lines, a bare LF or CR, a control or non-ASCII byte, more
//! header lines than the slots) returns `None`, and httparse parses the head as before; so a
//! head is either refused by both or split the same way by both (`tests.rs` compares them).
//! Every check that follows httparse (line ends, framing, Host, target) runs on the result
//! either way.
//!
//! It exists for speed: httparse's general machinery (uninitialised slots, vector dispatch,
//! partial-input bookkeeping) costs about 500 instructions on a one-header request, this
//! about half of that (callgrind: 257), and its output needs no UTF-8 check.

use httparse::Header;

/// A `tchar` (RFC 9110 5.6.2), httparse's method and header-name characters.
const TOKEN: u8 = 1;
/// `VCHAR` without obs-text: `!` to `~`, the target characters taken here.
const VCHAR: u8 = 2;
/// A field-value character taken here: `VCHAR`, SP, HTAB.
const VALUE: u8 = 4;

/// `HTTP/1.1` and `HTTP/1.0` as little-endian words.
const HTTP_1_1: u64 = u64::from_le_bytes(*b"HTTP/1.1");
const HTTP_1_0: u64 = u64::from_le_bytes(*b"HTTP/1.0");

/// The classes of every byte.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            )
        {
            class |= TOKEN;
        }
        if b >= 0x21 && b <= 0x7e {
            class |= VCHAR | VALUE;
        }
        if b == b' ' || b == b'\t' {
            class |= VALUE;
        }
        table[i] = class;
        i += 1;
    }
    table
};

/// `bytes`, all of which [`skip`] or [`skip_visible`] found of a class (every class is
/// ASCII), as text, without validating them again.
#[inline(always)]
fn ascii_str(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    #[allow(unsafe_code)]
    // SAFETY: every byte of `bytes` was checked against `CLASS`, whose classes hold only ASCII
    // bytes (0x09, 0x20 to 0x7e), and ASCII is valid UTF-8. The differential tests
    // (`head::tests::the_fast_tokenizer_*`, the `request_head` fuzz target) compare the strings
    // with httparse's, which validates them.
    unsafe {
        std::str::from_utf8_unchecked(bytes)
    }
}

/// The request line of a head [`tokenize`] took, and the head's length.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Tokens<'b> {
    pub(super) len: usize,
    pub(super) method: &'b str,
    pub(super) target: &'b str,
    pub(super) minor: u8,
}

/// The index of the first byte at or after `from` that is not of `class` (`buf.len()` if none).
#[inline(always)]
fn skip(buf: &[u8], mut from: usize, class: u8) -> usize {
    while let Some(&b) = buf.get(from) {
        if CLASS[b as usize] & class == 0 {
            break;
        }
        from += 1;
    }
    from
}

/// Skips bytes from `from` eight at a time while all of them are in `lo..=0x7e` (`lo` is
/// 0x20 or 0x21), then one at a time while they are of `class`.
#[inline(always)]
fn skip_visible(buf: &[u8], mut from: usize, lo: u8, class: u8) -> usize {
    let below = u64::from_ne_bytes([lo; 8]);
    while let Some(chunk) = buf.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // a byte under `lo`, or one of 0x7f and above (its high bit, or the carry of + 1)
        let low = w.wrapping_sub(below) & !w;
        let high = w | w.wrapping_add(0x0101_0101_0101_0101);
        if (low | high) & 0x8080_8080_8080_8080 != 0 {
            break;
        }
        from += 8;
    }
    skip(buf, from, class)
}

/// Tokenizes the head at the start of `buf` into its request line and `headers` (which must
/// be empty; at most `max` header lines and at most its spare capacity are taken, so nothing
/// is allocated). `None`: the head is not in the subset taken here, or not complete, or has
/// more header lines than that; `headers` is then left empty.
pub(super) fn tokenize<'b>(
    buf: &'b [u8],
    headers: &mut Vec<Header<'b>>,
    max: usize,
) -> Option<Tokens<'b>> {
    let max = max.min(headers.capacity());
    let res = tokenize_into(buf, headers, max);
    if res.is_none() {
        headers.clear();
    }
    res
}

fn tokenize_into<'b>(
    buf: &'b [u8],
    headers: &mut Vec<Header<'b>>,
    max: usize,
) -> Option<Tokens<'b>> {
    // method SP
    let method_end = if buf.starts_with(b"GET ") {
        3
    } else {
        skip(buf, 0, TOKEN)
    };
    if method_end == 0 || buf.get(method_end) != Some(&b' ') {
        return None;
    }
    // target SP
    let target_start = method_end + 1;
    let target_end = skip_visible(buf, target_start, 0x21, VCHAR);
    if target_end == target_start || buf.get(target_end) != Some(&b' ') {
        return None;
    }
    // "HTTP/1.x" CRLF
    let version = buf.get(target_end + 1..target_end + 11)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(&version[..8]);
    let minor = match u64::from_le_bytes(word) {
        HTTP_1_1 => 1,
        HTTP_1_0 => 0,
        _ => return None,
    };
    if version[8..] != *b"\r\n" {
        return None;
    }
    let method = ascii_str(&buf[..method_end]);
    let target = ascii_str(&buf[target_start..target_end]);
    let mut at = target_end + 11;
    loop {
        match buf.get(at)? {
            b'\r' => {
                return (buf.get(at + 1) == Some(&b'\n')).then_some(Tokens {
                    len: at + 2,
                    method,
                    target,
                    minor,
                });
            }
            // name ":"
            _ => {
                let name_end = skip(buf, at, TOKEN);
                if name_end == at || buf.get(name_end) != Some(&b':') {
                    return None;
                }
                let name = ascii_str(&buf[at..name_end]);
                // OWS value OWS CRLF
                let mut value_start = name_end + 1;
                while let Some(b' ' | b'\t') = buf.get(value_start) {
                    value_start += 1;
                }
                let line_end = skip_visible(buf, value_start, 0x20, VALUE);
                if buf.get(line_end..line_end + 2)? != b"\r\n" {
                    return None;
                }
                let mut value_end = line_end;
                while value_end > value_start && matches!(buf[value_end - 1], b' ' | b'\t') {
                    value_end -= 1;
                }
                if headers.len() >= max {
                    return None;
                }
                headers.push(Header {
                    name,
                    value: &buf[value_start..value_end],
                });
                at = line_end + 2;
            }
        }
    }
}

/// A head split into its request line and header fields, comparable across parsers (a
/// non-empty value also by where it starts: the spans are made of that).
type Split = (usize, String, String, u8, Vec<(String, usize, Vec<u8>)>);

fn split_of(raw: &[u8], len: usize, line: (&str, &str, u8), headers: &[Header<'_>]) -> Split {
    let offset = |value: &[u8]| {
        if value.is_empty() {
            0
        } else {
            value.as_ptr() as usize - raw.as_ptr() as usize
        }
    };
    (
        len,
        line.0.to_owned(),
        line.1.to_owned(),
        line.2,
        headers
            .iter()
            .map(|h| (h.name.to_owned(), offset(h.value), h.value.to_vec()))
            .collect(),
    )
}

/// For tests and fuzzing: `Ok(true)` if [`tokenize`] took `raw` (24 slots) and httparse,
/// configured as the server's, splits it the same way; `Ok(false)` if it did not take it;
/// `Err` with both splits if they differ.
pub(crate) fn compare_with_httparse(raw: &[u8]) -> Result<bool, String> {
    let mut slots: Vec<Header<'_>> = Vec::with_capacity(24);
    let Some(tokens) = tokenize(raw, &mut slots, super::super::config::MAX_HEADERS) else {
        return if slots.is_empty() {
            Ok(false)
        } else {
            Err("a refused head left header slots filled".to_owned())
        };
    };
    let fast = split_of(
        raw,
        tokens.len,
        (tokens.method, tokens.target, tokens.minor),
        &slots,
    );
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut req = httparse::Request::new(&mut headers);
    let slow = match super::parse::parser_config().parse_request(&mut req, raw) {
        Ok(httparse::Status::Complete(len)) => match (req.method, req.path, req.version) {
            (Some(method), Some(target), Some(minor)) => {
                Ok(split_of(raw, len, (method, target, minor), req.headers))
            }
            _ => Err("no request line".to_owned()),
        },
        other => Err(format!("{other:?}")),
    };
    match slow {
        Ok(slow) if slow == fast => Ok(true),
        slow => Err(format!("fast {fast:?}, httparse {slow:?}")),
    }
}
