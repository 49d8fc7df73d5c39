//! RADIUS protocol behaviour seen from a raw client: retransmits, malformed packets, and
//! the reply format.

use tollgate_engine::radius::{attr, Code};
use tollgate_tests::{hotp_code, login, metric, Node, RawClient, SECRET};

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

/// RFC 2865 allows at most one User-Name, User-Password, CHAP-Password and State; a request
/// with two (the first one valid) is dropped and counted, never answered. A request with
/// Proxy-State and no Message-Authenticator is dropped even from a client that does not
/// require Message-Authenticator, unless the client is configured to allow it.
#[test]
fn doubled_attributes_and_unsigned_proxy_state_are_dropped_and_counted() {
    let port = tollgate_tests::free_tcp_port();
    // `relaxed-proxy` (127.0.0.2) is a configuration-file client that may send Proxy-State
    // unsigned; `nas1` (127.0.0.1, from the store) requires no Message-Authenticator.
    let mut node = Node::new(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
         [[client]]\nname = \"relaxed-proxy\"\naddress = \"127.0.0.2\"\nsecret = \"{SECRET}\"\n\
         require_message_authenticator = false\nallow_unsigned_proxy_state = true\n"
    ));
    node.add_client("nas1", "append", false);
    node.add_hotp_user("alice", "Secret123");
    let server = node.start();
    let client = RawClient::new(server);
    let field = |counter| format!("Secret123{}", hotp_code(counter));
    let hidden_again = {
        // A second, well-formed hidden User-Password.
        let r = RawClient::access_request(1, [3u8; 16], SECRET, "alice", &field(0), &[], false);
        let p = tollgate_engine::radius::Packet::decode(&r).unwrap();
        p.attribute(attr::USER_PASSWORD).unwrap().to_vec()
    };
    let doubled: [(&str, u8, &[u8]); 4] = [
        ("User-Name", attr::USER_NAME, b"mallory"),
        ("User-Password", attr::USER_PASSWORD, &hidden_again),
        ("CHAP-Password", attr::CHAP_PASSWORD, &[0u8; 17]),
        ("State", attr::STATE, &[1u8; 16]),
    ];
    for (i, (name, typ, value)) in doubled.iter().enumerate() {
        let auth = [3u8 + i as u8; 16];
        let extra: Vec<(u8, &[u8])> = match *typ {
            // Two of one attribute: the one the request builder adds, and this.
            attr::USER_NAME | attr::USER_PASSWORD => vec![(*typ, *value)],
            _ => vec![(*typ, *value), (*typ, *value)],
        };
        client.send(&RawClient::access_request(
            10 + i as u8,
            auth,
            SECRET,
            "alice",
            &field(0),
            &extra,
            true,
        ));
        assert!(
            client.recv().is_none(),
            "a request with two {name} was answered"
        );
    }
    // Proxy-State without Message-Authenticator from nas1: dropped.
    let unsigned_proxy = |auth: [u8; 16], counter| {
        RawClient::access_request(
            20,
            auth,
            SECRET,
            "alice",
            &field(counter),
            &[(attr::PROXY_STATE, b"hop-1")],
            false,
        )
    };
    client.send(&unsigned_proxy([8u8; 16], 0));
    assert!(
        client.recv().is_none(),
        "Proxy-State without Message-Authenticator was answered"
    );
    // Without Proxy-State, or signed, nas1's requests are answered: nothing above used the
    // code, so it is still good.
    let auth = [9u8; 16];
    client.send(&RawClient::access_request(
        21,
        auth,
        SECRET,
        "alice",
        &field(0),
        &[(attr::PROXY_STATE, b"hop-1")],
        true,
    ));
    let reply = client
        .recv()
        .expect("a signed request with Proxy-State is answered");
    assert_eq!(
        RawClient::check_reply(&reply, &auth, SECRET),
        Code::AccessAccept
    );
    // The client configured for it may send Proxy-State unsigned.
    let proxy = RawClient::from_address(server, "127.0.0.2");
    proxy.send(&unsigned_proxy([10u8; 16], 1));
    let reply = proxy
        .recv()
        .expect("the client allowed to send unsigned Proxy-State is answered");
    let p = tollgate_engine::radius::Packet::decode(&reply).unwrap();
    assert_eq!(p.code(), Code::AccessAccept);

    let metrics_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let series = |reason: &str| {
        format!("tollgate_radius_dropped_total{{client=\"nas1\",reason=\"{reason}\"}}")
    };
    let mut text = String::new();
    let counted = Node::eventually(std::time::Duration::from_secs(5), || {
        text = tollgate_tests::http_get(metrics_addr, "/metrics").unwrap_or_default();
        metric(&text, &series("duplicate_attribute")) == Some(4.0)
            && metric(&text, &series("proxy_state_without_message_authenticator")) == Some(1.0)
    });
    assert!(counted, "drops not counted as expected:\n{text}");
}
