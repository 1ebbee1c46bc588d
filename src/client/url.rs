//! The part of URL syntax an HTTP/1.1 client needs: scheme, host, port, path and query.

use super::error::{Error, Result};

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// A parsed absolute URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    pub(crate) scheme: Scheme,
    /// As written, IPv6 literals with their brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, at least `/`; no fragment.
    pub(crate) target: String,
}

fn bad(url: &str, reason: &'static str) -> Error {
    Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    }
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Url> {
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            _ => return Err(bad(url, "expected http:// or https://")),
        };
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad(url, "whitespace or control character in the url"));
        }
        let rest = rest.split('#').next().unwrap_or("");
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad(url, "credentials in the url are not supported"));
        }
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (ip, after) = v6.split_once(']').ok_or_else(|| bad(url, "unclosed ["))?;
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad(url, "invalid IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad(url, "junk after ]"))?,
                ),
            };
            (format!("[{ip}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad(url, "no host"));
        }
        if !host.is_ascii() {
            return Err(bad(url, "non-ASCII host names (IDNA) are not supported"));
        }
        let port = match port {
            None | Some("") => default_port,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| bad(url, "port out of range"))?
            }
            Some(_) => return Err(bad(url, "the port is not a number")),
        };
        let mut target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        if !target.is_ascii() {
            // a request line is ASCII: bytes of other characters go percent-encoded
            target = target.bytes().fold(String::new(), |mut out, b| {
                if b.is_ascii() {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
                out
            });
        }
        Ok(Url {
            scheme,
            host,
            port,
            target,
        })
    }

    pub(crate) fn default_port(&self) -> bool {
        matches!(
            (self.scheme, self.port),
            (Scheme::Http, 80) | (Scheme::Https, 443)
        )
    }

    /// The `Host` header: the host, and the port unless it is the scheme's default.
    pub(crate) fn authority(&self) -> String {
        if self.default_port() {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host without IPv6 brackets (for TLS server names).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }

    /// A `Location` value resolved against this URL: absolute, scheme-relative (`//host/p`),
    /// absolute path, or relative path.
    pub(crate) fn join(&self, location: &str) -> Result<Url> {
        if location.contains("://") {
            return Url::parse(location);
        }
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let base = format!("{scheme}://{}", self.authority());
        if location.starts_with('/') {
            return Url::parse(&format!("{base}{location}"));
        }
        let path = self.target.split('?').next().unwrap_or("/");
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        Url::parse(&format!("{base}{dir}{location}"))
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.authority(), self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_a_client_needs() {
        let u = Url::parse("http://example.com").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("example.com", 80, "/")
        );
        let u = Url::parse("HTTPS://[::1]:8443/a/b?x=1#frag").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("[::1]", 8443, "/a/b?x=1")
        );
        assert_eq!(u.bare_host(), "::1");
        assert_eq!(Url::parse("http://h:81?q").unwrap().target, "/?q");
        assert_eq!(Url::parse("http://h:81/p").unwrap().authority(), "h:81");
        assert_eq!(
            Url::parse("http://h/é?q=ü").unwrap().target,
            "/%C3%A9?q=%C3%BC"
        );
        for bad in [
            "ftp://h/",
            "h/p",
            "http:///p",
            "http://h:x/",
            "http://h:70000/",
            "http://u@h/",
            "http://h/a b",
            "http://[::1/",
            "http://[zz]/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn joins_locations() {
        let base = Url::parse("http://h:81/a/b?q").unwrap();
        assert_eq!(base.join("/c").unwrap().to_string(), "http://h:81/c");
        assert_eq!(base.join("c?d").unwrap().to_string(), "http://h:81/a/c?d");
        assert_eq!(base.join("//o/p").unwrap().to_string(), "http://o/p");
        assert_eq!(base.join("https://x/").unwrap().to_string(), "https://x/");
    }
}
