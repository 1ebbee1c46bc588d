//! Byte-level syntax helpers shared by the request parser, the chunked decoder and the response
//! writer: RFC 9110 token and host characters, list elements, case-insensitive and word-at-a-time
//! comparisons, latin-1 text.

/// RFC 9110 `tchar`: what a field name (or a trailer name) is made of.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// `name` equals the lower-case `lower` ignoring ASCII case, for token names (httparse checked
/// them): OR-ing 0x20 lower-cases letters and maps no other token character to a letter or `-`.
/// Compared a word at a time: whole 8-byte words, then the last (overlapping) word; names of 4 to
/// 7 bytes as two overlapping 4-byte words.
#[inline(always)]
pub(crate) fn name_is(name: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if name.len() != n {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word8(name, i) | 0x2020_2020_2020_2020 != word8(lower, i) {
                return false;
            }
            i += 8;
        }
        word8(name, n - 8) | 0x2020_2020_2020_2020 == word8(lower, n - 8)
    } else if n >= 4 {
        word4(name, 0) | 0x2020_2020 == word4(lower, 0)
            && word4(name, n - 4) | 0x2020_2020 == word4(lower, n - 4)
    } else {
        name.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b)
    }
}

/// The 8 bytes of `bytes` at `at`, as one little-endian word (for word-at-a-time compares).
#[inline(always)]
pub(crate) fn word8(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The 4 bytes of `bytes` at `at`, as one little-endian word.
#[inline(always)]
pub(crate) fn word4(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Whether `needle` occurs in `haystack`, ignoring ASCII case.
pub(crate) fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// The non-empty elements of a comma-separated list (RFC 9110 5.6.1), trimmed of OWS.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// `s` without leading and trailing optional whitespace (SP, HTAB).
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Characters of `uri-host [ ":" port ]` (reg-name, IPv4, IP-literal), RFC 3986.
static HOST_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
            );
        i += 1;
    }
    table
};

/// Whether every byte may appear in a `uri-host [ ":" port ]`.
#[inline]
pub(crate) fn is_host(bytes: &[u8]) -> bool {
    // no early exit: one load and one AND per byte (hosts are short and almost always valid)
    bytes
        .iter()
        .fold(true, |ok, &b| ok & HOST_CHARS[b as usize])
}

/// Bytes as text: ASCII as is, other bytes as latin-1 characters (WSGI's "bytes as latin-1 str").
pub(crate) fn latin1(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    if bytes.is_ascii() {
        std::borrow::Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default())
    } else {
        std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
    }
}

/// `a == b`; strings of up to 16 bytes (the usual status, header names and values) compared inline
/// as two overlapping words, cheaper than the call to `memcmp` that slice equality makes.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// `"00" "01" .. "99"`: two decimal digits per lookup.
pub(crate) const DIGIT_PAIRS: &[u8; 200] = &{
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// The two digits of `n` (below 100).
#[inline]
pub(crate) fn two_digits(n: u64) -> [u8; 2] {
    let at = (n as usize % 100) * 2;
    [DIGIT_PAIRS[at], DIGIT_PAIRS[at + 1]]
}

/// `n` in decimal, written at the end of `digits`; returns the digits.
#[inline]
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    // two digits per step: a u64 has at most 20, so `i` never goes below 0
    let mut i = digits.len();
    while n >= 100 {
        i -= 2;
        digits[i..i + 2].copy_from_slice(&two_digits(n % 100));
        n /= 100;
    }
    if n >= 10 {
        i -= 2;
        digits[i..i + 2].copy_from_slice(&two_digits(n));
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    &digits[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_every_length() {
        let mut digits = [0u8; 20];
        let mut n: u64 = 1;
        for _ in 0..20 {
            for m in [n - 1, n, n + 1, n.saturating_mul(7) / 3] {
                assert_eq!(decimal(m, &mut digits), m.to_string().as_bytes(), "{m}");
            }
            n = n.saturating_mul(10);
        }
        assert_eq!(
            decimal(u64::MAX, &mut digits),
            u64::MAX.to_string().as_bytes()
        );
        for m in 0..1000 {
            assert_eq!(decimal(m, &mut digits), m.to_string().as_bytes());
        }
    }

    #[test]
    fn same_bytes_is_equality() {
        let text: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..text.len() {
            let a = &text[..n];
            assert!(same_bytes(a, a), "{n}");
            assert!(!same_bytes(a, &text[..n + 1]), "{n}");
            for k in 0..n {
                let mut b = a.to_vec();
                b[k] ^= 0x20;
                assert!(!same_bytes(a, &b), "{n} {k}");
            }
        }
    }
}
