//! RADIUS attribute type numbers and the zero-copy attribute iterator.
//!
//! This module owns the type numbers of the attributes Tollgate reads or writes (RFC 2865 §5,
//! RFC 2869, RFC 3162, RFC 3579) and the [`Attributes`] iterator that walks the attribute area
//! of a decoded packet without copying it. Values are handed out as raw octets: interpreting
//! them (text, integer, address) is left to the caller, who knows which ones it needs.

/// User-Name (1), RFC 2865 §5.1.
pub const USER_NAME: u8 = 1;
/// User-Password (2), hidden as described in RFC 2865 §5.2.
pub const USER_PASSWORD: u8 = 2;
/// CHAP-Password (3), RFC 2865 §5.3.
pub const CHAP_PASSWORD: u8 = 3;
/// NAS-IP-Address (4), RFC 2865 §5.4.
pub const NAS_IP_ADDRESS: u8 = 4;
/// NAS-Port (5), RFC 2865 §5.5.
pub const NAS_PORT: u8 = 5;
/// Service-Type (6), RFC 2865 §5.6.
pub const SERVICE_TYPE: u8 = 6;
/// Filter-Id (11), RFC 2865 §5.11.
pub const FILTER_ID: u8 = 11;
/// Reply-Message (18), RFC 2865 §5.18.
pub const REPLY_MESSAGE: u8 = 18;
/// State (24), RFC 2865 §5.24.
pub const STATE: u8 = 24;
/// Class (25), RFC 2865 §5.25.
pub const CLASS: u8 = 25;
/// Vendor-Specific (26), RFC 2865 §5.26.
pub const VENDOR_SPECIFIC: u8 = 26;
/// Session-Timeout (27), RFC 2865 §5.27.
pub const SESSION_TIMEOUT: u8 = 27;
/// Called-Station-Id (30), RFC 2865 §5.30.
pub const CALLED_STATION_ID: u8 = 30;
/// Calling-Station-Id (31), RFC 2865 §5.31.
pub const CALLING_STATION_ID: u8 = 31;
/// NAS-Identifier (32), RFC 2865 §5.32.
pub const NAS_IDENTIFIER: u8 = 32;
/// Proxy-State (33), RFC 2865 §5.33; copied unmodified and in order into every reply.
pub const PROXY_STATE: u8 = 33;
/// NAS-Port-Type (61), RFC 2865 §5.41.
pub const NAS_PORT_TYPE: u8 = 61;
/// EAP-Message (79), RFC 3579 §3.1.
pub const EAP_MESSAGE: u8 = 79;
/// Message-Authenticator (80), RFC 3579 §3.2 (originally RFC 2869 §5.14).
pub const MESSAGE_AUTHENTICATOR: u8 = 80;
/// NAS-IPv6-Address (95), RFC 3162 §2.1.
pub const NAS_IPV6_ADDRESS: u8 = 95;

/// The largest value one attribute can carry: its Length octet counts two header octets.
pub const MAX_VALUE_LEN: usize = 253;

/// One attribute of a packet, borrowing its value from the datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribute<'a> {
    /// The attribute's Type octet.
    pub typ: u8,
    /// The attribute's Value octets (possibly empty), without the Type and Length octets.
    pub value: &'a [u8],
}

/// Iterator over the attributes of a decoded packet, in wire order.
///
/// It is only handed out by [`Packet::attributes`](super::Packet::attributes), whose decoder
/// has already checked that every attribute is well formed; the iterator still stops quietly on
/// anything malformed so that it can never panic.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Attributes<'a> {
    /// Starts a walk over an attribute area already validated by the decoder.
    pub(crate) fn new(area: &'a [u8]) -> Self {
        Attributes { rest: area }
    }
}

impl<'a> Iterator for Attributes<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Attribute<'a>> {
        let item = match self.rest {
            [typ, len, tail @ ..] => {
                let value_len = usize::from(*len).checked_sub(2);
                value_len
                    .and_then(|n| tail.split_at_checked(n))
                    .map(|(value, rest)| (Attribute { typ: *typ, value }, rest))
            }
            _ => None,
        };
        match item {
            Some((attribute, rest)) => {
                self.rest = rest;
                Some(attribute)
            }
            None => {
                // Ending the walk for good keeps the iterator fused even on a malformed area.
                self.rest = &[];
                None
            }
        }
    }
}

impl core::iter::FusedIterator for Attributes<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_in_order_including_empty_values() {
        let area = [1, 3, b'a', 33, 2, 5, 4, 1, 2];
        let got: Vec<_> = Attributes::new(&area).collect();
        assert_eq!(
            got,
            [
                Attribute {
                    typ: 1,
                    value: b"a"
                },
                Attribute {
                    typ: 33,
                    value: b""
                },
                Attribute {
                    typ: 5,
                    value: &[1, 2]
                },
            ]
        );
    }

    #[test]
    fn stops_without_panicking_on_malformed_areas() {
        for area in [&[1u8][..], &[1, 0], &[1, 1], &[1, 5, 0], &[1, 3, 0, 9]] {
            let mut it = Attributes::new(area);
            while it.next().is_some() {}
            assert_eq!(it.next(), None);
        }
    }
}
