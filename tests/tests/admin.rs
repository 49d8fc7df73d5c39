//! Admin commands against a running server, lockout, restart and shutdown.

use std::time::Duration;

use tollgate_tests::{hotp_code, login, Node, SECRET};

const RELOAD: Duration = Duration::from_secs(5);

fn node_with(extra: &str) -> Node {
    let mut node = Node::new(extra);
    node.add_client("nas1", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    node
}

#[test]
fn users_added_while_running_can_log_in_within_a_second() {
    let node = node_with("");
    node.add_hotp_user("carol", "CarolPw1");
    let started = std::time::Instant::now();
    let mut counter = 0;
    let ok = Node::eventually(RELOAD, || {
        let r = login(
            node.radius(),
            "carol",
            &format!("CarolPw1{}", hotp_code(counter)),
        );
        counter += 1;
        r.is("Access-Accept")
    });
    assert!(ok, "{}", node.log());
    // Not a timing assertion: the change was seen without a restart.
    eprintln!("carol could log in after {:?}", started.elapsed());
}

#[test]
fn disabled_and_removed_users_are_refused() {
    let node = node_with("");
    // Until the server sees a change, a login may still pass and spend its code; the next
    // attempt then uses the next code.
    let mut counter = 0;
    let mut attempt = |node: &Node, expect: &str| {
        let r = login(
            node.radius(),
            "alice",
            &format!("Secret123{}", hotp_code(counter)),
        );
        if r.is("Access-Accept") {
            counter += 1;
        }
        r.is(expect)
    };
    node.ok(&["user", "disable", "alice"], None);
    let refused = Node::eventually(RELOAD, || {
        attempt(&node, "Access-Reject") && node.log().contains("\"disabled\"")
    });
    assert!(refused, "{}", node.log());
    node.ok(&["user", "enable", "alice"], None);
    let back = Node::eventually(RELOAD, || attempt(&node, "Access-Accept"));
    assert!(back, "{}", node.log());
    node.ok(&["user", "remove", "alice"], None);
    let gone = Node::eventually(RELOAD, || {
        attempt(&node, "Access-Reject") && node.log().contains("\"unknown_user\"")
    });
    assert!(gone, "{}", node.log());
    let out = node.cli(&["user", "show", "alice"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named `alice`"));
}

#[test]
fn repeated_failures_lock_the_user_until_unlocked() {
    let node = node_with("[lockout]\nthreshold = 3\nduration_secs = 0\n");
    for _ in 0..3 {
        assert!(login(node.radius(), "alice", "Secret123000000").is("Access-Reject"));
    }
    // The right password and code are refused while locked, and the code is not spent.
    let r = login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(0)),
    );
    assert!(r.is("Access-Reject"), "{}", r.output);
    assert!(node.log_shows("locked_out"), "{}", node.log());
    // The lock reaches the store within the server's flush interval.
    let stored = Node::eventually(RELOAD, || {
        node.ok(&["user", "show", "alice"], None)
            .contains("locked until unlocked")
    });
    assert!(stored, "{}", node.ok(&["user", "show", "alice"], None));

    node.ok(&["user", "unlock", "alice"], None);
    let ok = Node::eventually(RELOAD, || {
        login(
            node.radius(),
            "alice",
            &format!("Secret123{}", hotp_code(0)),
        )
        .is("Access-Accept")
    });
    assert!(ok, "{}", node.log());
}

#[test]
fn replay_state_and_lockouts_survive_a_restart() {
    let mut node = node_with("[lockout]\nthreshold = 2\nduration_secs = 3600\n");
    node.add_hotp_user("bob", "BobPass1");
    let used = format!("Secret123{}", hotp_code(0));
    assert!(login(node.radius(), "alice", &used).is("Access-Accept"));
    let bob_known = Node::eventually(RELOAD, || {
        login(node.radius(), "bob", &format!("BobPass1{}", hotp_code(0))).is("Access-Accept")
    });
    assert!(bob_known, "{}", node.log());
    // Two failures lock bob.
    assert!(login(node.radius(), "bob", "BobPass1999999").is("Access-Reject"));
    assert!(login(node.radius(), "bob", "BobPass1999998").is("Access-Reject"));
    let (status, _) = node.stop();
    assert!(status.success(), "{status:?}\n{}", node.log());
    node.start();
    let replay = login(node.radius(), "alice", &used);
    assert!(
        replay.is("Access-Reject"),
        "a code used before the restart is still used: {}",
        replay.output
    );
    let next = login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(1)),
    );
    assert!(next.is("Access-Accept"), "{}", next.output);
    let bob = login(node.radius(), "bob", &format!("BobPass1{}", hotp_code(1)));
    assert!(
        bob.is("Access-Reject"),
        "bob is still locked: {}",
        bob.output
    );
}

#[test]
fn sigterm_stops_the_server_cleanly_within_the_grace_period() {
    let mut node = node_with("[shutdown]\ngrace_secs = 2\n");
    assert!(login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(0))
    )
    .is("Access-Accept"));
    let (status, took) = node.stop();
    assert!(status.success(), "{status:?}\n{}", node.log());
    assert!(took < Duration::from_secs(20), "exit took {took:?}");
    assert!(node.log().contains("stopped"), "{}", node.log());
}

#[test]
fn radius_test_tells_ok_mismatch_and_timeout() {
    let mut node = Node::new("");
    node.add_client("strict", "append", true);
    node.add_hotp_user("alice", "Secret123");
    node.start();
    let server = node.radius().to_string();
    let config = node.config_path().to_owned();
    let run = |secret: &str, server: &str| {
        let out = tollgate_tests::cli_with(
            &config,
            &[
                "radius-test",
                "--server",
                server,
                "--secret-stdin",
                "--user",
                "alice",
                "--password",
                "x",
                "--timeout",
                "1",
                "--attempts",
                "1",
            ],
            Some(&format!("{secret}\n")),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(SECRET, &server).starts_with("OK (Access-Reject)"));
    // A server that requires Message-Authenticator drops a mis-signed request: no answer.
    assert!(run("wrong", &server).starts_with("timed out"));
    // Against a client that does not require it, the mismatch is told as such.
    node.ok(&["client", "remove", "strict"], None);
    node.add_client("lenient", "append", false);
    let told = Node::eventually(RELOAD, || {
        run("wrong", &server).starts_with("shared secret mismatch")
    });
    assert!(told, "{}", node.log());
    // Nothing listening.
    let (_, _) = node.stop();
    assert!(run(SECRET, &server).starts_with("timed out"));
}

#[test]
fn token_import_loads_seeds_in_bulk() {
    let mut node = Node::new("");
    node.add_client("nas1", "passcode-only", true);
    let csv = node.path().join("seeds.csv");
    let mut text = String::from("user,secret,type,digits,algorithm,period_or_counter\n");
    for i in 0..500 {
        text.push_str(&format!(
            "user{i},{},hotp,6,sha1,0\n",
            tollgate_tests::SEED_B32
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let out = node.ok(
        &["token", "import", csv.to_str().unwrap(), "--create-users"],
        None,
    );
    assert!(
        out.contains("imported 500 tokens (500 users created)"),
        "{out}"
    );
    node.start();
    let r = login(node.radius(), "user499", &hotp_code(0));
    assert!(r.is("Access-Accept"), "{}", r.output);

    // A bad line stops the import with its number and keeps nothing.
    std::fs::write(
        &csv,
        format!("x1,{}\nx2,not-base32!\n", tollgate_tests::SEED_B32),
    )
    .unwrap();
    let out = node.cli(
        &["token", "import", csv.to_str().unwrap(), "--create-users"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{out:?}"
    );
    assert!(!node.cli(&["user", "show", "x1"], None).status.success());
}

#[test]
fn check_config_reports_errors_with_their_key_path() {
    let node = Node::new("");
    let ok = node.ok(&["check-config"], None);
    assert!(ok.contains("OK"), "{ok}");
    std::fs::write(
        node.config_path(),
        "[radius]\nlisten = [\"127.0.0.1:0\"]\nbogus_key = 1\n",
    )
    .unwrap();
    let out = node.cli(&["check-config"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("radius.bogus_key"), "{err}");
}

/// An admin command pointed at a directory that holds no store (a typo in `--data-dir`)
/// refuses, names the path and creates nothing; `init` creates the store, and says so
/// once; then the same command works.
#[test]
fn admin_commands_refuse_a_data_directory_without_a_store() {
    let node = Node::new("");
    let typo = node.path().join("dat");
    let typo_arg = typo.to_str().expect("a UTF-8 path");
    for args in [
        &["user", "add", "alice"][..],
        &["user", "list"],
        &["client", "list"],
        &["token", "list"],
        &["outbox", "list"],
    ] {
        let mut with_dir = vec!["--data-dir", typo_arg];
        with_dir.extend_from_slice(args);
        let out = node.cli(&with_dir, None);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("no store in {typo_arg}")) && err.contains("tollgate init"),
            "{args:?}: {err}"
        );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    let first = node.ok(&["--data-dir", typo_arg, "init"], None);
    assert!(first.contains("now holds a new store"), "{first}");
    let again = node.ok(&["--data-dir", typo_arg, "init"], None);
    assert!(
        again.contains("holds a store") && !again.contains("new"),
        "{again}"
    );
    node.ok(&["--data-dir", typo_arg, "user", "add", "alice"], None);
    let listed = node.ok(&["--data-dir", typo_arg, "user", "list"], None);
    assert!(listed.contains("alice"), "{listed}");
    // A store whose master key went missing is not given a new one.
    std::fs::remove_file(typo.join("master.key")).expect("remove the key");
    let out = node.cli(&["--data-dir", typo_arg, "user", "list"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("master.key is missing"),
        "{err}"
    );
    assert!(!typo.join("master.key").exists());
}

#[test]
fn the_store_keeps_seeds_and_secrets_encrypted_with_a_private_key_file() {
    let node = node_with("");
    use std::os::unix::fs::PermissionsExt;
    let data = node.path().join("data");
    let key = std::fs::metadata(data.join("master.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let mut raw = Vec::new();
    for f in ["tollgate.db", "tollgate.db-wal"] {
        raw.extend(std::fs::read(data.join(f)).unwrap_or_default());
    }
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(tollgate_tests::SEED));
    assert!(!contains(SECRET.as_bytes()));
    assert!(!node.log().contains(SECRET));
}

#[test]
fn a_token_far_ahead_is_resynchronised_from_two_consecutive_codes() {
    let node = node_with("");
    // The token was pressed 50 times away from the server: beyond the look-ahead.
    let far = format!("Secret123{}", hotp_code(52));
    assert!(login(node.radius(), "alice", &far).is("Access-Reject"));
    let out = node.cli(
        &["token", "resync", "1", &hotp_code(50), &hotp_code(49)],
        None,
    );
    assert!(!out.status.success(), "codes out of order are refused");
    node.ok(
        &["token", "resync", "1", &hotp_code(50), &hotp_code(51)],
        None,
    );
    let ok = Node::eventually(RELOAD, || {
        login(node.radius(), "alice", &far).is("Access-Accept")
    });
    assert!(ok, "{}", node.log());
    // The codes used for the resynchronisation are spent.
    let used = format!("Secret123{}", hotp_code(51));
    assert!(login(node.radius(), "alice", &used).is("Access-Reject"));
}

#[test]
fn user_import_creates_users_with_passwords_that_log_in() {
    let mut node = Node::new("");
    node.add_client("nas1", "append", true);
    let users = node.path().join("users.csv");
    let seeds = node.path().join("seeds.csv");
    let mut u = String::from("name,password\n");
    let mut s = String::new();
    for i in 0..20 {
        u.push_str(&format!("bulk{i},pw-{i}-x\n"));
        s.push_str(&format!("bulk{i},{},hotp\n", tollgate_tests::SEED_B32));
    }
    std::fs::write(&users, u).unwrap();
    std::fs::write(&seeds, s).unwrap();
    let out = node.ok(&["user", "import", users.to_str().unwrap()], None);
    assert!(out.contains("imported 20 users"), "{out}");
    // Tokens for existing users: no --create-users needed.
    node.ok(&["token", "import", seeds.to_str().unwrap()], None);
    // Importing the same users again fails whole.
    assert!(!node
        .cli(&["user", "import", users.to_str().unwrap()], None)
        .status
        .success());
    node.start();
    let r = login(node.radius(), "bulk7", &format!("pw-7-x{}", hotp_code(0)));
    assert!(r.is("Access-Accept"), "{}", r.output);
    let r = login(node.radius(), "bulk8", &format!("pw-7-x{}", hotp_code(0)));
    assert!(r.is("Access-Reject"), "{}", r.output);
}

#[test]
fn passwords_are_hashed_with_the_configured_argon2_parameters() {
    let node = node_with("[passwords]\nargon2_memory_kib = 9216\nargon2_iterations = 4\n");
    // The server's decoy is made like the users' hashes, and a user added by the command
    // line gets the configured parameters.
    let store =
        tollgate_actors::store::Store::open_existing(&node.path().join("data")).expect("store");
    let hash = store
        .user("alice")
        .expect("read")
        .expect("alice")
        .password_hash
        .expect("a password");
    assert!(hash.starts_with("$argon2id$v=19$m=9216,t=4,p=1$"), "{hash}");
    let r = login(
        node.radius(),
        "alice",
        &format!("Secret123{}", hotp_code(0)),
    );
    assert!(r.is("Access-Accept"), "{r:?}\n{}", node.log());
    // Parameters below OWASP's minimums are refused before anything starts.
    let weak = Node::new("");
    std::fs::write(
        weak.config_path(),
        format!(
            "{}\n[passwords]\nargon2_memory_kib = 8192\nargon2_iterations = 2\n",
            std::fs::read_to_string(weak.config_path()).expect("config")
        ),
    )
    .expect("write config");
    let out = weak.cli(&["check-config"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("passwords.argon2_memory_kib")
            && err.contains("OWASP"),
        "{err}"
    );
}
