//! The PROXY protocol, versions 1 and 2 (HAProxy's `send-proxy` / `send-proxy-v2`): a load
//! balancer that forwards a TCP connection first sends a header with the client's address.
//!
//! Opt-in on the stream server builders (`proxy_protocol(peers)`). Only the listed peers may
//! send the header, and from them it is required: a connection from anyone else, or one whose
//! header is missing, malformed, too long or late, is closed before the handler (and before a
//! TLS handshake) — logged at INFO with the socket peer. The header is read in the connection's
//! own coroutine under a deadline, never past its last byte: what follows it (a request, a TLS
//! ClientHello) reaches the handler whole.
//!
//! The parser ([`scan`]) is a pure function over the bytes received so far: it says how many
//! more certainly belong to the header, or where the header ends. No crate is used: the reading
//! side needs exactly this "how much more is header" answer, and the protocol is small.
//! `fuzz/fuzz_targets/proxy_header.rs` feeds it any bytes.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use slog::{info, Logger};

use crate::address::Address;
use crate::error::Result;
use crate::ip_allow::{AllowFrom, IpAllowList};
use crate::stream::Stream;

/// Default deadline for the whole PROXY header, from the accept (a WSGI server uses its
/// `header_read_timeout` unless `proxy_protocol_timeout` is set).
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest version 1 header, CRLF included (the specification's limit).
pub const PROXY_V1_MAX: usize = 107;

/// Longest version 2 header accepted, the 16 fixed bytes included: addresses (at most 216
/// bytes, for Unix sockets) plus TLVs. HAProxy's own TLVs (ALPN, authority, unique id, SSL
/// details, network namespace) fit easily; a longer header closes the connection.
pub const PROXY_V2_MAX: usize = 16 + 2048;

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// `PROXY UNKNOWN\r\n`, the shortest header of either version.
const MIN_HEADER: usize = 15;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A proxied TCP connection over IPv4 or IPv6: the client and the address it connected to.
    Proxy {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// Version 2 `LOCAL`: the proxy's own connection (a health check); keep the socket peer.
    Local,
    /// Version 1 `UNKNOWN`, or a version 2 family this server does not map (unspecified, Unix,
    /// datagram): keep the socket peer.
    Unknown,
}

/// How far a header has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Every byte so far belongs to the header, and at least this many more do.
    Need(usize),
    /// The header is the first `len` bytes.
    Done { len: usize, header: Header },
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid(pub(crate) &'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Scan the bytes received so far (`buf` never holds more than the header: the reader stops
/// at its end).
pub(crate) fn scan(buf: &[u8]) -> std::result::Result<Scan, Invalid> {
    if buf.is_empty() {
        return Ok(Scan::Need(MIN_HEADER));
    }
    if buf[0] == b'\r' {
        scan_v2(buf)
    } else if buf[0] == b'P' {
        scan_v1(buf)
    } else {
        Err(Invalid("no PROXY header"))
    }
}

fn scan_v2(buf: &[u8]) -> std::result::Result<Scan, Invalid> {
    let sig = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig] != V2_SIGNATURE[..sig] {
        return Err(Invalid("no PROXY header"));
    }
    if buf.len() < 16 {
        return Ok(Scan::Need(16 - buf.len()));
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(Invalid("unsupported PROXY v2 version"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(Invalid("unsupported PROXY v2 command")),
    };
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > PROXY_V2_MAX {
        return Err(Invalid("PROXY v2 header too long"));
    }
    if buf.len() < len {
        return Ok(Scan::Need(len - buf.len()));
    }
    let payload = &buf[16..len];
    let family = buf[13];
    if local {
        // the receiver must accept it and ignore any address information (and TLVs)
        return Ok(Scan::Done {
            len,
            header: Header::Local,
        });
    }
    let (header, tlvs) = match family {
        0x11 => {
            let a = payload
                .get(..12)
                .ok_or(Invalid("PROXY v2 address block too short"))?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]));
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let header = Header::Proxy {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            };
            (header, &payload[12..])
        }
        0x21 => {
            let a = payload
                .get(..36)
                .ok_or(Invalid("PROXY v2 address block too short"))?;
            let ip = |o: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            let header = Header::Proxy {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            };
            (header, &payload[36..])
        }
        // unspecified, datagrams, Unix sockets: accepted, the socket peer is kept
        0x00 | 0x01 | 0x02 | 0x10 | 0x12 | 0x20 | 0x22 | 0x30 | 0x31 | 0x32 => {
            return Ok(Scan::Done {
                len,
                header: Header::Unknown,
            })
        }
        _ => return Err(Invalid("unsupported PROXY v2 address family")),
    };
    skip_tlvs(tlvs)?;
    Ok(Scan::Done { len, header })
}

/// TLVs are skipped, but they must fit the header exactly.
fn skip_tlvs(mut tlvs: &[u8]) -> std::result::Result<(), Invalid> {
    while !tlvs.is_empty() {
        let Some(&[_, hi, lo]) = tlvs.get(..3) else {
            return Err(Invalid("truncated PROXY v2 TLV"));
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        if end > tlvs.len() {
            return Err(Invalid("truncated PROXY v2 TLV"));
        }
        tlvs = &tlvs[end..];
    }
    Ok(())
}

fn scan_v1(buf: &[u8]) -> std::result::Result<Scan, Invalid> {
    let pre = buf.len().min(V1_PREFIX.len());
    if buf[..pre] != V1_PREFIX[..pre] {
        return Err(Invalid("no PROXY header"));
    }
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() >= PROXY_V1_MAX {
            return Err(Invalid("PROXY v1 header too long"));
        }
        if buf[..buf.len() - 1].contains(&b'\r') {
            return Err(Invalid("PROXY v1 header with a bare CR"));
        }
        return Ok(Scan::Need(MIN_HEADER.saturating_sub(buf.len()).max(1)));
    };
    let len = lf + 1;
    if len > PROXY_V1_MAX {
        return Err(Invalid("PROXY v1 header too long"));
    }
    let line = buf[..lf]
        .strip_suffix(b"\r")
        .ok_or(Invalid("PROXY v1 header not ended by CRLF"))?;
    if line.contains(&b'\r') {
        return Err(Invalid("PROXY v1 header with a bare CR"));
    }
    let header = parse_v1(line).ok_or(Invalid("malformed PROXY v1 header"))?;
    Ok(Scan::Done { len, header })
}

fn parse_v1(line: &[u8]) -> Option<Header> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if parts.next()? != "PROXY" {
        return None;
    }
    let proto = parts.next()?;
    if proto == "UNKNOWN" {
        // "the receiver must ignore anything presented before the CRLF"
        return Some(Header::Unknown);
    }
    let (src, dst, sport, dport) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            src.parse::<Ipv4Addr>().ok()?.into(),
            dst.parse::<Ipv4Addr>().ok()?.into(),
        ),
        "TCP6" => (
            src.parse::<Ipv6Addr>().ok()?.into(),
            dst.parse::<Ipv6Addr>().ok()?.into(),
        ),
        _ => return None,
    };
    Some(Header::Proxy {
        source: SocketAddr::new(src, v1_port(sport)?),
        destination: SocketAddr::new(dst, v1_port(dport)?),
    })
}

/// A decimal port without sign or leading zero.
fn v1_port(text: &str) -> Option<u16> {
    let ok = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

/// The PROXY settings of a running server.
#[derive(Debug, Clone)]
pub(crate) struct ProxyOptions {
    pub(crate) allow: IpAllowList,
    pub(crate) timeout: Duration,
}

/// The PROXY part of a stream server builder.
#[derive(Debug, Default)]
pub(crate) struct ProxyBuilder {
    pub(crate) allow: Option<AllowFrom>,
    pub(crate) timeout: Option<Duration>,
}

impl ProxyBuilder {
    /// The settings, if the PROXY protocol is on; `default_timeout` when none was set.
    pub(crate) fn finish(self, default_timeout: Duration) -> Result<Option<ProxyOptions>> {
        if self.timeout == Some(Duration::ZERO) {
            return Err(crate::Error::InvalidConfig(
                "proxy_protocol_timeout must be longer than zero".into(),
            ));
        }
        let Some(allow) = self.allow else {
            return Ok(None);
        };
        Ok(Some(ProxyOptions {
            allow: allow.into_list()?,
            timeout: self.timeout.unwrap_or(default_timeout),
        }))
    }
}

/// What the PROXY header changed for a connection: the proxy's own address (the socket peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proxied {
    pub(crate) client: Option<SocketAddr>,
    pub(crate) proxy: Address,
}

/// Read and check the PROXY header of a just-accepted connection, in its coroutine, before
/// any TLS. `None`: refused (logged, the caller closes the connection).
pub(crate) fn accept(
    opts: &ProxyOptions,
    logger: &Logger,
    server: &'static str,
    stream: &mut Stream,
    peer: &Address,
) -> Option<Proxied> {
    if !opts.allow.contains(peer) {
        info!(logger, "connection refused: peer not allowed to send a PROXY header";
            "server" => server, "peer" => %peer);
        return None;
    }
    let deadline = Instant::now() + opts.timeout;
    let result = read_header(stream, deadline);
    let reset = stream.set_read_timeout(None);
    match result.and_then(|header| reset.map(|()| header)) {
        Ok(header) => {
            let client = match header {
                Header::Proxy { source, .. } => Some(source),
                Header::Local | Header::Unknown => None,
            };
            Some(Proxied {
                client,
                proxy: peer.clone(),
            })
        }
        Err(err) => {
            info!(logger, "connection closed: bad PROXY header";
                "server" => server, "peer" => %peer, "error" => %err);
            None
        }
    }
}

/// Read exactly the header: peek at what arrived (TCP), or read only what certainly belongs
/// to it (Unix), until [`scan`] finds its end; every read is bounded by what is left of the
/// deadline.
#[inline(never)]
fn read_header(stream: &mut Stream, deadline: Instant) -> io::Result<Header> {
    // on the heap: coroutine stack pages, once touched, stay resident for the whole connection
    let mut buf = vec![0u8; PROXY_V2_MAX];
    let mut have = 0usize;
    loop {
        let need = match scan(&buf[..have]).map_err(invalid)? {
            Scan::Done { len, header } if len == have => return Ok(header),
            Scan::Done { .. } => return Err(invalid(Invalid("PROXY header overread"))),
            Scan::Need(n) => n,
        };
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)?;
        stream.set_read_timeout(Some(left))?;
        let cap = buf.len().min(have + need.max(PROXY_V1_MAX));
        let take = match stream.as_tcp() {
            Some(tcp) => {
                let n = tcp.peek(&mut buf[have..cap]).map_err(deadline_err)?;
                if n == 0 {
                    return Err(closed());
                }
                // how many of the peeked bytes are header
                match scan(&buf[..have + n]).map_err(invalid)? {
                    Scan::Done { len, .. } => len - have,
                    Scan::Need(_) => n,
                }
            }
            None => need.min(buf.len() - have),
        };
        let end = have + take;
        let mut got = have;
        while got < end {
            match stream.read(&mut buf[got..end]).map_err(deadline_err)? {
                0 => return Err(closed()),
                n => got += n,
            }
        }
        have = end;
    }
}

fn invalid(err: Invalid) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err.0)
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the PROXY header did not arrive in time",
    )
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the connection closed inside the PROXY header",
    )
}

fn deadline_err(err: io::Error) -> io::Error {
    if matches!(
        err.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        timed_out()
    } else {
        err
    }
}

/// PROXY protocol setters of the stream server builders.
macro_rules! proxy_builder_methods {
    () => {
        /// Accept the PROXY protocol (versions 1 and 2, detected per connection; HAProxy's
        /// `send-proxy` / `send-proxy-v2`) from the peers in `allow_from` — addresses, CIDR
        /// networks, `unix`, `*` (see [`IpAllowList`](crate::IpAllowList); a string that does
        /// not parse is an error at `build()`). gunicorn: `proxy_protocol` + `proxy_allow_ips`.
        ///
        /// Security model: the header is trusted only from those peers, and from them it is
        /// required. A connection from any other peer is closed unhandled, and so is one whose
        /// header is missing, malformed, longer than allowed ([`PROXY_V1_MAX`](crate::PROXY_V1_MAX),
        /// [`PROXY_V2_MAX`](crate::PROXY_V2_MAX)) or not complete within
        /// [`proxy_protocol_timeout`](Self::proxy_protocol_timeout); each is logged at INFO with
        /// the socket peer, and nothing reaches the handler. List only the balancers, never a
        /// network clients can connect from.
        ///
        /// The header is read once per connection, before the TLS handshake and before the
        /// first request, and never past its end (the bytes after it reach the handler). For a
        /// proxied TCP connection (v1 `TCP4`/`TCP6`, v2 `PROXY` over IPv4/IPv6) the handler's
        /// [`Address`](crate::Address) and [`Stream::peer_addr`](crate::Stream::peer_addr) are
        /// the client's (a WSGI server's `REMOTE_ADDR`/`REMOTE_PORT` too), and
        /// [`Stream::proxy_addr`](crate::Stream::proxy_addr) is the balancer's (WSGI:
        /// `may_gevent.proxy_addr`). v2 `LOCAL` (health checks), v1 `UNKNOWN` and v2
        /// families other than TCP keep the socket peer. v2 TLVs are checked for shape and
        /// skipped. `verify_request` runs at accept, before the header, with the socket peer.
        pub fn proxy_protocol(mut self, allow_from: impl Into<crate::AllowFrom>) -> Self {
            self.proxy.allow = Some(allow_from.into());
            self
        }

        /// Deadline for the whole PROXY header, from the accept. Default:
        /// [`PROXY_HEADER_TIMEOUT`](crate::PROXY_HEADER_TIMEOUT) (10 s) — for a WSGI server its
        /// `header_read_timeout` when that is set. Zero is an error at `build()`.
        pub fn proxy_protocol_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.proxy.timeout = Some(timeout);
            self
        }
    };
}
pub(crate) use proxy_builder_methods;

#[cfg(test)]
mod tests {
    use super::*;

    fn done(buf: &[u8]) -> Header {
        match scan(buf) {
            Ok(Scan::Done { len, header }) => {
                assert_eq!(len, buf.len(), "{buf:?}");
                header
            }
            other => panic!("{buf:?}: {other:?}"),
        }
    }

    fn err(buf: &[u8]) -> &'static str {
        match scan(buf) {
            Err(Invalid(why)) => why,
            other => panic!("{buf:?}: {other:?}"),
        }
    }

    fn proxy(src: &str, dst: &str) -> Header {
        Header::Proxy {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    pub(crate) fn v2(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(cmd);
        out.push(fam);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn v1_forms() {
        assert_eq!(
            done(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
            proxy("192.0.2.1:56324", "198.51.100.2:443")
        );
        assert_eq!(
            done(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n"),
            proxy("[2001:db8::1]:65535", "[::1]:0")
        );
        assert_eq!(done(b"PROXY UNKNOWN\r\n"), Header::Unknown);
        assert_eq!(done(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n"), Header::Unknown);
        let longest = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert!(matches!(done(longest), Header::Proxy { .. }));
        let max = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 91], b"\r\n"].concat();
        assert_eq!(max.len(), PROXY_V1_MAX);
        assert_eq!(done(&max), Header::Unknown);
    }

    #[test]
    fn v1_partial_and_refused() {
        assert_eq!(scan(b""), Ok(Scan::Need(15)));
        assert_eq!(scan(b"PRO"), Ok(Scan::Need(12)));
        assert_eq!(scan(b"PROXY TCP4 1.2.3.4"), Ok(Scan::Need(1)));
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n",
            b"PROXY TCP4 1.2.\r3.4",
            b"proxy ",
        ] {
            err(bad);
        }
        assert_eq!(scan(b"P"), Ok(Scan::Need(14)));
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 93]].concat();
        assert_eq!(long.len(), PROXY_V1_MAX);
        assert_eq!(err(&long), "PROXY v1 header too long");
    }

    #[test]
    fn v2_forms() {
        let mut inet = vec![192, 0, 2, 1, 198, 51, 100, 2];
        inet.extend_from_slice(&56324u16.to_be_bytes());
        inet.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            done(&v2(0x21, 0x11, &inet)),
            proxy("192.0.2.1:56324", "198.51.100.2:443")
        );
        // with TLVs: ALPN "h2", a NOOP with no value, an authority
        let mut tlv = inet.clone();
        tlv.extend_from_slice(&[
            0x01, 0, 2, b'h', b'2', 0x04, 0, 0, 0x02, 0, 3, b'a', b'.', b'b',
        ]);
        assert_eq!(
            done(&v2(0x21, 0x11, &tlv)),
            proxy("192.0.2.1:56324", "198.51.100.2:443")
        );
        let mut six = Vec::new();
        six.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        six.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        six.extend_from_slice(&[0, 80, 1, 187]);
        assert_eq!(
            done(&v2(0x21, 0x21, &six)),
            proxy("[2001:db8::1]:80", "[::1]:443")
        );
        assert_eq!(done(&v2(0x20, 0x00, &[])), Header::Local);
        assert_eq!(done(&v2(0x20, 0x11, &inet)), Header::Local);
        assert_eq!(done(&v2(0x21, 0x00, &[])), Header::Unknown);
        assert_eq!(done(&v2(0x21, 0x31, &[0; 216])), Header::Unknown);
        assert_eq!(done(&v2(0x21, 0x12, &inet)), Header::Unknown);
    }

    /// The fuzz target's property (fuzz/fuzz_targets/proxy_header.rs) over mutated headers:
    /// no panic, a found header lies within the input, every shorter prefix is incomplete.
    #[test]
    fn prefixes_of_a_header_are_incomplete() {
        let mut inet = vec![192, 0, 2, 1, 198, 51, 100, 2, 1, 2, 3, 4];
        inet.extend_from_slice(&[0x04, 0, 2, 7, 7]);
        let seeds: Vec<Vec<u8>> = vec![
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET /".to_vec(),
            b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n\r\n".to_vec(),
            v2(0x21, 0x11, &inet),
            v2(0x20, 0x00, &[]),
            v2(0x21, 0x21, &[1; 40]),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seed in &seeds {
            for _ in 0..2000 {
                let mut data = seed.clone();
                for _ in 0..(next() % 4) {
                    let i = (next() as usize) % data.len();
                    match next() % 3 {
                        0 => data[i] = next() as u8,
                        1 => data.insert(i, next() as u8),
                        _ => {
                            data.remove(i);
                        }
                    }
                    if data.is_empty() {
                        data.push(b'P');
                    }
                }
                if let Ok(Scan::Done { len, .. }) = scan(&data) {
                    assert!((MIN_HEADER..=data.len()).contains(&len), "{data:?}");
                    for cut in 0..len {
                        assert!(
                            matches!(scan(&data[..cut]), Ok(Scan::Need(n)) if n >= 1 && cut + n <= len),
                            "{data:?} cut at {cut}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn v2_partial_and_refused() {
        let whole = v2(0x21, 0x11, &[0; 12]);
        for cut in 1..whole.len() {
            match scan(&whole[..cut]) {
                Ok(Scan::Need(n)) => assert!(cut + n <= whole.len(), "{cut}+{n}"),
                other => panic!("{cut}: {other:?}"),
            }
        }
        assert_eq!(
            err(&v2(0x11, 0x11, &[0; 12])),
            "unsupported PROXY v2 version"
        );
        assert_eq!(
            err(&v2(0x22, 0x11, &[0; 12])),
            "unsupported PROXY v2 command"
        );
        assert_eq!(
            err(&v2(0x21, 0x11, &[0; 11])),
            "PROXY v2 address block too short"
        );
        assert_eq!(
            err(&v2(0x21, 0x21, &[0; 35])),
            "PROXY v2 address block too short"
        );
        assert_eq!(
            err(&v2(0x21, 0x41, &[0; 12])),
            "unsupported PROXY v2 address family"
        );
        assert_eq!(err(&v2(0x21, 0x11, &[0; 14])), "truncated PROXY v2 TLV");
        let mut bad_tlv = vec![0; 12];
        bad_tlv.extend_from_slice(&[0x01, 0, 5, b'x']);
        assert_eq!(err(&v2(0x21, 0x11, &bad_tlv)), "truncated PROXY v2 TLV");
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(err(&huge), "PROXY v2 header too long");
        assert_eq!(err(b"\r\n\r\n\0\r\nQUIX"), "no PROXY header");
        assert_eq!(scan(b"\r\n"), Ok(Scan::Need(14)));
        assert_eq!(err(b"\r\r"), "no PROXY header");
    }
}
