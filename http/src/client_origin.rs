//! Who is on the other end of a request: its scheme and the client's address, honouring
//! `X-Forwarded-For` / `X-Forwarded-Proto` / `X-Forwarded-Host` only when the TCP peer is a
//! configured trusted proxy. actix's `connection_info()` believes those headers (and
//! `Forwarded`) from anyone, so a client could claim any address or scheme; nothing in cashgrid
//! uses it. Logs, metrics and anything that builds an absolute URL ask this module instead.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// Addresses (single IPs or CIDR blocks) of reverse proxies whose forwarding headers are
/// believed. Empty by default: no header is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Block>);

/// An address block: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    address: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Self { address, prefix })
    }

    fn contains(self, candidate: IpAddr) -> bool {
        let candidate = canonical(candidate);
        match (self.address, candidate) {
            (IpAddr::V4(block), IpAddr::V4(candidate)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(block) & mask == u32::from(candidate) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(candidate)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(block) & mask == u128::from(candidate) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// An IPv4 peer seen through an IPv6 socket (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trusted proxy '{0}': give IP addresses or CIDR blocks, e.g. 10.0.0.0/8,192.168.1.7")]
pub struct TrustedProxiesError(String);

impl TrustedProxies {
    /// Entries separated by commas or whitespace: `10.0.0.0/8, 192.168.1.7, ::1`.
    pub fn parse(text: &str) -> Result<Self, TrustedProxiesError> {
        Self::from_entries(text.split(|c: char| c == ',' || c.is_whitespace()))
    }

    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, TrustedProxiesError> {
        entries
            .into_iter()
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| Block::parse(entry).ok_or_else(|| TrustedProxiesError(entry.to_owned())))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(address))
    }
}

/// What a request's origin is, as far as it can be believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOrigin {
    /// `http` or `https`: what the client used.
    pub scheme: &'static str,
    /// The client's address; `None` only when the connection has none (e.g. in tests).
    pub address: Option<IpAddr>,
    /// The host the client asked for (`Host`, or a trusted proxy's `X-Forwarded-Host`).
    pub host: Option<String>,
}

/// The facts a request offers, apart from actix (so that the rule is testable as a function).
#[derive(Debug, Clone, Copy, Default)]
pub struct Offered<'a> {
    pub peer: Option<IpAddr>,
    /// The connection itself is TLS.
    pub tls: bool,
    pub host: Option<&'a str>,
    pub forwarded_for: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    pub forwarded_host: Option<&'a str>,
}

/// The rule: forwarding headers count only when the peer is a trusted proxy. The client is
/// then the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries
/// further left were written by the client and prove nothing); the scheme is the first
/// `X-Forwarded-Proto` value if it is `http` or `https`.
pub fn resolve(offered: Offered<'_>, trusted: &TrustedProxies) -> ClientOrigin {
    let direct = ClientOrigin {
        scheme: if offered.tls { "https" } else { "http" },
        address: offered.peer.map(canonical),
        host: offered.host.map(str::to_owned),
    };
    let Some(peer) = offered.peer.filter(|peer| trusted.trusts(*peer)) else {
        return direct;
    };
    let mut address = canonical(peer);
    if let Some(chain) = offered.forwarded_for {
        for hop in chain.rsplit(',').map(str::trim) {
            let Some(hop) = parse_hop(hop) else { break };
            address = hop;
            if !trusted.trusts(hop) {
                break;
            }
        }
    }
    let scheme = match first(offered.forwarded_proto) {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
        Some(_) | None => direct.scheme,
    };
    let host = first(offered.forwarded_host).filter(|host| !host.is_empty()).map(str::to_owned).or(direct.host);
    ClientOrigin { scheme, address: Some(address), host }
}

/// The first of a header's comma-separated values (the one the client-facing proxy wrote).
fn first(value: Option<&str>) -> Option<&str> {
    value.and_then(|value| value.split(',').next()).map(str::trim)
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    None
}

/// The origin of `request` under `trusted`.
pub fn of(request: &HttpRequest, trusted: &TrustedProxies) -> ClientOrigin {
    let header = |name: &str| request.headers().get(name).and_then(|value| value.to_str().ok());
    let offered = Offered {
        peer: request.peer_addr().map(|socket| socket.ip()),
        tls: request.app_config().secure(),
        host: header("host"),
        forwarded_for: header("x-forwarded-for"),
        forwarded_proto: header("x-forwarded-proto"),
        forwarded_host: header("x-forwarded-host"),
    };
    resolve(offered, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn proxies(text: &str) -> TrustedProxies {
        TrustedProxies::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn forwarded<'a>(peer: &str, chain: &'a str, proto: &'a str) -> Offered<'a> {
        Offered {
            peer: Some(ip(peer)),
            tls: false,
            host: Some("cashgrid.internal:8080"),
            forwarded_for: Some(chain),
            forwarded_proto: Some(proto),
            forwarded_host: Some("pay.example.com"),
        }
    }

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let origin = resolve(forwarded("203.0.113.9", "198.51.100.1", "https"), &proxies("10.0.0.0/8"));
        assert_eq!(origin.scheme, "http");
        assert_eq!(origin.address, Some(ip("203.0.113.9")));
        assert_eq!(origin.host.as_deref(), Some("cashgrid.internal:8080"));
        // Nothing configured: nobody is trusted.
        let origin = resolve(forwarded("10.0.0.2", "198.51.100.1", "https"), &TrustedProxies::default());
        assert_eq!((origin.scheme, origin.address), ("http", Some(ip("10.0.0.2"))));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_the_scheme() {
        let trusted = proxies("10.0.0.0/8, 192.168.1.7");
        let origin = resolve(forwarded("10.1.2.3", "198.51.100.1", "https"), &trusted);
        assert_eq!(origin.scheme, "https");
        assert_eq!(origin.address, Some(ip("198.51.100.1")));
        assert_eq!(origin.host.as_deref(), Some("pay.example.com"));
        // Entries left of the first untrusted hop were written by the client: not believed.
        let spoofed = resolve(forwarded("192.168.1.7", "1.1.1.1, 198.51.100.1, 10.0.0.5", "HTTPS"), &trusted);
        assert_eq!(spoofed.address, Some(ip("198.51.100.1")));
        assert_eq!(spoofed.scheme, "https");
        // Only proxies in the chain: the left-most is as far as it goes.
        let internal = resolve(forwarded("10.1.2.3", "10.9.9.9:4431", "gopher"), &trusted);
        assert_eq!(internal.address, Some(ip("10.9.9.9")));
        assert_eq!(internal.scheme, "http", "an unknown proto is ignored");
        // A garbled entry stops the walk at the last good hop.
        let garbled = resolve(forwarded("10.1.2.3", "junk", "https"), &trusted);
        assert_eq!(garbled.address, Some(ip("10.1.2.3")));
    }

    #[test]
    fn a_tls_connection_is_https_and_mapped_ipv4_peers_are_ipv4() {
        let offered = Offered { peer: Some(ip("::ffff:10.0.0.1")), tls: true, ..Offered::default() };
        let origin = resolve(offered, &proxies("10.0.0.0/8"));
        assert_eq!((origin.scheme, origin.address), ("https", Some(ip("10.0.0.1"))));
    }

    #[test]
    fn proxy_lists_accept_addresses_and_blocks_and_refuse_anything_else() {
        let trusted = proxies("127.0.0.1 ::1,10.0.0.0/8 fd00::/8");
        for inside in ["127.0.0.1", "::1", "10.255.0.1", "fd12::1"] {
            assert!(trusted.trusts(ip(inside)), "{inside}");
        }
        for outside in ["127.0.0.2", "11.0.0.1", "fe80::1"] {
            assert!(!trusted.trusts(ip(outside)), "{outside}");
        }
        assert!(proxies("0.0.0.0/0").trusts(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", "::1/129"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(proxies(""), TrustedProxies::default());
    }
}
