//! Outbound address policy: by default the worker reaches only public
//! addresses. Names are resolved first and every resolved address checked;
//! the connection then uses exactly those addresses (no second lookup that
//! could be rebound). `webhook.allowed_hosts` opens CIDRs and IPs.
//!
//! A host name in `webhook.allowed_hosts` is accepted but opens nothing by
//! itself: whoever controls its DNS could point it anywhere (rebinding), so
//! its addresses must be public or inside a listed CIDR/IP like any other
//! name's (`hooks.internal, 10.0.0.0/8` reaches hooks.internal at 10.x).
//!
//! IPv6 forms that embed an IPv4 address (IPv4-compatible, IPv4-mapped,
//! NAT64, 6to4, Teredo) are refused unconditionally rather than decoded:
//! only the exact IPv6 address or CIDR listed in `webhook.allowed_hosts`
//! opens them.

use super::threads::spawn_quiet;
use crate::error::{Result, WebhookError};
use ipnet::IpNet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Longest DNS lookup, unless the request's own timeout is shorter.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// getaddrinfo cannot be cancelled: a lookup past its deadline is abandoned
/// on its helper thread. So that a dead resolver cannot pile up threads, at
/// most this many lookups may be pending; more fail at once.
const MAX_PENDING_LOOKUPS: usize = 256;
static PENDING_LOOKUPS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AddressPolicy {
    nets: Vec<IpNet>,
    /// Listed names: only used to explain a refusal.
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

    /// Resolve `netloc` (host:port) within `timeout`, keeping only
    /// addresses the policy allows.
    pub fn resolve(&self, netloc: &str, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
        let host = netloc.rsplit_once(':').map_or(netloc, |(h, _)| h);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let addrs = match netloc.parse::<SocketAddr>() {
            Ok(literal) => vec![literal], // an IP address needs no lookup
            Err(_) => lookup(netloc, &host, timeout)?,
        };
        self.check(&host, addrs)
    }

    /// Keep the addresses the policy allows; none left is an error.
    fn check(&self, host: &str, addrs: Vec<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
        let (allowed, refused): (Vec<_>, Vec<_>) =
            addrs.into_iter().partition(|a| self.allows_ip(a.ip()));
        if allowed.is_empty() {
            let shown = refused
                .first()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "no address".into());
            let hint = if self.hosts.iter().any(|h| h == host) {
                "a host name in webhook.allowed_hosts does not open non-public addresses; list the address or its CIDR as well"
            } else {
                "add the address or its CIDR to webhook.allowed_hosts to allow it"
            };
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refused: {host} resolves to non-public address {shown}; {hint}"),
            ));
        }
        Ok(allowed)
    }
}

/// getaddrinfo on a helper thread, waited for at most `timeout`.
fn lookup(netloc: &str, host: &str, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "DNS lookup of {host} timed out after {} ms",
                timeout.as_millis()
            ),
        )
    };
    // No time left: nothing is started (a lookup answered from
    // /etc/hosts could otherwise still win the race with a zero wait).
    if timeout.is_zero() {
        return Err(timed_out());
    }
    if PENDING_LOOKUPS.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_LOOKUPS {
        PENDING_LOOKUPS.fetch_sub(1, Ordering::SeqCst);
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("DNS lookup of {host} not started: {MAX_PENDING_LOOKUPS} earlier lookups are still unanswered"),
        ));
    }
    let (tx, rx) = mpsc::channel();
    let name = netloc.to_owned();
    let spawned = spawn_quiet("webhook-dns".into(), move || {
        let result = name
            .to_socket_addrs()
            .map(|addrs| addrs.collect::<Vec<_>>());
        PENDING_LOOKUPS.fetch_sub(1, Ordering::SeqCst);
        // The requester may have given up already; nobody to tell then.
        let _ = tx.send(result);
    });
    if let Err(e) = spawned {
        PENDING_LOOKUPS.fetch_sub(1, Ordering::SeqCst);
        return Err(e);
    }
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(timed_out()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(io::Error::other(format!("DNS lookup of {host} failed")))
        }
    }
}

/// Globally routable unicast: not loopback, private, link-local (cloud
/// metadata included), CGNAT, documentation, benchmarking, multicast, ...
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
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
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved 240/4, broadcast included
}

/// Only global unicast 2000::/3 is public. Outside it lie ::/128, ::1,
/// IPv4-compatible ::/96, IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96
/// and 64:ff9b:1::/48, discard 100::/64, unique-local fc00::/7, link-local
/// fe80::/10, site-local fec0::/10 and multicast ff00::/8. Inside it some
/// ranges are special too.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let global_unicast = (seg[0] & 0xe000) == 0x2000;
    let special = match seg[0] {
        // IETF assignments 2001::/23 (Teredo 2001::/32, benchmarking,
        // ORCHID) and documentation 2001:db8::/32.
        0x2001 => seg[1] < 0x0200 || seg[1] == 0x0db8,
        // 6to4 embeds an IPv4 address.
        0x2002 => true,
        // Documentation 3fff::/20.
        0x3fff => seg[1] < 0x1000,
        _ => false,
    };
    global_unicast && !special
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(p: &AddressPolicy, ip: &str) -> bool {
        p.allows_ip(ip.parse().unwrap())
    }

    #[test]
    fn non_public_ipv4_is_refused() {
        let p = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.254",
            "192.88.99.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!allowed(&p, ip), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "198.20.0.1", "100.128.0.1"] {
            assert!(allowed(&p, ip), "{ip}");
        }
    }

    #[test]
    fn non_public_and_ipv4_embedding_ipv6_is_refused() {
        let p = AddressPolicy::default();
        for ip in [
            "::",
            "::1",
            "::127.0.0.1",      // IPv4-compatible
            "::8.8.8.8",        // even when the IPv4 is public
            "::ffff:127.0.0.1", // IPv4-mapped
            "::ffff:8.8.8.8",
            "::ffff:0:a00:1",      // IPv4-translated
            "64:ff9b::7f00:1",     // NAT64
            "64:ff9b:1::a00:1",    // local-use NAT64
            "2002:7f00:1::1",      // 6to4
            "2001:0:4136:e378::1", // Teredo
            "2001:2::1",           // benchmarking
            "2001:db8::1",         // documentation
            "3fff::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1", // site-local
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(!allowed(&p, ip), "{ip}");
        }
        for ip in [
            "2606:4700::6810:84e5",
            "2a00:1450:4001::200e",
            "2001:200::1",
        ] {
            assert!(allowed(&p, ip), "{ip}");
        }
    }

    #[test]
    fn listed_cidrs_and_ips_open_addresses() {
        let open = AddressPolicy::parse("127.0.0.1/32, 10.0.0.0/8, fd00::/8, 192.168.1.5").unwrap();
        for ip in ["127.0.0.1", "10.9.9.9", "fd00::1", "192.168.1.5"] {
            assert!(allowed(&open, ip), "{ip}");
        }
        for ip in ["192.168.1.6", "127.0.0.2", "::ffff:10.0.0.1", "::1"] {
            assert!(!allowed(&open, ip), "{ip}");
        }
        // An embedding is opened only by listing it exactly.
        let mapped = AddressPolicy::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(allowed(&mapped, "::ffff:10.0.0.1"));
        assert!(!allowed(&mapped, "10.0.0.1"));
        assert!(AddressPolicy::parse("not a host!").is_err());
        assert_eq!(AddressPolicy::parse("").unwrap(), AddressPolicy::default());
    }

    fn sock(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 80)
    }

    #[test]
    fn a_listed_name_does_not_open_private_addresses() {
        let name_only = AddressPolicy::parse("hooks.internal").unwrap();
        let err = name_only
            .check("hooks.internal", vec![sock("10.1.2.3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("non-public address 10.1.2.3"), "{err}");
        assert!(err.contains("does not open non-public addresses"), "{err}");
        // Public addresses need no listing; a listed CIDR opens private ones.
        assert!(name_only
            .check("hooks.internal", vec![sock("93.184.216.34")])
            .is_ok());
        let with_net = AddressPolicy::parse("hooks.internal, 10.0.0.0/8").unwrap();
        let kept = with_net
            .check(
                "hooks.internal",
                vec![sock("169.254.169.254"), sock("10.1.2.3")],
            )
            .unwrap();
        assert_eq!(kept, vec![sock("10.1.2.3")]);
        assert!(with_net
            .check("hooks.internal", vec![sock("169.254.169.254")])
            .is_err());
    }

    #[test]
    fn ip_literals_are_checked_too() {
        let p = AddressPolicy::default();
        for netloc in [
            "127.0.0.1:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[64:ff9b::a00:1]:443",
        ] {
            let err = p.resolve(netloc, DNS_TIMEOUT).unwrap_err().to_string();
            assert!(err.contains("webhook.allowed_hosts"), "{netloc}: {err}");
        }
        let open = AddressPolicy::parse("127.0.0.1").unwrap();
        assert!(open.resolve("127.0.0.1:80", DNS_TIMEOUT).is_ok());
    }

    #[test]
    fn a_lookup_past_its_deadline_is_a_timeout_error() {
        // Nothing answers within a zero budget; the lookup is abandoned.
        let p = AddressPolicy::default();
        let err = p
            .resolve("localhost:80", Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("DNS lookup of localhost timed out"), "{err}");
    }
}
