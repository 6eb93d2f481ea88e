//! Source URL policy of the archiver (SSRF guard).
//!
//! The provider's signature does not cover the body, so a replayed or altered
//! callback can carry any URL. Three checks apply:
//! 1. [`SourcePolicy::check_url`] on the URL itself: scheme, no userinfo,
//!    allowed hosts, and IP-literal hosts (the `url` crate normalises numeric
//!    forms such as `http://2130706433/` and `http://0177.0.0.1/` to IPv4).
//! 2. [`GuardedResolver`], the HTTP client's DNS resolver, returns only
//!    addresses that pass [`SourcePolicy::check_ip`], so the client connects
//!    only to checked addresses and DNS rebinding cannot slip past.
//! 3. The client's redirect policy runs `check_url` on every hop.
//!
//! Proxies are disabled on the client, so no other path reaches the network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

use crate::config::{ConfigError, Env};

/// Rejection of a source URL, before any request reached it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("scheme {scheme:?} is not allowed; use https{http_hint}")]
    SchemeNotAllowed {
        scheme: String,
        http_hint: &'static str,
    },
    #[error("URLs with a user name or password are not allowed")]
    Userinfo,
    #[error("host {host} is not in ALLOWED_SOURCE_HOSTS")]
    HostNotAllowed { host: String },
    #[error(
        "address {address} of host {host} is not public (loopback, private, link-local, \
         shared, multicast, reserved or unspecified); only a local run may set \
         ALLOW_PRIVATE_SOURCES=true, which allows loopback and private addresses"
    )]
    NonPublicAddress { host: String, address: IpAddr },
    #[error("host {host} did not resolve to any address")]
    Unresolved { host: String },
}

/// The policy for result URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// Allow loopback and private (RFC 1918, unique local) addresses, and
    /// plain `http`; for local runs and tests. Link-local (cloud metadata),
    /// shared, multicast, reserved and unspecified addresses stay rejected.
    pub allow_private: bool,
    /// Allow plain `http` to public addresses.
    pub allow_http: bool,
    /// Lowercase host suffixes; when non-empty, only matching hosts are fetched.
    pub allowed_hosts: Vec<String>,
}

impl SourcePolicy {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let allowed_hosts = env_list(env, "ALLOWED_SOURCE_HOSTS").unwrap_or_default();
        Ok(Self {
            allow_private: env.bool("ALLOW_PRIVATE_SOURCES", false)?,
            allow_http: env.bool("ALLOW_HTTP_SOURCES", false)?,
            allowed_hosts: parse_host_suffixes(allowed_hosts)?,
        })
    }

    /// Checks a URL before any request is made.
    pub fn check_url(&self, raw: &str) -> Result<Url, SourceError> {
        let url = Url::parse(raw).map_err(|err| SourceError::InvalidUrl(err.to_string()))?;

        match url.scheme() {
            "https" => {}
            "http" if self.allow_private || self.allow_http => {}
            other => {
                return Err(SourceError::SchemeNotAllowed {
                    scheme: other.to_owned(),
                    http_hint: if other == "http" {
                        " (or set ALLOW_HTTP_SOURCES=true)"
                    } else {
                        ""
                    },
                })
            }
        }

        if !url.username().is_empty() || url.password().is_some() {
            return Err(SourceError::Userinfo);
        }

        let host = url
            .host()
            .ok_or_else(|| SourceError::InvalidUrl("URL has no host".into()))?;
        let host_text = host.to_string();
        if !self.host_allowed(&host_text) {
            return Err(SourceError::HostNotAllowed { host: host_text });
        }

        let literal = match host {
            Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            Host::Domain(_) => None,
        };
        if let Some(address) = literal {
            self.check_ip(&host_text, address)?;
        }
        Ok(url)
    }

    /// Checks one address a host resolved to, or an IP-literal host.
    pub fn check_ip(&self, host: &str, address: IpAddr) -> Result<(), SourceError> {
        if is_public(address) || (self.allow_private && is_loopback_or_private(address)) {
            Ok(())
        } else {
            Err(SourceError::NonPublicAddress {
                host: host.to_owned(),
                address,
            })
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        if self.allowed_hosts.is_empty() {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.iter().any(|suffix| {
            host == *suffix
                || host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

fn env_list<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
) -> Option<Vec<String>> {
    env.string(name).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

fn parse_host_suffixes(hosts: Vec<String>) -> Result<Vec<String>, ConfigError> {
    hosts
        .into_iter()
        .map(|host| {
            let normalized = host
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let valid = !normalized.is_empty()
                && normalized
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if valid {
                Ok(normalized)
            } else {
                Err(ConfigError {
                    variable: "ALLOWED_SOURCE_HOSTS",
                    value: host,
                    expected: "comma-separated host names or suffixes, such as cdn.example.com"
                        .into(),
                })
            }
        })
        .collect()
}

/// Returns whether an address is globally reachable, by the IANA special-purpose
/// registries for IPv4 and IPv6. IPv6 forms that embed an IPv4 address
/// (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// Returns whether an address is loopback or private (10/8, 172.16/12,
/// 192.168/16, fc00::/7), also in its IPv4-mapped IPv6 form.
fn is_loopback_or_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_loopback() || v4.is_private(),
            None => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240; // reserved
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }

    let segments = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);

    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96).
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return is_public_v4(embedded_v4(segments[6], segments[7]));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded_v4(segments[6], segments[7]));
    }
    // 6to4 (2002::/16) carries an IPv4 address in its next 32 bits.
    if segments[0] == 0x2002 {
        return is_public_v4(embedded_v4(segments[1], segments[2]));
    }

    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || (segments[0] == 0x2001 && segments[1] < 0x0200) // IETF protocol assignments, Teredo
        || segments[0] == 0x0100 && segments[1..4] == [0, 0, 0]; // discard-only
    !reserved
}

/// DNS resolver for the HTTP client that only hands out checked addresses.
///
/// A host with any non-public address is rejected as a whole, so a host
/// that mixes public and private records cannot be used to reach the private one.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<SourcePolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<SourcePolicy>) -> Self {
        Self { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.is_empty() {
                return Err(Box::new(SourceError::Unresolved { host }) as _);
            }
            for address in &addresses {
                // Plain `?` boxes the `SourceError` itself, so `FetchError::from_reqwest`
                // can downcast it. `map_err(Box::new)?` would box it twice and hide it.
                policy.check_ip(&host, address.ip())?;
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> SourcePolicy {
        SourcePolicy::default()
    }

    #[test]
    fn https_public_host_passes() {
        let url = strict()
            .check_url("https://cdn.example.com/a/x_0_0.jpeg")
            .unwrap();

        assert_eq!(url.host_str(), Some("cdn.example.com"));
    }

    #[test]
    fn numeric_and_mapped_loopback_forms_rejected() {
        for raw in [
            "https://127.0.0.1/x.png",
            "https://2130706433/x.png",
            "https://0177.0.0.1/x.png",
            "https://0x7f.1/x.png",
            "https://[::1]/x.png",
            "https://[::ffff:127.0.0.1]/x.png",
            "https://[::ffff:169.254.169.254]/",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[fe80::1]/",
            "https://[fc00::1]/",
            "https://[64:ff9b::7f00:1]/",
            "https://[2002:7f00:1::]/",
            "https://224.0.0.1/",
        ] {
            assert!(
                matches!(
                    strict().check_url(raw),
                    Err(SourceError::NonPublicAddress { .. })
                ),
                "{raw}: {:?}",
                strict().check_url(raw)
            );
        }
    }

    #[test]
    fn schemes_and_userinfo_rejected() {
        for raw in [
            "file:///etc/passwd",
            "ftp://cdn.example.com/x",
            "data:image/png;base64,AAAA",
            "http://cdn.example.com/x",
        ] {
            assert!(
                matches!(
                    strict().check_url(raw),
                    Err(SourceError::SchemeNotAllowed { .. })
                ),
                "{raw}"
            );
        }
        assert_eq!(
            strict().check_url("https://user:pw@cdn.example.com/x"),
            Err(SourceError::Userinfo)
        );
        assert!(matches!(
            strict().check_url("not a url"),
            Err(SourceError::InvalidUrl(_))
        ));
    }

    #[test]
    fn allowed_hosts_match_suffix_on_label_boundary() {
        let policy = SourcePolicy {
            allowed_hosts: vec!["cdn.example.com".into()],
            ..SourcePolicy::default()
        };

        assert!(policy.check_url("https://cdn.example.com/x").is_ok());
        assert!(policy.check_url("https://eu.cdn.example.com/x").is_ok());
        assert_eq!(
            policy.check_url("https://evilcdn.example.com/x"),
            Err(SourceError::HostNotAllowed {
                host: "evilcdn.example.com".into()
            })
        );
    }

    #[test]
    fn private_allowed_when_configured() {
        let policy = SourcePolicy {
            allow_private: true,
            ..SourcePolicy::default()
        };

        assert!(policy.check_url("http://127.0.0.1:8080/x.png").is_ok());
        assert!(policy.check_url("http://10.1.2.3/x.png").is_ok());
        assert!(policy.check_url("http://[::ffff:127.0.0.1]/x.png").is_ok());
        for still_rejected in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
        ] {
            assert!(
                matches!(
                    policy.check_url(still_rejected),
                    Err(SourceError::NonPublicAddress { .. })
                ),
                "{still_rejected}"
            );
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "2002:5db8:d822::",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
