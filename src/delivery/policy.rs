//! Outbound address policy: by default the worker reaches only public
//! addresses. Names are resolved first and every resolved address checked;
//! the connection then uses exactly those addresses (no second lookup that
//! could be rebound). `webhook.allowed_hosts` opens CIDRs or host names.

use crate::error::{Result, WebhookError};
use ipnet::IpNet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressPolicy {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl AddressPolicy {
    /// Parse `webhook.allowed_hosts`: comma-separated CIDRs, IPs or host names.
    pub fn parse(list: &str) -> Result<Self> {
        let mut policy = AddressPolicy::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                policy.nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                policy.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(WebhookError::invalid(
                    "webhook.allowed_hosts",
                    format!("{item:?} is neither a CIDR, an IP address nor a host name"),
                ));
            }
        }
        Ok(policy)
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Resolve `netloc` (host:port) keeping only addresses the policy allows.
    pub fn resolve(&self, netloc: &str) -> io::Result<Vec<SocketAddr>> {
        let host = netloc.rsplit_once(':').map_or(netloc, |(h, _)| h);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if self.hosts.contains(&host) {
            return Ok(addrs);
        }
        let (allowed, refused): (Vec<_>, Vec<_>) =
            addrs.into_iter().partition(|a| self.allows_ip(a.ip()));
        if allowed.is_empty() {
            let shown = refused
                .first()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "no address".into());
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "refused: {host} resolves to non-public address {shown}; add it to webhook.allowed_hosts to allow it"
                ),
            ));
        }
        Ok(allowed)
    }
}

/// Globally routable unicast: not loopback, private, link-local (cloud
/// metadata included), CGNAT, documentation, benchmarking, multicast, ...
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link local fe80::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x64 && seg[1] == 0xff9b)) // NAT64 can reach private v4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let p = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!p.allows_ip(ip.parse().unwrap()), "{ip}");
        }
        assert!(p.allows_ip("93.184.216.34".parse().unwrap()));
        assert!(p
            .resolve("127.0.0.1:80")
            .unwrap_err()
            .to_string()
            .contains("webhook.allowed_hosts"));
        let open = AddressPolicy::parse("127.0.0.1/32, 10.0.0.0/8, localhost").unwrap();
        assert!(
            open.allows_ip("127.0.0.1".parse().unwrap())
                && open.allows_ip("10.9.9.9".parse().unwrap())
        );
        assert!(!open.allows_ip("192.168.1.1".parse().unwrap()));
        assert!(open.resolve("127.0.0.1:80").is_ok());
        assert!(AddressPolicy::parse("not a host!").is_err());
    }
}
