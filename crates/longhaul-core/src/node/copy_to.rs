//! Where a node may send for a third-party copy: the `HOST:PORT` targets its operator listed
//! (`--copy-to`). Without a list the node copies nowhere, so a token holder cannot make it open
//! a connection to an address of their choosing (a port scan or a request from inside the
//! node's network).
//!
//! A requested target is allowed when, port equal:
//! - its host is the same as a listed one (names compared without regard to case, IP
//!   addresses as addresses: `[::1]` and `[0::1]` are one), or
//! - its host is an IP address that a listed host name resolves to now (`localhost:7000`
//!   listed allows `127.0.0.1:7000`).
//!
//! A host name that is not listed is refused without being resolved: the node resolves the
//! target again when it connects, and a name the client chooses could answer differently the
//! second time (DNS rebinding). List the names clients will use.

use std::net::{IpAddr, ToSocketAddrs};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct CopyTargets {
    entries: Vec<Target>,
}

#[derive(Clone, Debug, PartialEq)]
struct Target {
    /// Lower case, without the brackets of an IPv6 address.
    host: String,
    port: u16,
}

impl Target {
    fn parse(s: &str) -> Option<Target> {
        let (host, port) = s.trim().rsplit_once(':')?;
        let host = match host.strip_prefix('[') {
            Some(h) => h.strip_suffix(']')?,
            None if host.contains(':') => return None,
            None => host,
        };
        let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
        if host.is_empty() {
            return None;
        }
        Some(Target { host: host.to_ascii_lowercase(), port })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The same host written either way (a name, or an address in any of its spellings).
    fn same_host(&self, other: &Target) -> bool {
        self.host == other.host || matches!((self.ip(), other.ip()), (Some(a), Some(b)) if a == b)
    }
}

impl CopyTargets {
    /// Parses the operator's list; an entry that is not `HOST:PORT` is a usage error at start.
    pub fn parse(list: &[String]) -> Result<CopyTargets> {
        let entries = list
            .iter()
            .map(|s| Target::parse(s).ok_or_else(|| Error::Usage(format!("copy target {s:?} is not HOST:PORT ([V6]:PORT for IPv6)"))))
            .collect::<Result<_>>()?;
        Ok(CopyTargets { entries })
    }

    /// Ok when the node may connect to `to` for a copy, E_DENIED otherwise.
    pub fn check(&self, to: &str) -> Result<()> {
        if self.entries.is_empty() {
            return Err(Error::Denied(format!(
                "copy to {to}: this node copies to no other node (its operator lists targets with --copy-to)"
            )));
        }
        let Some(want) = Target::parse(to) else {
            return Err(Error::Denied(format!("copy to {to:?}: not HOST:PORT, and only the targets in the node's --copy-to are allowed")));
        };
        let same_port = || self.entries.iter().filter(|e| e.port == want.port);
        if same_port().any(|e| e.same_host(&want)) {
            return Ok(());
        }
        if let Some(ip) = want.ip() {
            // Only the operator's names are resolved, never the client's.
            for e in same_port().filter(|e| e.ip().is_none()) {
                if let Ok(addrs) = (e.host.as_str(), e.port).to_socket_addrs() {
                    if addrs.into_iter().any(|a| a.ip() == ip) {
                        return Ok(());
                    }
                }
            }
        }
        Err(Error::Denied(format!("copy to {to}: not one of the targets this node's operator allows (--copy-to)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(list: &[&str]) -> CopyTargets {
        CopyTargets::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// issue 29: no list, no copy.
    #[test]
    fn an_empty_list_denies_everything() {
        assert_eq!(targets(&[]).check("127.0.0.1:7000").unwrap_err().code(), "E_DENIED");
    }

    /// issue 29: the literal entry, case and IPv6 spellings, and an address a listed name
    /// resolves to are allowed; another port, another host, or an unlisted name are not.
    #[test]
    fn listed_targets_match_by_name_address_or_resolved_name() {
        let t = targets(&["localhost:7000", "Node-B.example:7001", "[::1]:7002", "10.0.0.5:7003"]);
        for ok in ["localhost:7000", "LOCALHOST:7000", "127.0.0.1:7000", "node-b.example:7001", "[0::1]:7002", "10.0.0.5:7003"] {
            assert!(t.check(ok).is_ok(), "{ok}");
        }
        for denied in ["localhost:7001", "127.0.0.2:7000", "10.0.0.6:7003", "evil.example:7003", "127.0.0.1", "x:0"] {
            assert_eq!(t.check(denied).unwrap_err().code(), "E_DENIED", "{denied}");
        }
    }

    /// A name the client chooses is not resolved: listing the address does not allow a name.
    #[test]
    fn an_unlisted_name_is_denied_even_if_it_would_resolve_to_a_listed_address() {
        assert_eq!(targets(&["127.0.0.1:7000"]).check("localhost:7000").unwrap_err().code(), "E_DENIED");
    }

    #[test]
    fn a_malformed_entry_is_a_usage_error() {
        for bad in ["host", "host:", ":7000", "::1:7000", "host:70000", "host:0"] {
            assert_eq!(CopyTargets::parse(&[bad.to_string()]).unwrap_err().code(), "E_USAGE", "{bad}");
        }
    }
}
