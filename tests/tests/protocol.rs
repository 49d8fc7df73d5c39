//! RADIUS protocol behaviour seen from a raw client: retransmits, malformed packets, and
//! the reply format.

use tollgate_engine::radius::{attr, Code};
use tollgate_tests::{hotp_code, login, Node, RawClient, SECRET};

fn running_node() -> Node {
    let mut node = Node::new("");
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    node
}

#[test]
fn a_retransmit_gets_the_same_reply_and_does_not_recheck_the_code() {
    let node = running_node();
    let client = RawClient::new(node.radius());
    let auth = [7u8; 16];
    let request = RawClient::access_request(
        42,
        auth,
        SECRET,
        "alice",
        &format!("Secret123{}", hotp_code(0)),
        &[
            (attr::PROXY_STATE, b"proxy-1"),
            (attr::PROXY_STATE, b"proxy-2"),
        ],
        true,
    );
    client.send(&request);
    let first = client.recv().expect("a reply");
    assert_eq!(
        RawClient::check_reply(&first, &auth, SECRET),
        Code::AccessAccept
    );
    // Proxy-State is copied into the reply, in order (RFC 2865 §5.33).
    let p = tollgate_engine::radius::Packet::decode(&first).unwrap();
    let proxy: Vec<&[u8]> = p.attributes_of(attr::PROXY_STATE).collect();
    assert_eq!(proxy, vec![b"proxy-1".as_slice(), b"proxy-2".as_slice()]);

    // The same datagram again: the cached reply, byte for byte. Had the code been checked
    // again, the replay rule would have answered Access-Reject.
    client.send(&request);
    let second = client.recv().expect("a reply to the retransmit");
    assert_eq!(first, second);
}

#[test]
fn malformed_packets_are_dropped_and_the_server_keeps_answering() {
    let node = running_node();
    let client = RawClient::new(node.radius());
    let auth = [9u8; 16];
    let good = RawClient::access_request(1, auth, SECRET, "alice", "Secret123000000", &[], true);
    let mut corpus: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        good[..19].to_vec(),
        good[..good.len() - 1].to_vec(),
        vec![0xff; 4096],
        vec![0u8; 20],
    ];
    // Length field larger than the datagram, and smaller than the header.
    let mut long = good.clone();
    long[2..4].copy_from_slice(&((good.len() + 10) as u16).to_be_bytes());
    corpus.push(long);
    let mut short = good.clone();
    short[2..4].copy_from_slice(&19u16.to_be_bytes());
    corpus.push(short);
    // Length over 4096.
    let mut huge = good.clone();
    huge[2..4].copy_from_slice(&5000u16.to_be_bytes());
    huge.resize(5000, 0);
    corpus.push(huge);
    // Attribute lengths 0 and 1.
    for bad_len in [0u8, 1] {
        let mut p = good.clone();
        p[21] = bad_len;
        corpus.push(p);
    }
    // An attribute running past the end.
    let mut overrun = good.clone();
    overrun[21] = 250;
    corpus.push(overrun);
    // A forged Message-Authenticator and a forged secret.
    let mut forged = good.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x55;
    corpus.push(forged);
    corpus.push(RawClient::access_request(
        2,
        auth,
        "wrong-secret",
        "alice",
        "x",
        &[],
        true,
    ));
    // Garbage of every small length.
    for n in 0..64u8 {
        corpus.push((0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect());
    }
    for datagram in &corpus {
        client.send(datagram);
    }
    // None of them got a reply.
    assert!(client.recv().is_none(), "a malformed packet was answered");

    // A valid request is still answered.
    let r = login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(0)),
    );
    assert!(r.is("Access-Accept"), "{}\n{}", r.output, node.log());
}

#[test]
fn every_reply_puts_message_authenticator_first() {
    let node = running_node();
    let client = RawClient::new(node.radius());
    for (i, password) in ["Secret123000000", "Secret123"].iter().enumerate() {
        let auth = [i as u8 + 1; 16];
        client.send(&RawClient::access_request(
            i as u8,
            auth,
            SECRET,
            "alice",
            password,
            &[],
            true,
        ));
        let reply = client.recv().expect("reply");
        // check_reply asserts the attribute order and verifies both authenticators.
        assert_eq!(
            RawClient::check_reply(&reply, &auth, SECRET),
            Code::AccessReject
        );
    }
}
