//! Trusted forwarded headers: the client address and scheme a trusted reverse proxy reports
//! (`X-Forwarded-For` + `X-Forwarded-Proto`, or RFC 7239 `Forwarded`), resolved like nginx's
//! realip module with `real_ip_recursive on`.
//!
//! The list is walked from the right — the entry the nearest proxy appended — skipping entries
//! that are themselves trusted proxies; the first untrusted entry is the client. The leftmost
//! entry is whatever the client wrote and is used only when every entry to its right is
//! trusted. An entry that is not an address (garbage, `unknown`, an obfuscated identifier)
//! ends the walk without a client. The scheme is the one reported for that same hop.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::ip_allow::IpAllowList;

/// Which headers the trusted proxies write (only those are read; the other kind is ignored,
/// since a proxy passes a header it does not manage through unchanged, as the client wrote
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (the client address; nginx `$proxy_add_x_forwarded_for`, HAProxy
    /// `option forwardfor`) and `X-Forwarded-Proto` (`http` or `https`). The default.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=...;proto=...`.
    Forwarded,
}

/// A hop's address, and its port when the header had one.
type Node = (IpAddr, Option<u16>);

/// What the trusted headers of one request say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Resolved {
    /// The client: its address, and its port when the header had one.
    pub(crate) client: Option<Node>,
    /// `http` or `https`.
    pub(crate) scheme: Option<&'static str>,
}

impl Resolved {
    /// The client as a socket address (port 0 when the header had none).
    pub(crate) fn client_addr(&self) -> Option<SocketAddr> {
        self.client
            .map(|(ip, port)| SocketAddr::new(ip, port.unwrap_or(0)))
    }
}

/// Resolve the request's forwarded headers (`headers`: every field line, names as sent) sent
/// by a trusted peer.
pub(crate) fn resolve<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    kind: ForwardedHeader,
    trusted: &IpAllowList,
) -> Resolved {
    match kind {
        ForwardedHeader::XForwardedFor => resolve_x_forwarded(headers, trusted),
        ForwardedHeader::Forwarded => resolve_forwarded(headers, trusted),
    }
}

/// The comma-separated elements of every `name` field, in order (repeated fields are one
/// list, RFC 9110 5.3), trimmed.
fn list_items<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    name: &'static [u8],
) -> impl Iterator<Item = &'h [u8]> {
    headers
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .map(trim)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Walk `hops` (left to right as received) from the right; the index and address of the
/// client. `None` at an entry that is not an address.
fn walk(hops: &[Option<Node>], trusted: &IpAllowList) -> Option<(usize, Option<Node>)> {
    for (i, hop) in hops.iter().enumerate().rev() {
        match hop {
            Some((ip, _)) if i > 0 && trusted.contains_ip(*ip) => continue,
            hop => return Some((i, *hop)),
        }
    }
    None
}

fn resolve_x_forwarded<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    trusted: &IpAllowList,
) -> Resolved {
    let hops: Vec<_> = list_items(headers.clone(), b"x-forwarded-for")
        .map(parse_xff_node)
        .collect();
    let protos: Vec<&[u8]> = list_items(headers, b"x-forwarded-proto").collect();
    let mut out = Resolved::default();
    let at = walk(&hops, trusted);
    if let Some((_, client)) = at {
        out.client = client;
    }
    // the scheme of the client's hop when both lists line up (each proxy appended to both),
    // else the nearest proxy's (the rightmost value)
    let proto = match at {
        Some((i, _)) if protos.len() == hops.len() => protos.get(i),
        _ => protos.last(),
    };
    out.scheme = proto.and_then(|p| scheme(p));
    out
}

fn scheme(value: &[u8]) -> Option<&'static str> {
    if value.eq_ignore_ascii_case(b"https") {
        Some("https")
    } else if value.eq_ignore_ascii_case(b"http") {
        Some("http")
    } else {
        None
    }
}

/// An `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:443`.
fn parse_xff_node(node: &[u8]) -> Option<Node> {
    let text = std::str::from_utf8(node).ok()?;
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = ip.parse().ok()?;
        let port = match after {
            "" => None,
            _ => Some(port(after.strip_prefix(':')?)?),
        };
        return Some((IpAddr::V6(ip), port));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let (ip, p) = text.rsplit_once(':')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    Some((IpAddr::V4(ip), Some(port(p)?)))
}

fn port(text: &str) -> Option<u16> {
    (!text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// One `Forwarded` element: its `for` and `proto` parameters (`None`: absent or unusable).
#[derive(Debug, Default, Clone, Copy)]
struct Element {
    node: Option<Node>,
    proto: Option<&'static str>,
}

fn resolve_forwarded<'h>(
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    trusted: &IpAllowList,
) -> Resolved {
    let mut elements = Vec::new();
    for (_, value) in headers.filter(|(n, _)| n.eq_ignore_ascii_case(b"forwarded")) {
        if parse_forwarded(value, &mut elements).is_none() {
            // unparsable: which element is whose cannot be told; nothing is trusted
            return Resolved::default();
        }
    }
    let hops: Vec<_> = elements.iter().map(|e| e.node).collect();
    match walk(&hops, trusted) {
        Some((i, client)) => Resolved {
            client,
            scheme: elements[i].proto,
        },
        None => Resolved::default(),
    }
}

/// Parse one `Forwarded` field value (RFC 7239 4: `#forwarded-element`, each
/// `forwarded-pair *( ";" forwarded-pair )`, values tokens or quoted strings) into `out`.
/// `None`: not well formed.
fn parse_forwarded(value: &[u8], out: &mut Vec<Element>) -> Option<()> {
    let mut rest = value;
    loop {
        let mut element = Element::default();
        let (mut seen_for, mut seen_proto, mut pairs) = (false, false, 0);
        loop {
            rest = trim_start(rest);
            if matches!(rest.first(), None | Some(b',')) && pairs == 0 {
                break; // an empty list element (RFC 9110 5.6.1: tolerated)
            }
            let eq = rest.iter().position(|&b| b == b'=')?;
            let key = &rest[..eq];
            if key.is_empty() || !key.iter().all(|&b| is_tchar(b)) {
                return None;
            }
            rest = &rest[eq + 1..];
            let (val, after) = value_at(rest)?;
            rest = trim_start(after);
            pairs += 1;
            if key.eq_ignore_ascii_case(b"for") {
                if seen_for {
                    return None;
                }
                seen_for = true;
                element.node = parse_forwarded_node(&val);
            } else if key.eq_ignore_ascii_case(b"proto") {
                if seen_proto {
                    return None;
                }
                seen_proto = true;
                element.proto = scheme(&val);
            }
            match rest.first() {
                Some(b';') => rest = &rest[1..],
                _ => break,
            }
        }
        if pairs > 0 {
            out.push(element);
        }
        match rest.first() {
            None => return Some(()),
            Some(b',') => rest = &rest[1..],
            Some(_) => return None,
        }
    }
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A token or a quoted string at the start of `s` (unescaped), and what follows it.
fn value_at(s: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    if let Some(inner) = s.strip_prefix(b"\"") {
        let mut val = Vec::new();
        let mut i = 0;
        while i < inner.len() {
            match inner[i] {
                b'"' => return Some((val, &inner[i + 1..])),
                b'\\' => {
                    let &escaped = inner.get(i + 1)?;
                    if escaped < 0x20 && escaped != b'\t' || escaped == 0x7f {
                        return None;
                    }
                    val.push(escaped);
                    i += 2;
                }
                b if b < 0x20 && b != b'\t' || b == 0x7f => return None,
                b => {
                    val.push(b);
                    i += 1;
                }
            }
        }
        None // no closing quote
    } else {
        let end = s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len());
        if end == 0 {
            return None;
        }
        Some((s[..end].to_vec(), &s[end..]))
    }
}

/// A `for=` node (RFC 7239 6): `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`,
/// `[2001:db8::17]:4711`; `unknown`, obfuscated names (`_hidden`) and an IPv6 address without
/// brackets are no address. An obfuscated port (`:_abc`) gives the address without a port.
fn parse_forwarded_node(node: &[u8]) -> Option<Node> {
    let text = std::str::from_utf8(node).ok()?;
    let (ip, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = ip.parse().ok()?;
        (IpAddr::V6(ip), after)
    } else {
        let (ip, after) = match text.find(':') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        (IpAddr::V4(ip), after)
    };
    let port = match port_text {
        "" => None,
        p => {
            let p = p.strip_prefix(':')?;
            if p.starts_with('_') && p.len() > 1 {
                None // obfuscated port
            } else {
                Some(port(p)?)
            }
        }
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn run(kind: ForwardedHeader, trusted: &str, headers: &[(&str, &str)]) -> Resolved {
        let trusted = IpAllowList::parse(trusted).unwrap();
        resolve(
            headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            kind,
            &trusted,
        )
    }

    fn xff(trusted: &str, headers: &[(&str, &str)]) -> Resolved {
        run(ForwardedHeader::XForwardedFor, trusted, headers)
    }

    fn fwd(trusted: &str, headers: &[(&str, &str)]) -> Resolved {
        run(ForwardedHeader::Forwarded, trusted, headers)
    }

    fn client(r: Resolved) -> Option<String> {
        r.client.map(|(ip, port)| match port {
            Some(p) => format!("{ip}/{p}"),
            None => ip.to_string(),
        })
    }

    #[test]
    fn x_forwarded_for_walks_from_the_right() {
        let c = |v: &str| client(xff("127.0.0.1, 10.0.0.0/8", &[("X-Forwarded-For", v)]));
        assert_eq!(c("203.0.113.7"), Some("203.0.113.7".into()));
        // a forged leftmost entry is skipped: the nearest untrusted one wins
        assert_eq!(c("1.2.3.4, 203.0.113.7"), Some("203.0.113.7".into()));
        assert_eq!(
            c("1.2.3.4, 203.0.113.7, 10.1.1.1"),
            Some("203.0.113.7".into())
        );
        // every entry trusted: the leftmost
        assert_eq!(c("10.0.0.5, 10.1.1.1"), Some("10.0.0.5".into()));
        // garbage where the walk arrives: no client
        assert_eq!(c("203.0.113.7, garbage"), None);
        assert_eq!(c("203.0.113.7, unknown, 10.0.0.1"), None);
        assert_eq!(c("203.0.113.7, , 10.0.0.1"), None);
        // garbage further left than the client is never looked at
        assert_eq!(c("garbage, 203.0.113.7"), Some("203.0.113.7".into()));
        // forms with ports and IPv6
        assert_eq!(c("203.0.113.7:4711"), Some("203.0.113.7/4711".into()));
        assert_eq!(c("2001:db8::1"), Some("2001:db8::1".into()));
        assert_eq!(c("[2001:db8::1]"), Some("2001:db8::1".into()));
        assert_eq!(c("[2001:db8::1]:443"), Some("2001:db8::1/443".into()));
        assert_eq!(c("[::1]:8080"), Some("::1/8080".into()));
        assert_eq!(c("2001:db8::1:443"), Some("2001:db8::1:443".into())); // a valid v6
        for bad in [
            "[2001:db8::1",
            "[2001:db8::1]443",
            "[1.2.3.4]",
            "1.2.3.4:",
            "1.2.3.4:99999",
            "1.2.3.4:+1",
            "01.2.3.4",
            "1.2.3.4.5",
            "\"1.2.3.4\"",
            "_hidden",
            "localhost",
            "1.2.3.4 5.6.7.8",
        ] {
            assert_eq!(c(bad), None, "{bad}");
        }
    }

    #[test]
    fn x_forwarded_for_repeated_fields_are_one_list() {
        let r = xff(
            "127.0.0.1",
            &[
                ("X-Forwarded-For", "203.0.113.9"),
                ("Host", "x"),
                ("x-forwarded-for", "198.51.100.1, 127.0.0.1"),
            ],
        );
        assert_eq!(client(r), Some("198.51.100.1".into()));
        // the Forwarded header is not read in this mode
        let r = xff(
            "127.0.0.1",
            &[("Forwarded", "for=198.51.100.1;proto=https")],
        );
        assert_eq!(r, Resolved::default());
    }

    #[test]
    fn x_forwarded_proto() {
        let s = |h: &[(&str, &str)]| xff("127.0.0.1", h).scheme;
        assert_eq!(s(&[("X-Forwarded-Proto", "https")]), Some("https"));
        assert_eq!(s(&[("X-Forwarded-Proto", "HTTPS")]), Some("https"));
        assert_eq!(s(&[("X-Forwarded-Proto", "http")]), Some("http"));
        assert_eq!(s(&[("X-Forwarded-Proto", "ftp")]), None);
        assert_eq!(s(&[("X-Forwarded-Proto", "https; x")]), None);
        // a client's value before the proxy's: the proxy's (rightmost) counts
        assert_eq!(s(&[("X-Forwarded-Proto", "https, http")]), Some("http"));
        assert_eq!(
            s(&[
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Proto", "http")
            ]),
            Some("http")
        );
        // both lists appended hop by hop: the client's hop
        let r = xff(
            "127.0.0.1, 10.0.0.0/8",
            &[
                ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
                ("X-Forwarded-Proto", "https, http"),
            ],
        );
        assert_eq!(
            (client(r), r.scheme),
            (Some("203.0.113.7".into()), Some("https"))
        );
        // a forged pair on the left does not line up with the walk
        let r = xff(
            "127.0.0.1",
            &[
                ("X-Forwarded-For", "6.6.6.6, 203.0.113.7"),
                ("X-Forwarded-Proto", "https, http"),
            ],
        );
        assert_eq!(r.scheme, Some("http"));
    }

    #[test]
    fn forwarded_rfc_7239() {
        let c = |v: &str| {
            let r = fwd("127.0.0.1, 10.0.0.0/8", &[("Forwarded", v)]);
            (client(r), r.scheme)
        };
        assert_eq!(
            c("for=192.0.2.60;proto=https;by=203.0.113.43"),
            (Some("192.0.2.60".into()), Some("https"))
        );
        assert_eq!(
            c("for=\"[2001:db8:cafe::17]:4711\""),
            (Some("2001:db8:cafe::17/4711".into()), None)
        );
        assert_eq!(
            c("for=\"[2001:db8::1]\""),
            (Some("2001:db8::1".into()), None)
        );
        assert_eq!(
            c("For=\"192.0.2.43:47011\""),
            (Some("192.0.2.43/47011".into()), None)
        );
        assert_eq!(c("for=192.0.2.43:_port"), (None, None)); // ':' is no tchar
        assert_eq!(
            c("for=\"192.0.2.43:_port\""),
            (Some("192.0.2.43".into()), None)
        );
        // forged leftmost element, then the proxy's
        assert_eq!(
            c("for=1.2.3.4;proto=https, for=198.51.100.3;proto=http"),
            (Some("198.51.100.3".into()), Some("http"))
        );
        // trusted hops skipped; the proto of the client's element
        assert_eq!(
            c("for=198.51.100.3;proto=https, for=10.0.0.2;proto=http"),
            (Some("198.51.100.3".into()), Some("https"))
        );
        // obfuscated or unknown client, written by a trusted proxy: no address, its proto
        assert_eq!(c("for=_hidden;proto=https"), (None, Some("https")));
        assert_eq!(c("for=unknown"), (None, None));
        assert_eq!(c("proto=https"), (None, Some("https"))); // no for=
                                                             // IPv6 must be bracketed and quoted
        assert_eq!(c("for=\"2001:db8::1\""), (None, None));
        assert_eq!(c("for=[2001:db8::1]"), (None, None));
        // malformed: nothing at all
        for bad in [
            "for=\"1.2.3.4",
            "for=1.2.3.4;for=5.6.7.8",
            "for",
            "=1.2.3.4",
            "for=1.2.3.4 garbage",
            "for=1.2.3.4;;",
            "for=\"1.2.3.4\"x",
            "fo r=1.2.3.4",
        ] {
            assert_eq!(c(bad), (None, None), "{bad}");
        }
        // empty elements are tolerated; an escape in a quoted string
        assert_eq!(c(", for=\"\\1.2.3.4\" ,"), (Some("1.2.3.4".into()), None));
        // X-Forwarded-For is not read in this mode
        let r = fwd("127.0.0.1", &[("X-Forwarded-For", "192.0.2.1")]);
        assert_eq!(r, Resolved::default());
    }

    #[test]
    fn forwarded_repeated_fields() {
        let r = fwd(
            "127.0.0.1",
            &[
                ("Forwarded", "for=192.0.2.1"),
                ("Forwarded", "for=192.0.2.2;proto=https"),
            ],
        );
        assert_eq!(
            (client(r), r.scheme),
            (Some("192.0.2.2".into()), Some("https"))
        );
        assert_eq!(r.client_addr(), Some("192.0.2.2:0".parse().unwrap()));
        assert_eq!(ip("192.0.2.2"), r.client.unwrap().0);
    }
}
