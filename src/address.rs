//! Listener addresses in every form gevent accepts (gevent: `baseserver._parse_address`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where a server listens or where a peer connected from.
///
/// gevent uses `(host, port)` tuples for IP sockets and a path string for Unix sockets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 socket address.
    Inet(SocketAddr),
    /// A Unix domain socket, with its path when it has one (peers usually have none).
    Unix(Option<PathBuf>),
}

impl Address {
    /// The IP socket address, if this is one.
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            Address::Inet(addr) => Some(*addr),
            Address::Unix(_) => None,
        }
    }

    /// The host as text (`"127.0.0.1"`, `"::1"`), or `None` for Unix sockets.
    /// gevent: `BaseServer.server_host`.
    pub fn host(&self) -> Option<String> {
        self.as_inet().map(|addr| addr.ip().to_string())
    }

    /// The port, or `None` for Unix sockets. gevent: `BaseServer.server_port`.
    pub fn port(&self) -> Option<u16> {
        self.as_inet().map(|addr| addr.port())
    }

    pub(crate) fn from_unix(addr: &std::os::unix::net::SocketAddr) -> Address {
        Address::Unix(addr.as_pathname().map(PathBuf::from))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(addr) => write!(f, "{addr}"),
            Address::Unix(Some(path)) => write!(f, "{}", path.display()),
            Address::Unix(None) => f.write_str("<unix socket>"),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Inet(addr)
    }
}

fn invalid(input: &str, reason: &'static str) -> Error {
    Error::InvalidAddress {
        input: input.to_owned(),
        reason,
    }
}

fn parse_port(input: &str, port: &str) -> Result<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(input, "the port is not a number"));
    }
    port.parse::<u16>()
        .map_err(|_| invalid(input, "the port is not in 0..=65535"))
}

/// Resolve `(host, port)` the way gevent does: an empty host means "all interfaces" on IPv6
/// (dual-stack on Linux), a host with a `:` is an IPv6 literal, anything else is an IPv4
/// literal or a name to resolve (the first address wins).
pub(crate) fn resolve_host_port(input: &str, host: &str, port: u16) -> Result<SocketAddr> {
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    if host == "*" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if host.contains(':') {
        return Err(invalid(input, "not a valid IPv6 address"));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|_| invalid(input, "the host name does not resolve"))?
        .next()
        .ok_or_else(|| invalid(input, "the host name has no address"))
}

/// Parse a listener address string.
///
/// | input | result |
/// |---|---|
/// | `"127.0.0.1:80"` | IPv4 `127.0.0.1:80` |
/// | `":8080"`, `"*:8080"` | IPv4 all interfaces, `0.0.0.0:8080` |
/// | `"[::1]:80"` | IPv6 `[::1]:80` |
/// | `"8080"` | IPv6 all interfaces `[::]:8080` (dual-stack on Linux), as gevent |
/// | `"localhost:8080"` | the first address the name resolves to |
///
/// gevent: `baseserver._parse_address`.
pub fn parse_address(input: &str) -> Result<SocketAddr> {
    let text = input.trim();
    if text.is_empty() {
        return Err(invalid(input, "empty address"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let port = parse_port(input, text)?;
        return resolve_host_port(input, "", port);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(input, "missing ']' after an IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| invalid(input, "missing ':port' after ']'"))?;
        let port = parse_port(input, port)?;
        let ip: Ipv6Addr = host
            .parse()
            .map_err(|_| invalid(input, "not a valid IPv6 address"))?;
        return Ok(SocketAddr::new(IpAddr::V6(ip), port));
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| invalid(input, "expected host:port, :port or a port number"))?;
    if host.contains(':') {
        return Err(invalid(
            input,
            "an IPv6 address must be written in brackets",
        ));
    }
    let port = parse_port(input, port)?;
    let host = if host.is_empty() { "*" } else { host };
    resolve_host_port(input, host, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        parse_address(input).unwrap().to_string()
    }

    #[test]
    fn gevent_forms() {
        assert_eq!(ok("127.0.0.1:80"), "127.0.0.1:80");
        assert_eq!(ok(":8080"), "0.0.0.0:8080");
        assert_eq!(ok("*:8080"), "0.0.0.0:8080");
        assert_eq!(ok("[::1]:80"), "[::1]:80");
        assert_eq!(ok("8080"), "[::]:8080");
        assert_eq!(ok("0"), "[::]:0");
        assert_eq!(ok(" 127.0.0.1:0 "), "127.0.0.1:0");
        assert!(parse_address("localhost:1").unwrap().ip().is_loopback());
    }

    #[test]
    fn bad_forms_name_the_input() {
        for bad in [
            "",
            "abc",
            "127.0.0.1:",
            "127.0.0.1:x",
            "1:65536",
            "99999",
            "[::1]",
            "[::1]80",
            "[zz]:1",
            "::1:80",
            "127.0.0.1:-1",
        ] {
            let err = parse_address(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidAddress { ref input, .. } if input == bad),
                "{bad:?} -> {err}"
            );
        }
    }

    #[test]
    fn tuples() {
        assert_eq!(
            resolve_host_port("", "", 80).unwrap().to_string(),
            "[::]:80"
        );
        assert_eq!(
            resolve_host_port("", "::1", 80).unwrap().to_string(),
            "[::1]:80"
        );
        assert_eq!(
            resolve_host_port("", "10.0.0.1", 80).unwrap().to_string(),
            "10.0.0.1:80"
        );
    }
}
