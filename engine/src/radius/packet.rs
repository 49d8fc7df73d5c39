//! Zero-copy decoding of RADIUS datagrams.
//!
//! This module owns [`Packet`], a view over a received datagram that has passed every
//! structural check of RFC 2865 §3 and §5, RFC 2869 §5.14 and RFC 3579 §3.2: header and Length
//! bounds, an attribute walk that ends exactly at Length, a cap on the number of attributes and
//! the shape of the Message-Authenticator. Decoding checks structure only; whether the packet
//! comes from someone who knows the shared secret is decided in the `auth` module.

use super::attr::{self, Attribute, Attributes};
use super::code::Code;
use super::error::DecodeError;

/// The smallest legal packet: the header alone (RFC 2865 §3).
pub const MIN_PACKET_LEN: usize = 20;
/// The largest legal packet (RFC 2865 §3).
pub const MAX_PACKET_LEN: usize = 4096;
/// The most attributes a packet may carry before it is rejected as a [`DecodeError`].
///
/// RFC 2865 sets no such limit; a bound keeps the work spent on one datagram small and
/// predictable, and 128 is far above what any NAS sends in an Access-Request.
pub const MAX_ATTRIBUTES: usize = 128;

/// Octets of the Code, Identifier and Length fields that open the header.
pub(crate) const HEADER_PREFIX_LEN: usize = 4;

/// A structurally valid RADIUS packet, borrowed from the datagram it was decoded from.
///
/// Obtaining one proves nothing about who sent it; pass it to
/// [`verify_request`](super::verify_request) or [`verify_response`](super::verify_response)
/// to get a [`Verified`](super::Verified) packet.
#[derive(Copy, Clone, Debug)]
pub struct Packet<'a> {
    /// Exactly the octets covered by the Length field; any padding after it is dropped.
    bytes: &'a [u8],
    code: Code,
    identifier: u8,
    authenticator: &'a [u8; 16],
    /// Where the Message-Authenticator value starts in `bytes`, with the value itself, found
    /// during the decode walk so that verification never walks the attributes again.
    message_authenticator: Option<(usize, &'a [u8; 16])>,
}

impl<'a> Packet<'a> {
    /// Checks the structure of a datagram and returns a view over it.
    ///
    /// Octets beyond the Length field are padding and ignored (RFC 2865 §3). The walk over the
    /// attributes must end exactly at Length, every attribute must be at least 2 octets, at most
    /// [`MAX_ATTRIBUTES`] may be present, and a Message-Authenticator must be 18 octets long and
    /// appear at most once. Nothing is allocated and no input can make this panic.
    pub fn decode(buf: &'a [u8]) -> Result<Packet<'a>, DecodeError> {
        let Some((prefix, after_prefix)) = buf.split_first_chunk::<HEADER_PREFIX_LEN>() else {
            return Err(DecodeError::TooShort);
        };
        let Some(authenticator) = after_prefix.first_chunk::<16>() else {
            return Err(DecodeError::TooShort);
        };
        let [code, identifier, len_hi, len_lo] = *prefix;
        let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if length < MIN_PACKET_LEN {
            return Err(DecodeError::LengthTooSmall);
        }
        if length > MAX_PACKET_LEN {
            return Err(DecodeError::TooLong);
        }
        let bytes = buf.get(..length).ok_or(DecodeError::Truncated)?;
        let message_authenticator = walk_attributes(bytes)?;
        Ok(Packet {
            bytes,
            code: Code::from_u8(code),
            identifier,
            authenticator,
            message_authenticator,
        })
    }

    /// The packet's Code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The packet's Identifier, which pairs a reply with its request.
    pub fn identifier(&self) -> u8 {
        self.identifier
    }

    /// The 16-octet Authenticator field of the header.
    pub fn authenticator(&self) -> &'a [u8; 16] {
        self.authenticator
    }

    /// Exactly the octets covered by the Length field, without any trailing padding.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The attributes in wire order.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.bytes.get(MIN_PACKET_LEN..).unwrap_or_default())
    }

    /// The value of the first attribute of type `typ`, if any.
    pub fn attribute(&self, typ: u8) -> Option<&'a [u8]> {
        self.attributes().find(|a| a.typ == typ).map(|a| a.value)
    }

    /// The values of every attribute of type `typ`, in wire order.
    pub fn attributes_of(&self, typ: u8) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.attributes()
            .filter(move |a| a.typ == typ)
            .map(|a: Attribute<'a>| a.value)
    }

    /// The value of the Message-Authenticator attribute, if the packet carries one.
    pub fn message_authenticator(&self) -> Option<&'a [u8; 16]> {
        self.message_authenticator.map(|(_, value)| value)
    }

    /// Where the Message-Authenticator value starts within [`Packet::bytes`], if present.
    pub(crate) fn message_authenticator_offset(&self) -> Option<usize> {
        self.message_authenticator.map(|(offset, _)| offset)
    }
}

/// The bit of an attribute that may appear at most once, or `None`.
fn single_bit(typ: u8) -> Option<u32> {
    match typ {
        attr::USER_NAME => Some(1),
        attr::USER_PASSWORD => Some(2),
        attr::CHAP_PASSWORD => Some(4),
        attr::STATE => Some(8),
        _ => None,
    }
}

/// Walks the attribute area of `bytes` (which is exactly Length octets long) and returns the
/// position and value of the Message-Authenticator, if there is one.
fn walk_attributes(bytes: &[u8]) -> Result<Option<(usize, &[u8; 16])>, DecodeError> {
    let mut offset = MIN_PACKET_LEN;
    let mut count = 0usize;
    let mut message_authenticator = None;
    // Attributes of which RFC 2865 §5.44 allows at most one, as bits by type.
    let mut singles_seen = 0u32;
    while offset < bytes.len() {
        // A lone Type octet with no room for its Length octet runs past the end too.
        let Some(&[typ, len]) = bytes.get(offset..offset + 2) else {
            return Err(DecodeError::AttributeOverrun);
        };
        let len = usize::from(len);
        if len < 2 {
            return Err(DecodeError::AttributeTooShort);
        }
        let end = offset + len;
        let Some(value) = bytes.get(offset + 2..end) else {
            return Err(DecodeError::AttributeOverrun);
        };
        count += 1;
        if count > MAX_ATTRIBUTES {
            return Err(DecodeError::TooManyAttributes);
        }
        if let Some(bit) = single_bit(typ) {
            if singles_seen & bit != 0 {
                return Err(DecodeError::DuplicateAttribute);
            }
            singles_seen |= bit;
        }
        if typ == attr::MESSAGE_AUTHENTICATOR {
            if message_authenticator.is_some() {
                return Err(DecodeError::DuplicateMessageAuthenticator);
            }
            let value = <&[u8; 16]>::try_from(value)
                .map_err(|_| DecodeError::BadMessageAuthenticatorLength)?;
            message_authenticator = Some((offset + 2, value));
        }
        offset = end;
    }
    Ok(message_authenticator)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a datagram whose Length field covers the header plus `attrs`.
    fn packet(code: u8, attrs: &[u8]) -> Vec<u8> {
        let len = u16::try_from(MIN_PACKET_LEN + attrs.len()).unwrap();
        let mut b = vec![code, 7];
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&[0xAB; 16]);
        b.extend_from_slice(attrs);
        b
    }

    #[test]
    fn header_only_packet_decodes() {
        let b = packet(1, &[]);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.code(), Code::AccessRequest);
        assert_eq!(p.identifier(), 7);
        assert_eq!(p.authenticator(), &[0xAB; 16]);
        assert_eq!(p.bytes(), &b[..]);
        assert_eq!(p.attributes().count(), 0);
        assert_eq!(p.message_authenticator(), None);
    }

    #[test]
    fn datagram_shorter_than_header_is_too_short() {
        let b = packet(1, &[]);
        for n in 0..MIN_PACKET_LEN {
            assert_eq!(Packet::decode(&b[..n]).unwrap_err(), DecodeError::TooShort);
        }
    }

    #[test]
    fn length_field_bounds() {
        let mut b = packet(1, &[]);
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::decode(&b).unwrap_err(), DecodeError::LengthTooSmall);
        b[2..4].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(Packet::decode(&b).unwrap_err(), DecodeError::LengthTooSmall);
        b.resize(5000, 0);
        b[2..4].copy_from_slice(&4097u16.to_be_bytes());
        assert_eq!(Packet::decode(&b).unwrap_err(), DecodeError::TooLong);
        b[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(Packet::decode(&b).unwrap_err(), DecodeError::TooLong);
    }

    #[test]
    fn largest_packet_decodes() {
        // Fifteen 253-octet values plus a 251-octet filler reach exactly 4096 octets.
        let mut attrs = Vec::new();
        for _ in 0..15 {
            attrs.extend_from_slice(&[18, 255]);
            attrs.extend_from_slice(&[b'x'; 253]);
        }
        let filler = MAX_PACKET_LEN - MIN_PACKET_LEN - attrs.len();
        attrs.extend_from_slice(&[25, u8::try_from(filler).unwrap()]);
        attrs.resize(MAX_PACKET_LEN - MIN_PACKET_LEN, 0);
        let b = packet(2, &attrs);
        assert_eq!(b.len(), MAX_PACKET_LEN);
        assert_eq!(Packet::decode(&b).unwrap().attributes().count(), 16);
    }

    #[test]
    fn length_beyond_datagram_is_truncated() {
        let b = packet(1, &[1, 6, b'n', b'e', b'm', b'o']);
        for n in MIN_PACKET_LEN..b.len() {
            assert_eq!(Packet::decode(&b[..n]).unwrap_err(), DecodeError::Truncated);
        }
    }

    #[test]
    fn octets_after_length_are_padding() {
        let mut b = packet(1, &[1, 3, b'x']);
        b.extend_from_slice(&[0xFF, 0x00, 0x01]);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.bytes().len(), 23);
        assert_eq!(p.attribute(attr::USER_NAME), Some(&b"x"[..]));
        assert_eq!(p.attributes().count(), 1);
    }

    #[test]
    fn padding_may_exceed_the_maximum_packet_length() {
        let mut b = packet(1, &[]);
        b.resize(MAX_PACKET_LEN * 2, 0);
        assert!(Packet::decode(&b).is_ok());
    }

    #[test]
    fn attribute_length_zero_and_one_are_too_short() {
        for len in [0u8, 1] {
            let b = packet(1, &[1, len, 0, 0]);
            assert_eq!(
                Packet::decode(&b).unwrap_err(),
                DecodeError::AttributeTooShort
            );
        }
    }

    #[test]
    fn attribute_of_length_two_has_empty_value() {
        let b = packet(1, &[24, 2]);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.attribute(attr::STATE), Some(&[][..]));
    }

    #[test]
    fn attribute_running_past_length_is_an_overrun() {
        let b = packet(1, &[1, 5, b'a', b'b']);
        assert_eq!(
            Packet::decode(&b).unwrap_err(),
            DecodeError::AttributeOverrun
        );
        // The overrun is judged against Length, not against the datagram.
        let mut b = packet(1, &[1, 5, b'a', b'b']);
        b.push(b'c');
        assert_eq!(
            Packet::decode(&b).unwrap_err(),
            DecodeError::AttributeOverrun
        );
        // A single dangling Type octet cannot hold its Length octet.
        let b = packet(1, &[1, 3, b'a', 2]);
        assert_eq!(
            Packet::decode(&b).unwrap_err(),
            DecodeError::AttributeOverrun
        );
    }

    #[test]
    fn attribute_count_is_capped() {
        let at_limit: Vec<u8> = [33u8, 2].repeat(MAX_ATTRIBUTES);
        assert_eq!(
            Packet::decode(&packet(1, &at_limit))
                .unwrap()
                .attributes()
                .count(),
            MAX_ATTRIBUTES
        );
        let over: Vec<u8> = [33u8, 2].repeat(MAX_ATTRIBUTES + 1);
        assert_eq!(
            Packet::decode(&packet(1, &over)).unwrap_err(),
            DecodeError::TooManyAttributes
        );
    }

    #[test]
    fn message_authenticator_is_found_with_its_offset() {
        let mut attrs = vec![1, 3, b'u', 80, 18];
        attrs.extend_from_slice(&[0x5A; 16]);
        let b = packet(1, &attrs);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.message_authenticator(), Some(&[0x5A; 16]));
        assert_eq!(p.message_authenticator_offset(), Some(25));
    }

    #[test]
    fn duplicate_message_authenticator_is_rejected() {
        let mut attrs = Vec::new();
        for _ in 0..2 {
            attrs.extend_from_slice(&[80, 18]);
            attrs.extend_from_slice(&[0; 16]);
        }
        assert_eq!(
            Packet::decode(&packet(1, &attrs)).unwrap_err(),
            DecodeError::DuplicateMessageAuthenticator
        );
    }

    #[test]
    fn message_authenticator_of_wrong_length_is_rejected() {
        for len in [2usize, 17, 19, 34] {
            let mut attrs = vec![80, u8::try_from(len).unwrap()];
            attrs.resize(len, 0);
            assert_eq!(
                Packet::decode(&packet(1, &attrs)).unwrap_err(),
                DecodeError::BadMessageAuthenticatorLength,
                "length {len}"
            );
        }
    }

    #[test]
    fn attribute_lookup_returns_first_and_all_in_order() {
        let b = packet(1, &[33, 3, 1, 1, 3, b'u', 33, 4, 2, 2]);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.attribute(attr::PROXY_STATE), Some(&[1][..]));
        let all: Vec<&[u8]> = p.attributes_of(attr::PROXY_STATE).collect();
        assert_eq!(all, [&[1][..], &[2, 2][..]]);
        assert_eq!(p.attribute(attr::STATE), None);
    }

    #[test]
    fn unknown_codes_decode_as_other() {
        let b = packet(40, &[]);
        assert_eq!(Packet::decode(&b).unwrap().code(), Code::Other(40));
    }
}
