//! Building the datagrams a simulated NAS sends.
//!
//! Requests are Access-Requests as a VPN concentrator would send them: User-Name, the
//! hidden User-Password, NAS-IP-Address (or NAS-IPv6-Address) of the source, the State of a
//! challenge when answering one, and a Message-Authenticator, which the engine's encoder
//! places first and computes. Everything is written into buffers the caller reuses, so the
//! harness allocates nothing per request.

use std::fmt;
use std::net::IpAddr;

use tollgate_engine::radius::{
    attr, encode_request, hide_password, Code, EncodeError, PasswordError, MAX_PASSWORD_LEN,
};

/// Why a request could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// The User-Password could not be hidden (empty secret or a field over 128 octets).
    Password(PasswordError),
    /// The packet could not be encoded (empty secret or attributes too long).
    Encode(EncodeError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Password(e) => write!(f, "User-Password: {e}"),
            BuildError::Encode(e) => write!(f, "encoding: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// The variable parts of one Access-Request.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The Identifier.
    pub identifier: u8,
    /// The random Request Authenticator, also the key of the password hiding.
    pub authenticator: [u8; 16],
    /// The User-Name.
    pub user_name: &'a [u8],
    /// The clear User-Password field (password, code, or both).
    pub password_field: &'a [u8],
    /// The State of the challenge being answered, if any.
    pub state: Option<&'a [u8]>,
    /// The NAS's own address, sent as NAS-IP-Address or NAS-IPv6-Address.
    pub nas: IpAddr,
}

/// Encodes `req` into `out` (cleared first), signed with `secret`.
pub fn encode_access_request(
    out: &mut Vec<u8>,
    req: &AccessRequest<'_>,
    secret: &[u8],
) -> Result<(), BuildError> {
    let mut hidden = [0u8; MAX_PASSWORD_LEN];
    let n = hide_password(req.password_field, secret, &req.authenticator, &mut hidden)
        .map_err(BuildError::Password)?;
    let (nas_type, v4, v6);
    let nas: &[u8] = match req.nas {
        IpAddr::V4(ip) => {
            nas_type = attr::NAS_IP_ADDRESS;
            v4 = ip.octets();
            &v4
        }
        IpAddr::V6(ip) => {
            nas_type = attr::NAS_IPV6_ADDRESS;
            v6 = ip.octets();
            &v6
        }
    };
    let hidden = hidden.get(..n).unwrap_or_default();
    let mut attributes: [(u8, &[u8]); 4] = [
        (attr::USER_NAME, req.user_name),
        (attr::USER_PASSWORD, hidden),
        (nas_type, nas),
        (attr::STATE, &[]),
    ];
    let count = match req.state {
        Some(state) => {
            attributes[3].1 = state;
            4
        }
        None => 3,
    };
    encode_request(
        out,
        Code::AccessRequest,
        req.identifier,
        &req.authenticator,
        secret,
        &attributes[..count],
        true,
    )
    .map_err(BuildError::Encode)
}

/// Writes into `out` a datagram with a valid header but a broken attribute (a length octet
/// of 1, below the minimum of 2), which every RADIUS server must discard unanswered.
pub fn encode_malformed(out: &mut Vec<u8>, identifier: u8, authenticator: &[u8; 16]) {
    out.clear();
    let body: [u8; 8] = [attr::USER_NAME, 1, b'x', b'x', b'x', b'x', b'x', b'x'];
    let len = (20 + body.len()) as u16;
    out.extend_from_slice(&[Code::AccessRequest.as_u8(), identifier]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(authenticator);
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_engine::radius::{unhide_password, verify_request, Packet};

    #[test]
    fn requests_verify_on_the_server_side_and_carry_every_attribute() {
        let mut out = Vec::new();
        let req = AccessRequest {
            identifier: 42,
            authenticator: [7; 16],
            user_name: b"lt000001",
            password_field: b"secret123456",
            state: Some(b"0123456789abcdef"),
            nas: "127.0.0.3".parse().unwrap(),
        };
        encode_access_request(&mut out, &req, b"s3cret").unwrap();
        let p = Packet::decode(&out).unwrap();
        let v = verify_request(p, b"s3cret", true).unwrap();
        assert_eq!(v.identifier(), 42);
        assert_eq!(v.attribute(attr::USER_NAME), Some(&b"lt000001"[..]));
        assert_eq!(v.attribute(attr::STATE), Some(&b"0123456789abcdef"[..]));
        assert_eq!(v.attribute(attr::NAS_IP_ADDRESS), Some(&[127, 0, 0, 3][..]));
        let mut clear = [0u8; MAX_PASSWORD_LEN];
        let hidden = v.attribute(attr::USER_PASSWORD).unwrap();
        let pw = unhide_password(hidden, b"s3cret", v.authenticator(), &mut clear).unwrap();
        assert_eq!(pw, b"secret123456");
        // Signed with another secret, the request fails the server's check.
        encode_access_request(&mut out, &req, b"other").unwrap();
        assert!(verify_request(Packet::decode(&out).unwrap(), b"s3cret", true).is_err());
    }

    #[test]
    fn the_malformed_datagram_does_not_decode() {
        let mut out = Vec::new();
        encode_malformed(&mut out, 1, &[0; 16]);
        assert_eq!(out.len(), 28);
        assert!(Packet::decode(&out).is_err());
    }
}
