//! [`IpAllowList`]: the peers a server trusts to speak for somebody else — to send a PROXY
//! protocol header, or `X-Forwarded-*` / `Forwarded` headers (gunicorn: `proxy_allow_ips`,
//! `forwarded_allow_ips`; nginx: `set_real_ip_from`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::address::Address;
use crate::error::{Error, Result};

/// One network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// A set of trusted peers: IP addresses, networks in CIDR notation, `*` (every peer) and
/// `unix` (peers on a Unix-domain socket, which have no IP address: the socket file's
/// permissions are what admits them).
///
/// Parsed from a comma-separated list, e.g. `"127.0.0.1, ::1, 10.0.0.0/8, unix"`; an empty
/// list trusts nobody. An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, what a dual-stack listener
/// reports for an IPv4 client) is matched as the IPv4 address. A network's host bits must be
/// zero (`10.0.0.1/8` is refused, it is almost always a typo).
///
/// ```
/// use may_gevent::IpAllowList;
/// let list: IpAllowList = "127.0.0.1, 10.0.0.0/8, 2001:db8::/32".parse()?;
/// assert!(list.contains_ip("10.200.3.4".parse()?));
/// assert!(list.contains_ip("::ffff:10.0.0.9".parse()?));
/// assert!(list.contains_ip("2001:db8::1".parse()?));
/// assert!(!list.contains_ip("127.0.0.2".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowList {
    nets: Vec<IpNet>,
    any: bool,
    unix: bool,
}

impl IpAllowList {
    /// Nobody.
    pub fn none() -> IpAllowList {
        IpAllowList::default()
    }

    /// Every peer (`*`): only for a server that no client can reach except through the proxy.
    pub fn any() -> IpAllowList {
        IpAllowList {
            nets: Vec::new(),
            any: true,
            unix: true,
        }
    }

    /// `127.0.0.1`, `::1` and Unix-socket peers (`unix`): gunicorn's `forwarded_allow_ips`
    /// default, under which gunicorn also trusts every Unix-socket peer.
    pub fn localhost() -> IpAllowList {
        IpAllowList {
            nets: vec![
                IpNet {
                    addr: IpAddr::from([127, 0, 0, 1]),
                    prefix: 32,
                },
                IpNet {
                    addr: IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
            any: false,
            unix: true,
        }
    }

    /// Parse a comma-separated list (see the type's documentation).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the entry that is not an address, a network, `*` or
    /// `unix`.
    pub fn parse(list: &str) -> Result<IpAllowList> {
        let mut out = IpAllowList::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry {
                "*" => {
                    out.any = true;
                    out.unix = true;
                }
                "unix" => out.unix = true,
                _ => out.nets.push(parse_net(entry)?),
            }
        }
        Ok(out)
    }

    /// Whether `ip` is trusted.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        if self.any {
            return true;
        }
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(ip))
    }

    /// Whether a peer is trusted: its IP address, or any Unix-socket peer when the list has
    /// `unix`.
    pub fn contains(&self, peer: &Address) -> bool {
        match peer {
            Address::Inet(addr) => self.contains_ip(addr.ip()),
            Address::Unix(_) => self.unix,
        }
    }

    /// [`contains`](Self::contains) for an optional socket address (`None`: a Unix peer).
    pub(crate) fn contains_peer(&self, peer: Option<SocketAddr>) -> bool {
        match peer {
            Some(addr) => self.contains_ip(addr.ip()),
            None => self.unix,
        }
    }

    /// True when it trusts nobody.
    pub fn is_empty(&self) -> bool {
        !self.any && !self.unix && self.nets.is_empty()
    }
}

fn parse_net(entry: &str) -> Result<IpNet> {
    let bad = |why: &str| Error::InvalidConfig(format!("trusted peer {entry:?}: {why}"));
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| bad("not an IP address, a CIDR network, `*` or `unix`"))?;
    let full: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => full,
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= full)
            .ok_or_else(|| bad("the prefix length is too long"))?,
        Some(_) => return Err(bad("the prefix length is not a number")),
    };
    let net = IpNet { addr, prefix };
    if net.addr != masked(net) {
        return Err(bad("the address has bits set outside the prefix"));
    }
    // an IPv4-mapped network is matched as the IPv4 one
    if let IpAddr::V6(v6) = addr {
        if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
            return Ok(IpNet {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
    }
    Ok(net)
}

fn masked(net: IpNet) -> IpAddr {
    match net.addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::from((u32::from(a) & mask).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(net.prefix))
                .unwrap_or(0);
            IpAddr::from((u128::from(a) & mask).to_be_bytes())
        }
    }
}

impl FromStr for IpAllowList {
    type Err = Error;

    fn from_str(list: &str) -> Result<IpAllowList> {
        IpAllowList::parse(list)
    }
}

impl fmt::Display for IpAllowList {
    /// The list in the form [`parse`](Self::parse) reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = Vec::new();
        if self.any {
            items.push("*".into());
        } else {
            items.extend(self.nets.iter().map(ToString::to_string));
            if self.unix {
                items.push("unix".into());
            }
        }
        f.write_str(&items.join(","))
    }
}

/// What the PROXY and forwarded settings accept as a list of trusted peers: a string to parse
/// (`"127.0.0.1, 10.0.0.0/8"`, an error at `build()` if it does not parse) or an
/// [`IpAllowList`].
#[derive(Debug, Clone)]
pub struct AllowFrom(pub(crate) std::result::Result<IpAllowList, String>);

impl From<IpAllowList> for AllowFrom {
    fn from(list: IpAllowList) -> AllowFrom {
        AllowFrom(Ok(list))
    }
}

impl From<&str> for AllowFrom {
    fn from(list: &str) -> AllowFrom {
        AllowFrom(IpAllowList::parse(list).map_err(|err| err.to_string()))
    }
}

impl From<String> for AllowFrom {
    fn from(list: String) -> AllowFrom {
        AllowFrom::from(list.as_str())
    }
}

impl From<&String> for AllowFrom {
    fn from(list: &String) -> AllowFrom {
        AllowFrom::from(list.as_str())
    }
}

impl AllowFrom {
    pub(crate) fn into_list(self) -> Result<IpAllowList> {
        self.0.map_err(Error::InvalidConfig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> IpAllowList {
        IpAllowList::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks() {
        let l = list("127.0.0.1, 10.0.0.0/8 ,192.168.1.0/24, ::1, 2001:db8::/32, [fe80::1]");
        for yes in [
            "127.0.0.1",
            "10.0.0.0",
            "10.255.255.255",
            "192.168.1.77",
            "::1",
            "2001:db8:ffff::1",
            "fe80::1",
            "::ffff:10.1.2.3",
            "::ffff:127.0.0.1",
        ] {
            assert!(l.contains_ip(ip(yes)), "{yes}");
        }
        for no in [
            "127.0.0.2",
            "11.0.0.1",
            "192.168.2.1",
            "::2",
            "2001:db9::1",
            "::ffff:11.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(!l.contains_ip(ip(no)), "{no}");
        }
        assert!(!l.contains(&Address::Unix(None)));
        assert_eq!(
            l.to_string(),
            "127.0.0.1,10.0.0.0/8,192.168.1.0/24,::1,2001:db8::/32,fe80::1"
        );
    }

    #[test]
    fn special_entries() {
        assert!(list("*").contains_ip(ip("8.8.8.8")));
        assert!(list("*").contains(&Address::Unix(None)));
        assert!(list("unix").contains(&Address::Unix(None)));
        assert!(!list("unix").contains_ip(ip("127.0.0.1")));
        assert!(list("").is_empty());
        assert!(!list(" , ").contains_ip(ip("127.0.0.1")));
        assert!(list("0.0.0.0/0").contains_ip(ip("1.2.3.4")));
        assert!(!list("0.0.0.0/0").contains_ip(ip("::2")));
        assert!(list("::/0").contains_ip(ip("::2")));
        assert!(list("::ffff:10.0.0.0/104").contains_ip(ip("10.9.9.9")));
        let local = IpAllowList::localhost();
        assert!(local.contains_ip(ip("127.0.0.1")) && local.contains_ip(ip("::1")));
        assert!(!local.contains_ip(ip("127.0.0.2")));
        assert!(local.contains(&Address::Unix(None)));
        assert_eq!(local.to_string(), "127.0.0.1,::1,unix");
        assert_eq!(IpAllowList::parse(&local.to_string()).unwrap(), local);
    }

    #[test]
    fn refused_entries() {
        for bad in [
            "localhost",
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "::1/129",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.4:80",
            "[::1]:80",
        ] {
            assert!(IpAllowList::parse(bad).is_err(), "{bad}");
        }
    }
}
