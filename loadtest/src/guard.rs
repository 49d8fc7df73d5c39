//! The loopback-only guard.
//!
//! The harness can send tens of thousands of datagrams a second, so it must never be
//! pointed at a machine other than this one. Every target goes through [`parse_target`] or
//! [`check_target`], which accept only 127.0.0.0/8 and `::1`, and the simulated NAS
//! addresses come from [`source_addresses`], which stays inside the same ranges.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a target or a source address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// The address is not a loopback address.
    NotLoopback(IpAddr),
    /// The text is neither `IP:PORT` nor `localhost:PORT`.
    Unparsable(String),
    /// The requested source addresses would leave the loopback range.
    SourcesOutOfRange {
        /// The first source address.
        base: IpAddr,
        /// How many were asked for.
        count: usize,
    },
    /// The server and the sources are of different address families.
    FamilyMismatch,
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::NotLoopback(ip) => write!(
                f,
                "refusing to send to {ip}: the load harness only targets loopback addresses \
                 (127.0.0.0/8 or ::1)"
            ),
            GuardError::Unparsable(text) => write!(
                f,
                "`{text}` is not a loopback address with a port (e.g. 127.0.0.1:1812, \
                 [::1]:1812 or localhost:1812)"
            ),
            GuardError::SourcesOutOfRange { base, count } => write!(
                f,
                "{count} source addresses starting at {base} would leave 127.0.0.0/8 \
                 (IPv6 has a single loopback address, so use --sources 1 with ::1)"
            ),
            GuardError::FamilyMismatch => {
                f.write_str("the source addresses and the server must both be IPv4 or both IPv6")
            }
        }
    }
}

impl std::error::Error for GuardError {}

/// Whether `ip` is a loopback address: anything in 127.0.0.0/8, or `::1`.
///
/// IPv4-mapped forms such as `::ffff:127.0.0.1` are refused too, because the sockets the
/// harness binds would then be of the wrong family; the plain form works instead.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    }
}

/// Accepts `addr` only if it is a loopback address.
pub fn check_target(addr: SocketAddr) -> Result<SocketAddr, GuardError> {
    if is_loopback(addr.ip()) {
        Ok(addr)
    } else {
        Err(GuardError::NotLoopback(addr.ip()))
    }
}

/// Parses a `--server` value: a literal `IP:PORT` or `localhost:PORT`, then checks it.
///
/// Names other than `localhost` are not resolved, so that no resolver configuration can
/// turn a harmless-looking name into a remote target.
pub fn parse_target(text: &str) -> Result<SocketAddr, GuardError> {
    let addr = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let port = text
                .strip_prefix("localhost:")
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| GuardError::Unparsable(text.to_owned()))?;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        }
    };
    check_target(addr)
}

/// The `count` addresses the simulated NAS send from, starting at `base` and counting up.
///
/// For IPv4 they must all lie in 127.0.0.0/8, which Linux routes to the loopback interface
/// without any set-up. For IPv6 only `::1` exists, so `count` must be 1.
pub fn source_addresses(
    server: SocketAddr,
    base: IpAddr,
    count: usize,
) -> Result<Vec<IpAddr>, GuardError> {
    check_target(server)?;
    if !is_loopback(base) {
        return Err(GuardError::NotLoopback(base));
    }
    match (server.ip(), base) {
        (IpAddr::V4(_), IpAddr::V4(b)) => {
            let first = u32::from(b);
            let out_of_range = || GuardError::SourcesOutOfRange { base, count };
            let last = u32::try_from(count)
                .ok()
                .and_then(|c| c.checked_sub(1))
                .and_then(|c| first.checked_add(c))
                .ok_or_else(out_of_range)?;
            if !is_loopback(IpAddr::V4(Ipv4Addr::from(last))) {
                return Err(out_of_range());
            }
            Ok((first..=last)
                .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .collect())
        }
        (IpAddr::V6(_), IpAddr::V6(_)) if count == 1 => Ok(vec![base]),
        (IpAddr::V6(_), IpAddr::V6(_)) => Err(GuardError::SourcesOutOfRange { base, count }),
        _ => Err(GuardError::FamilyMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        for ok in [
            "127.0.0.1:1812",
            "127.9.8.7:1",
            "[::1]:1812",
            "localhost:1812",
        ] {
            assert!(parse_target(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn every_other_target_is_refused_with_a_clear_error() {
        for bad in [
            "10.0.0.1:1812",
            "192.168.1.1:1812",
            "8.8.8.8:53",
            "0.0.0.0:1812",
            "[::ffff:127.0.0.1]:1812",
            "[2001:db8::1]:1812",
            "[::]:1812",
        ] {
            let err = parse_target(bad).unwrap_err();
            assert!(
                err.to_string().contains("only targets loopback"),
                "{bad}: {err}"
            );
        }
        for junk in ["example.com:1812", "localhost", "127.0.0.1", "localhost:x"] {
            assert!(matches!(parse_target(junk), Err(GuardError::Unparsable(_))));
        }
    }

    #[test]
    fn sources_stay_inside_the_loopback_range() {
        let server: SocketAddr = "127.0.0.1:1812".parse().unwrap();
        let base: IpAddr = "127.0.0.2".parse().unwrap();
        let s = source_addresses(server, base, 3).unwrap();
        assert_eq!(
            s,
            ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        let near_end: IpAddr = "127.255.255.254".parse().unwrap();
        assert!(source_addresses(server, near_end, 2).is_ok());
        assert!(source_addresses(server, near_end, 3).is_err());
        assert!(source_addresses(server, "10.0.0.2".parse().unwrap(), 1).is_err());
        assert!(source_addresses(server, base, 0).is_err());
        let v6: SocketAddr = "[::1]:1812".parse().unwrap();
        assert!(source_addresses(v6, "::1".parse().unwrap(), 1).is_ok());
        assert!(source_addresses(v6, "::1".parse().unwrap(), 2).is_err());
        assert_eq!(
            source_addresses(v6, base, 1),
            Err(GuardError::FamilyMismatch)
        );
    }
}
