//! Logins against a real OpenLDAP `slapd` (started on loopback by the harness), with the
//! real `tollgate` binary and `radclient`: passwords checked by binding, group rules, the
//! Active Directory profile, TLS, failover to a second server, token records kept in the
//! directory and shared between two Tollgate processes, and `tollgate directory test`.

use std::time::{Duration, Instant};

use tollgate_engine::radius::Code;
use tollgate_tests::slapd::{self, Slapd};
use tollgate_tests::{hotp_code, login, radclient, Node, RawClient, SECRET, SEED_B32};

/// An `[[ldap]]` section for the OpenLDAP tree over LDAPS, with group rules.
fn openldap_section(servers: &[&str], ca_file: &str, extra: &str) -> String {
    let servers = servers
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[audit]
file = "{{dir}}/audit.jsonl"

[[ldap]]
domain = "example.com"
aliases = ["EXAMPLE"]
default = true
servers = [{servers}]
ca_file = {ca_file:?}
bind_dn = "{service}"
bind_password = "{password}"
base_dn = "{base}"
connect_timeout_ms = 1000
operation_timeout_ms = 2000
retry_secs = 1
{extra}
[[ldap.group]]
dn = "{password_only}"
policy = "password-only"
[[ldap.group]]
dn = "{vpn}"
policy = "two-factor"
"#,
        service = slapd::SERVICE_DN,
        password = slapd::SERVICE_PASSWORD,
        base = slapd::BASE_DN,
        password_only = slapd::PASSWORD_ONLY_GROUP_DN,
        vpn = slapd::VPN_GROUP_DN,
    )
}

/// The result and reason of `user`'s last audit record, read once the file holds the
/// records of the first `decisions` requests the test made (each request is one decision,
/// recorded by the file's thread after the reply went out).
fn last_reason(node: &Node, user: &str, decisions: usize) -> String {
    node.audit_records(decisions)
        .iter()
        .rev()
        .find(|r| r["user"] == user)
        .map(|r| {
            format!(
                "{}/{}",
                r["result"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default()
}

fn hotp_token(node: &Node, user: &str) -> String {
    node.ok(
        &[
            "token", "add", user, "--type", "hotp", "--secret", SEED_B32, "--no-qr",
        ],
        None,
    )
}

#[test]
fn passwords_groups_and_names_are_checked_against_the_directory() {
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    let mut node = Node::new(&openldap_section(&[&ldap.ldaps_url], &ca, ""));
    node.add_client("nas1", "append", true);
    // alice's token lives in the embedded store under her directory name.
    let out = hotp_token(&node, "alice@example.com");
    assert!(out.contains("alice@example.com"), "{out}");
    let addr = node.start();

    let ok = login(
        addr,
        "alice@example.com",
        &format!("alice-pass{}", hotp_code(0)),
    );
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, node.log());

    // The default domain, the NetBIOS form and another case all name the same user.
    let ok = login(addr, "alice", &format!("alice-pass{}", hotp_code(1)));
    assert!(ok.is("Access-Accept"), "{}", ok.output);
    let ok = login(
        addr,
        "EXAMPLE\\Alice",
        &format!("alice-pass{}", hotp_code(2)),
    );
    assert!(ok.is("Access-Accept"), "{}", ok.output);
    // The code is single use, whichever name it comes under.
    let replay = login(addr, "alice", &format!("alice-pass{}", hotp_code(2)));
    assert!(replay.is("Access-Reject"));
    assert_eq!(last_reason(&node, "alice", 4), "reject/replayed_passcode");

    let wrong = login(addr, "alice", &format!("alice-pasS{}", hotp_code(3)));
    assert!(wrong.is("Access-Reject"));
    assert_eq!(last_reason(&node, "alice", 5), "reject/bad_password");
    // The refused password did not use code 3.
    let ok = login(addr, "alice", &format!("alice-pass{}", hotp_code(3)));
    assert!(ok.is("Access-Accept"), "{}", ok.output);

    // A passcode with no password before it cannot be split.
    let empty = login(addr, "alice", &hotp_code(4));
    assert!(empty.is("Access-Reject"));
    assert_eq!(last_reason(&node, "alice", 7), "reject/malformed");

    // bob is in no group: the rules refuse him before his password is tried.
    let bob = login(addr, "bob", "bob-pass123456");
    assert!(bob.is("Access-Reject"));
    assert_eq!(last_reason(&node, "bob", 8), "reject/not_permitted");

    // carol's group logs in with the directory password alone.
    let carol = login(addr, "carol", "carol-pass");
    assert!(carol.is("Access-Accept"), "{}", carol.output);
    let carol = login(addr, "carol", "carol-wrong");
    assert!(carol.is("Access-Reject"));
    // An empty password is never sent to the directory as an (anonymous) bind.
    // (radclient cannot send an empty User-Password; the raw client hides one properly.)
    let raw = RawClient::new(addr);
    let auth = [7u8; 16];
    raw.send(&RawClient::access_request(
        9,
        auth,
        SECRET,
        "carol",
        "",
        &[],
        true,
    ));
    let reply = raw.recv().expect("a reply to the empty password");
    assert_eq!(
        RawClient::check_reply(&reply, &auth, SECRET),
        Code::AccessReject
    );
    assert_eq!(last_reason(&node, "carol", 11), "reject/bad_password");

    // dave is allowed but holds no token.
    let dave = login(addr, "dave", &format!("dave-pass{}", hotp_code(0)));
    assert!(dave.is("Access-Reject"));
    assert_eq!(last_reason(&node, "dave", 12), "reject/no_token");

    // Filter injection finds no one: the name is escaped before it reaches the filter.
    for (i, name) in [
        "*",
        "al*",
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice\\2a",
        "carol)(&",
    ]
    .iter()
    .enumerate()
    {
        let r = login(addr, name, "carol-pass");
        assert!(r.is("Access-Reject"), "{name}: {}", r.output);
        assert_eq!(
            last_reason(&node, name, 13 + i),
            "reject/unknown_user",
            "{name}"
        );
    }
    // A name of an unconfigured domain stays in the embedded directory (where it is unknown).
    let r = login(
        addr,
        "alice@elsewhere.org",
        &format!("alice-pass{}", hotp_code(5)),
    );
    assert!(r.is("Access-Reject"));
    assert_eq!(
        last_reason(&node, "alice@elsewhere.org", 19),
        "reject/unknown_user"
    );
}

#[test]
fn challenge_mode_asks_for_the_passcode_after_the_directory_password() {
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    // StartTLS on the plain port, verified against the test CA.
    let mut node = Node::new(&openldap_section(
        &[&ldap.ldap_url],
        &ca,
        "starttls = true\n",
    ));
    node.add_client("nas1", "challenge", true);
    hotp_token(&node, "alice@example.com");
    let addr = node.start();

    let first = login(addr, "alice", "alice-pass");
    assert!(
        first.is("Access-Challenge"),
        "{}\n{}",
        first.output,
        node.log()
    );
    let state = first.attr("State").expect("State").to_owned();
    let answer = format!(
        "User-Name = \"alice\", User-Password = \"{}\", State = {state}, Message-Authenticator = 0x00\n",
        hotp_code(0)
    );
    let second = radclient(addr, SECRET, "auth", &answer, 1, 3);
    assert!(
        second.is("Access-Accept"),
        "{}\n{}",
        second.output,
        node.log()
    );

    let bad = login(addr, "alice", "not-her-password");
    assert!(bad.is("Access-Reject"));
    // carol (password only) is accepted without a challenge.
    let carol = login(addr, "carol", "carol-pass");
    assert!(carol.is("Access-Accept"), "{}", carol.output);
}

#[test]
fn a_server_certificate_from_an_unknown_authority_is_refused() {
    let ldap = Slapd::start();
    // The system's roots do not include the test CA.
    let mut node = Node::new(&openldap_section(
        &[&ldap.ldaps_url],
        "/etc/ssl/certs/ca-certificates.crt",
        "",
    ));
    node.add_client("nas1", "append", true);
    let addr = node.start();
    let r = login(addr, "carol", "carol-pass");
    assert!(r.is("Access-Reject"), "{}", r.output);
    assert_eq!(
        last_reason(&node, "carol", 1),
        "reject/directory_unavailable"
    );

    let out = node.cli(&["directory", "test", "carol"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("FAILED to connect"), "{text}");
}

#[test]
fn the_active_directory_profile_reads_account_flags() {
    let ldap = Slapd::start();
    // heidi is locked now: Active Directory computes this flag.
    ldap.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: msDS-User-Account-Control-Computed\nmsDS-User-Account-Control-Computed: 16\n",
        slapd::ad_user_dn("heidi")
    ));
    let section = format!(
        r#"
[audit]
file = "{{dir}}/audit.jsonl"

[[ldap]]
domain = "{upn}"
aliases = ["CORP"]
profile = "active-directory"
servers = [{url:?}]
ca_file = {ca:?}
bind_dn = "{service}"
bind_password = "{password}"
base_dn = "{base}"
others = "reject"
[[ldap.group]]
dn = "{vpn}"
policy = "password-only"
"#,
        upn = slapd::UPN_DOMAIN,
        url = ldap.ldaps_url,
        ca = ldap.ca_file.display().to_string(),
        service = slapd::SERVICE_DN,
        password = slapd::SERVICE_PASSWORD,
        base = slapd::BASE_DN,
        vpn = slapd::VPN_GROUP_DN,
    );
    let mut node = Node::new(&section);
    node.add_client("nas1", "append", true);
    let addr = node.start();

    let erin = login(addr, "erin@corp.example.com", "erin-pass");
    assert!(erin.is("Access-Accept"), "{}\n{}", erin.output, node.log());
    let erin = login(addr, "CORP\\erin", "erin-pass");
    assert!(erin.is("Access-Accept"), "{}", erin.output);
    for (i, (user, reason)) in [
        ("CORP\\frank", "reject/disabled"),
        ("CORP\\grace", "reject/expired"),
        ("CORP\\heidi", "reject/locked_out"),
    ]
    .into_iter()
    .enumerate()
    {
        let password = format!("{}-pass", &user[5..]);
        let r = login(addr, user, &password);
        assert!(r.is("Access-Reject"), "{user}: {}", r.output);
        assert_eq!(last_reason(&node, user, 3 + i), reason, "{user}");
    }

    let out = node.ok(&["directory", "test", "erin"], None);
    assert!(out.contains("found cn=erin"), "{out}");
    assert!(out.contains("policy: password-only"), "{out}");
    assert!(out.contains("mobile: +44 7700 900131"), "{out}");
    assert!(out.contains("account: Active"), "{out}");
}

#[test]
fn logins_continue_on_the_second_server_when_the_first_dies() {
    let mut first = Slapd::start();
    let second = Slapd::start();
    let ca = first.ca_file.display().to_string();
    // Each slapd has its own test CA: trust both.
    let both = first.path().join("both-cas.pem");
    let pem = std::fs::read_to_string(&first.ca_file).unwrap()
        + &std::fs::read_to_string(&second.ca_file).unwrap();
    std::fs::write(&both, pem).unwrap();
    let _ = ca;
    let mut node = Node::new(&openldap_section(
        &[&first.ldaps_url, &second.ldaps_url],
        &both.display().to_string(),
        "[metrics]\nlisten = \"127.0.0.1:0\"\n",
    ));
    node.add_client("nas1", "append", true);
    let addr = node.start();
    assert!(login(addr, "carol", "carol-pass").is("Access-Accept"));

    // A stream of logins while the first server is killed: every one is answered, and
    // answered with an accept.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    let load = std::thread::spawn(move || {
        let mut results = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let started = Instant::now();
            let r = login(addr, "carol", "carol-pass");
            results.push((r.is("Access-Accept"), started.elapsed(), r.output));
        }
        results
    });
    std::thread::sleep(Duration::from_millis(500));
    first.kill();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = load.join().unwrap();
    assert!(results.len() >= 3, "too few logins ran: {}", results.len());
    for (accepted, took, output) in &results {
        assert!(
            accepted,
            "a login failed during failover: {output}\n{}",
            node.log()
        );
        assert!(*took < Duration::from_secs(3), "a login hung for {took:?}");
    }
    assert!(
        node.log_shows("directory server marked dead"),
        "{}",
        node.log()
    );
    // Later logins go straight to the second server.
    let started = Instant::now();
    assert!(login(addr, "carol", "carol-pass").is("Access-Accept"));
    assert!(started.elapsed() < Duration::from_secs(1));

    // The first comes back and is probed back into use.
    first.restart();
    assert!(
        node.log_shows("directory server answers again"),
        "{}",
        node.log()
    );
    assert!(login(addr, "carol", "carol-pass").is("Access-Accept"));
}

#[test]
fn token_records_in_the_directory_are_shared_by_two_servers() {
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    let section = openldap_section(&[&ldap.ldaps_url], &ca, "tokens_in_directory = true\n");
    let mut a = Node::new(&section);
    a.add_client("nas1", "append", true);
    let out = hotp_token(&a, "dave");
    assert!(out.contains("in the directory"), "{out}");
    let stored = ldap.search("(uid=dave)", &["telexNumber"]);
    assert!(stored.contains("telexNumber: tollgate$1$"), "{stored}");
    // The seed is sealed: it is not in the directory in any readable form.
    assert!(!stored.contains(SEED_B32), "{stored}");

    // A second server sharing the master key and the directory: as an operator would, the
    // key goes into a data directory of its own, which `init` then fills.
    let mut b = Node::new(&section);
    let b_data = b.path().join("data");
    std::fs::remove_dir_all(&b_data).unwrap();
    std::fs::create_dir_all(&b_data).unwrap();
    std::fs::copy(
        a.path().join("data").join("master.key"),
        b_data.join("master.key"),
    )
    .unwrap();
    b.ok(&["init"], None);
    b.add_client("nas1", "append", true);
    let a_addr = a.start();
    b.start();
    let b_addr = b.radius();

    let ok = login(a_addr, "dave", &format!("dave-pass{}", hotp_code(0)));
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, a.log());
    // The advance was written back: the other server refuses the same code...
    let replay = login(b_addr, "dave", &format!("dave-pass{}", hotp_code(0)));
    assert!(replay.is("Access-Reject"));
    assert_eq!(last_reason(&b, "dave", 1), "reject/replayed_passcode");
    // ...and accepts the next one, which the first then refuses.
    let ok = login(b_addr, "dave", &format!("dave-pass{}", hotp_code(1)));
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, b.log());
    let replay = login(a_addr, "dave", &format!("dave-pass{}", hotp_code(1)));
    assert!(replay.is("Access-Reject"));
    // The same code twice at once on one server: exactly one is accepted.
    let field = format!("dave-pass{}", hotp_code(2));
    let twins: Vec<_> = (0..2)
        .map(|_| {
            let field = field.clone();
            std::thread::spawn(move || login(a_addr, "dave", &field).is("Access-Accept"))
        })
        .collect();
    let accepted = twins
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(accepted, 1, "{}", a.log());
    // One record, still: the write replaced the value rather than adding one.
    let stored = ldap.search("(uid=dave)", &["telexNumber"]);
    assert_eq!(stored.matches("telexNumber:").count(), 1, "{stored}");

    // A service account without write access gets the seeds' clear error.
    let readonly = section
        .replace(slapd::SERVICE_DN, slapd::READONLY_DN)
        .replace(slapd::SERVICE_PASSWORD, slapd::READONLY_PASSWORD);
    let c = Node::new(&readonly);
    let out = c.cli(
        &[
            "token", "add", "alice", "--type", "hotp", "--secret", SEED_B32, "--no-qr",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error writing to LDAP, access denied"),
        "{err}"
    );
}

#[test]
fn directory_test_reports_each_step() {
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    let node = Node::new(&openldap_section(
        &[&ldap.ldaps_url, "ldaps://127.0.0.1:1"],
        &ca,
        "",
    ));
    let out = node.cli(
        &["directory", "test", "alice", "--password-stdin"],
        Some("alice-pass\n"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("over TLS, service account"), "{text}");
    assert!(
        text.contains("ldaps://127.0.0.1:1: FAILED to connect"),
        "{text}"
    );
    assert!(
        text.contains("found uid=alice,ou=people,dc=example,dc=com"),
        "{text}"
    );
    assert!(text.contains("mail: alice@example.com"), "{text}");
    assert!(
        text.contains("cn=vpn-users,ou=groups,dc=example,dc=com"),
        "{text}"
    );
    assert!(text.contains("policy: two-factor"), "{text}");
    assert!(text.contains("password: accepted"), "{text}");

    let out = node.cli(&["directory", "test", "mallory"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT FOUND"));

    let out = node.cli(
        &["directory", "test", "alice", "--password-stdin"],
        Some("wrong\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("password: REFUSED"));

    let wrong = Node::new(
        &openldap_section(&[&ldap.ldaps_url], &ca, "")
            .replace(slapd::SERVICE_PASSWORD, "not-the-password"),
    );
    let out = wrong.cli(&["directory", "test"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("was REFUSED"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_directory_connections_are_restarted() {
    use tollgate_actors::server::Server;
    use tollgate_actors::store::{NewClient, Store};
    use tollgate_config::{Config, SharedSecret};
    use tollgate_engine::login::LoginMode;

    let ldap = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = {:?}\n[radius]\nlisten = [\"127.0.0.1:0\"]\n{}",
        dir.path().join("data").display().to_string(),
        openldap_section(&[&ldap.ldaps_url], &ldap.ca_file.display().to_string(), "")
            .replace("{dir}", &dir.path().display().to_string())
    );
    let config = Config::parse(&text).unwrap();
    Store::open(&config.data_dir)
        .unwrap()
        .add_client(NewClient {
            name: "nas1".into(),
            address: "127.0.0.1".parse().unwrap(),
            secret: SharedSecret::new(SECRET.as_bytes().to_vec()),
            mode: LoginMode::Append,
            require_message_authenticator: true,
            rate_limit: 0,
        })
        .unwrap();
    let server = Server::start(&config, None).await.expect("server starts");
    let addr = server.radius_addrs()[0];
    let carol = move || login(addr, "carol", "carol-pass").is("Access-Accept");
    assert!(tokio::task::spawn_blocking(carol).await.unwrap());

    let before = server.directory_connection_ids();
    let crashed = server.crash_directory_connections();
    assert_eq!(before, crashed);
    let mut after = before.clone();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = server.directory_connection_ids();
        if after.iter().all(|id| !before.contains(id)) {
            break;
        }
    }
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "every failed connection actor was replaced: {before:?} → {after:?}"
    );
    for _ in 0..3 {
        assert!(tokio::task::spawn_blocking(carol).await.unwrap());
    }
    server.shutdown().await;
}

#[test]
fn a_saturated_directory_sheds_logins_with_a_clear_reject() {
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    // One login at a time may wait on the directory.
    let port = tollgate_tests::free_tcp_port();
    let mut node = Node::new(
        &openldap_section(
            &[&ldap.ldaps_url],
            &ca,
            "queue = 1\nbind_connections = 1\nsearch_connections = 1\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
        )
        .replace("{port}", &port.to_string()),
    );
    node.add_client("nas1", "append", true);
    let addr = node.start();
    // A burst of distinct requests at once: most find the gate taken.
    let raw = RawClient::new(addr);
    let mut auths = Vec::new();
    for i in 0..40u8 {
        let auth = [i; 16];
        raw.send(&RawClient::access_request(
            i,
            auth,
            SECRET,
            "carol",
            "carol-pass",
            &[],
            true,
        ));
        auths.push(auth);
    }
    let mut accepts = 0;
    let mut rejects = 0;
    while let Some(reply) = raw.recv() {
        let id = reply[1];
        match RawClient::check_reply(&reply, &auths[usize::from(id)], SECRET) {
            Code::AccessAccept => accepts += 1,
            Code::AccessReject => rejects += 1,
            other => panic!("unexpected {other:?}"),
        }
        if accepts + rejects == 40 {
            break;
        }
    }
    assert_eq!(accepts + rejects, 40, "every request is answered");
    assert!(accepts >= 1, "the admitted login is accepted");
    assert!(rejects >= 1, "the excess is refused at once");
    let overloaded = node
        .audit_records(40)
        .iter()
        .filter(|r| r["reason"] == "overloaded")
        .count();
    assert_eq!(overloaded, rejects, "each refusal says why");
    let metrics_addr = format!("127.0.0.1:{port}").parse().unwrap();
    let shed = tollgate_tests::http_get(metrics_addr, "/metrics")
        .and_then(|text| tollgate_tests::metric(&text, "tollgate_shed_total{gate=\"directory\"}"));
    assert_eq!(shed, Some(rejects as f64), "the shed logins are counted");
}

#[test]
fn a_silent_server_costs_one_timeout_and_is_then_skipped() {
    // A server that accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("ldaps://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in silent.incoming().take(8) {
            conns.push(c);
        }
    });
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    let mut node = Node::new(&openldap_section(&[&silent_url, &ldap.ldaps_url], &ca, ""));
    node.add_client("nas1", "append", true);
    let addr = node.start();
    let started = Instant::now();
    let first = login(addr, "carol", "carol-pass");
    let first_took = started.elapsed();
    assert!(
        first.is("Access-Accept"),
        "{}\n{}",
        first.output,
        node.log()
    );
    assert!(
        first_took < Duration::from_secs(4),
        "first login took {first_took:?}"
    );
    // Known dead now: the next logins do not wait for it.
    for _ in 0..3 {
        let started = Instant::now();
        assert!(login(addr, "carol", "carol-pass").is("Access-Accept"));
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "{:?}",
            started.elapsed()
        );
    }
    drop(held);
}

#[test]
fn a_directory_user_can_get_real_time_codes_at_the_number_the_directory_holds() {
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    let mut node = Node::new(&openldap_section(&[&ldap.ldaps_url], &ca, ""));
    node.add_client("nas1", "append", true);
    // alice's entry here only says how her code travels; her number is the directory's.
    node.ok(&["user", "add", "alice@example.com"], None);
    node.ok(
        &[
            "user",
            "set",
            "alice@example.com",
            "--delivery",
            "realtime-sms",
        ],
        None,
    );
    let addr = node.start();
    let first = login(addr, "alice", "alice-pass");
    assert!(
        first.is("Access-Challenge"),
        "{}\n{}",
        first.output,
        node.log()
    );
    assert_eq!(
        first.attr("Reply-Message"),
        Some("Enter the passcode sent to ...0123")
    );
    let state = first.attr("State").unwrap().to_owned();
    let outbox = node.path().join("data").join("outbox.log");
    let mut lines = Vec::new();
    assert!(Node::eventually(Duration::from_secs(5), || {
        lines = tollgate_tests::peers::outbox_lines(&outbox);
        !lines.is_empty()
    }));
    assert_eq!(lines[0]["to"], "+44 7700 900123");
    let code = tollgate_tests::peers::code_in(lines[0]["body"].as_str().unwrap(), 6).unwrap();
    let text = format!(
        "User-Name = \"alice\", User-Password = \"{code}\", State = {state}, Message-Authenticator = 0x00\n"
    );
    let ok = radclient(addr, SECRET, "auth", &text, 1, 3);
    assert!(ok.is("Access-Accept"), "{}\n{}", ok.output, node.log());
    // A wrong directory password sends nothing.
    assert!(login(addr, "alice", "alice-wrong").is("Access-Reject"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tollgate_tests::peers::outbox_lines(&outbox).len(), 1);
}

#[test]
fn a_directory_user_approves_on_the_phone_enrolled_for_their_entry() {
    let ldap = Slapd::start();
    let ca = ldap.ca_file.display().to_string();
    let port = tollgate_tests::free_tcp_port();
    let extra = format!(
        "[mobile_api]\nlisten = \"127.0.0.1:{port}\"\nallow_plain = true\n[login]\npush_timeout_secs = 20\n"
    );
    let mut node = Node::new(&format!(
        "{extra}{}",
        openldap_section(&[&ldap.ldaps_url], &ca, "")
    ));
    node.add_client("nas1", "append", true);
    // The password is the directory's; the entry here holds the push choice and the phone.
    node.ok(&["user", "add", "alice@example.com"], None);
    node.ok(
        &["user", "set", "alice@example.com", "--delivery", "push"],
        None,
    );
    let code = node.enrolment_code("alice@example.com");
    let addr = node.start();
    let api = format!("127.0.0.1:{port}").parse().unwrap();
    let app = tollgate_tests::peers::PhoneApp::enrol(api, &code);
    std::thread::sleep(Duration::from_millis(400));

    // A wrong directory password asks no phone.
    assert!(login(addr, "alice", "alice-wrong").is("Access-Reject"));
    assert!(app.pending().is_empty());

    let held = std::thread::spawn(move || login(addr, "alice", "alice-pass"));
    let mut pending = Vec::new();
    assert!(Node::eventually(Duration::from_secs(10), || {
        pending = app.pending();
        !pending.is_empty()
    }));
    assert_eq!(pending.len(), 1);
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app.decide(&id, true, None);
    assert_eq!(status, 200, "{body}");
    let reply = held.join().unwrap();
    assert!(
        reply.is("Access-Accept"),
        "{}\n{}",
        reply.output,
        node.log()
    );

    // A declined login is rejected.
    let held = std::thread::spawn(move || login(addr, "alice", "alice-pass"));
    assert!(Node::eventually(Duration::from_secs(10), || {
        pending = app.pending();
        !pending.is_empty()
    }));
    let id = pending[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.decide(&id, false, None).0, 200);
    assert!(held.join().unwrap().is("Access-Reject"));
    assert_eq!(last_reason(&node, "alice", 3), "reject/push_declined");
}
