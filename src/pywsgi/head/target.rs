//! The request target (RFC 9112 section 3.2): origin-form, absolute-form, authority-form
//! (CONNECT), asterisk-form (OPTIONS), split into path, query and authority; PATH_INFO
//! percent-decoded.

use super::super::syntax::is_host;
use super::{HeadError, RequestHead, Span};

/// Splits the target (RFC 9112 3.2) into path, query and authority, or rejects it. `target_str`
/// is the target as httparse returned it (already valid UTF-8): an origin-form path is copied from
/// it into `path_decoded`, so that [`RequestHead::path_info`] never re-validates it.
#[inline(always)]
pub(super) fn split(
    head: &mut RequestHead,
    method: &[u8],
    target_str: &str,
) -> Result<(), HeadError> {
    let start = head.target.start as usize;
    let target = head.target.get(&head.buf);
    if target.first() == Some(&b'/') {
        // origin-form, the common case: one pass over the whole target finds the query, checks
        // that every byte is ASCII and notes a `%` in the path
        let mut question = target.len();
        let mut percent = false;
        let mut high = 0u8;
        for (i, &b) in target.iter().enumerate() {
            high |= b;
            let in_path = question == target.len();
            if b == b'?' && in_path {
                question = i;
            }
            percent |= b == b'%' && in_path;
        }
        let query_start = (question + 1).min(target.len());
        if high >= 0x80 {
            return Err(HeadError::BadRequest(
                "non-ASCII byte in the request target",
            ));
        }
        head.path = Span::new(start, start + question);
        head.query = Span::new(start + query_start, start + target.len());
        if percent {
            let mut decoded = std::mem::take(&mut head.path_decoded);
            unquote_latin1(head.path.get(&head.buf), &mut decoded);
            head.path_decoded = decoded;
        } else {
            head.path_decoded
                .push_str(target_str.get(..question).unwrap_or_default());
        }
        head.path_decoded_valid = true;
        return Ok(());
    }
    split_other(head, method)
}

/// [`split`] for the rare forms: absolute, authority (CONNECT), asterisk (OPTIONS).
#[inline(never)]
fn split_other(head: &mut RequestHead, method: &[u8]) -> Result<(), HeadError> {
    let start = head.target.start as usize;
    let target = head.target.get(&head.buf);
    // httparse accepts UTF-8 here; RFC 3986 allows only ASCII, so anything else is a malformed
    // request line (RFC 9112 3.2: no autocorrection).
    if !target.is_ascii() {
        return Err(HeadError::BadRequest(
            "non-ASCII byte in the request target",
        ));
    }
    let (path_start, authority) = match target.first() {
        // origin-form
        Some(b'/') => (0, None),
        // asterisk-form
        Some(b'*') if target.len() == 1 && method == b"OPTIONS" => {
            head.path = head.target;
            return Ok(());
        }
        // authority-form
        _ if method == b"CONNECT" => {
            if target.is_empty() || !is_host(target) {
                return Err(HeadError::BadRequest("invalid CONNECT target"));
            }
            head.path = Span::new(start, start);
            head.query = Span::new(start, start);
            head.authority = Some(head.target);
            return Ok(());
        }
        // absolute-form: scheme "://" authority [path] ["?" query]
        Some(first) if first.is_ascii_alphabetic() => {
            let colon = target
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
                .filter(|&i| target[i] == b':' && target[i + 1..].starts_with(b"//"))
                .ok_or(HeadError::BadRequest("malformed request target"))?;
            let auth_start = colon + 3;
            let auth_len = target[auth_start..]
                .iter()
                .position(|&b| matches!(b, b'/' | b'?' | b'#'))
                .unwrap_or(target.len() - auth_start);
            let authority = &target[auth_start..auth_start + auth_len];
            // RFC 9110 4.2.4: userinfo in an http(s) URI "SHOULD" be treated as an error.
            if authority.is_empty() || !is_host(authority) {
                return Err(HeadError::BadRequest("invalid authority in request target"));
            }
            (
                auth_start + auth_len,
                Some(Span::new(start + auth_start, start + auth_start + auth_len)),
            )
        }
        _ => return Err(HeadError::BadRequest("malformed request target")),
    };
    let rest = &target[path_start..];
    let mut question = None;
    let mut percent = false;
    for (i, &b) in rest.iter().enumerate() {
        if b == b'?' {
            question = Some(i);
            break;
        }
        percent |= b == b'%';
    }
    let (path_len, query) = match question {
        Some(q) => (
            q,
            Span::new(start + path_start + q + 1, start + target.len()),
        ),
        None => (
            rest.len(),
            Span::new(start + target.len(), start + target.len()),
        ),
    };
    head.path = Span::new(start + path_start, start + path_start + path_len);
    head.query = query;
    head.authority = authority;
    let path = head.path.get(&head.buf);
    if authority.is_some() && path.is_empty() {
        // an empty path in an http URI means "/" (RFC 9110 4.2.3)
        head.path_decoded.push('/');
        head.path_decoded_valid = true;
    } else if percent {
        let mut decoded = std::mem::take(&mut head.path_decoded);
        unquote_latin1(head.path.get(&head.buf), &mut decoded);
        head.path_decoded = decoded;
        head.path_decoded_valid = true;
    }
    Ok(())
}

/// Percent-decodes `raw` into `out`, each resulting byte as a latin-1 character (gevent's
/// `unquote_latin1`, i.e. Python's `unquote(path, 'latin-1')`). Malformed escapes stay as they
/// are.
fn unquote_latin1(raw: &[u8], out: &mut String) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                raw.get(i + 1).and_then(|&h| (h as char).to_digit(16)),
                raw.get(i + 2).and_then(|&l| (l as char).to_digit(16)),
            ) {
                out.push(char::from((hi * 16 + lo) as u8));
                i += 3;
                continue;
            }
        }
        out.push(char::from(b));
        i += 1;
    }
}
