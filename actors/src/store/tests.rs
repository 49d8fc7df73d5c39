use super::*;

fn totp() -> TokenParams {
    TokenParams {
        kind: TokenKind::Totp { period: 30, t0: 0 },
        algorithm: Algorithm::Sha1,
        digits: 6,
    }
}

fn new_token(secret: &[u8]) -> NewToken {
    NewToken {
        params: totp(),
        secret: Zeroizing::new(secret.to_vec()),
        counter: 0,
    }
}

#[test]
fn users_tokens_and_clients_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let alice = store.add_user("Alice", Some(b"pw1")).unwrap();
    assert!(matches!(
        store.add_user("alice", None),
        Err(StoreError::Exists(_))
    ));
    let t = store
        .add_token("ALICE", new_token(b"12345678901234567890"))
        .unwrap();
    assert_eq!(t.user_id, alice.id);
    let tokens = store.tokens(Some(alice.id)).unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(&tokens[0].secret[..], b"12345678901234567890");
    assert!(verify_password(
        b"pw1",
        store
            .user("alice")
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref()
            .unwrap()
    ));

    store
        .add_client(NewClient {
            name: "vpn1".into(),
            address: "127.0.0.1".parse().unwrap(),
            secret: SharedSecret::new(b"s3cret".to_vec()),
            mode: LoginMode::Challenge,
            require_message_authenticator: true,
            rate_limit: 0,
        })
        .unwrap();
    let clients = store.clients().unwrap();
    assert_eq!(clients[0].secret.expose(), b"s3cret");
    assert_eq!(clients[0].mode, LoginMode::Challenge);
}

#[test]
fn seeds_and_secrets_are_not_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.add_user("bob", None).unwrap();
    store
        .add_token("bob", new_token(b"SEEDSEEDSEEDSEEDSEED"))
        .unwrap();
    store
        .add_client(NewClient {
            name: "nas".into(),
            address: "10.0.0.0/8".parse().unwrap(),
            secret: SharedSecret::new(b"CLIENTSECRETXYZ".to_vec()),
            mode: LoginMode::Append,
            require_message_authenticator: true,
            rate_limit: 0,
        })
        .unwrap();
    drop(store);
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        raw.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"SEEDSEEDSEEDSEEDSEED"));
    assert!(!contains(b"CLIENTSECRETXYZ"));
}

#[test]
fn a_foreign_master_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Decrypt(_)), "{err}");
}

#[test]
fn runtime_state_survives_reopen_and_counters_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let u = store.add_user("carol", None).unwrap();
    let t = store
        .add_token("carol", new_token(b"12345678901234567890"))
        .unwrap();
    let lock = LockoutState {
        failures: 5,
        locked_until: Some(12345),
    };
    store
        .save_runtime(
            &[(
                t.id,
                TokenState {
                    next_counter: 100,
                    drift: -2,
                },
            )],
            &[(u.id, lock)],
        )
        .unwrap();
    store
        .save_runtime(
            &[(
                t.id,
                TokenState {
                    next_counter: 50,
                    drift: 0,
                },
            )],
            &[],
        )
        .unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.tokens(Some(u.id)).unwrap()[0].state.next_counter, 100);
    assert_eq!(store.user("carol").unwrap().unwrap().lockout, lock);
}

#[test]
fn admin_changes_are_logged_for_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let start = store.last_change().unwrap();
    let u = store.add_user("dave", Some(b"pw")).unwrap();
    store.unlock("dave").unwrap();
    store.remove_user("dave").unwrap();
    let changes: Vec<_> = store
        .changes_since(start)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(
        changes,
        vec![Change::User(u.id), Change::Unlock(u.id), Change::User(u.id)]
    );
    assert!(store.user("dave").unwrap().is_none());
}

#[test]
fn bulk_import_creates_users_and_refuses_unknown_ones_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let rows = (0..100).map(|i| Ok((format!("user{i}"), new_token(b"12345678901234567890"))));
    let report = store.import_tokens(rows, true).unwrap();
    assert_eq!(
        report,
        ImportReport {
            tokens: 100,
            users_created: 100
        }
    );
    let rows = std::iter::once(Ok((
        "nobody".to_owned(),
        new_token(b"12345678901234567890"),
    )));
    assert!(matches!(
        store.import_tokens(rows, false),
        Err(StoreError::NoSuchUser(_))
    ));
    // The failed import left nothing behind.
    assert_eq!(store.tokens(None).unwrap().len(), 100);
}

#[test]
fn bad_values_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    assert!(matches!(
        store.add_user("has space", None),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.add_user("x", Some(b"")),
        Err(StoreError::Invalid(_))
    ));
    store.add_user("erin", None).unwrap();
    assert!(matches!(
        store.add_token("erin", new_token(b"short")),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.add_token("zed", new_token(b"12345678901234567890")),
        Err(StoreError::NoSuchUser(_))
    ));
    assert!(matches!(
        store.remove_client("none"),
        Err(StoreError::NoSuchClient(_))
    ));
}

#[test]
fn an_unregistered_push_token_is_forgotten_with_its_waiting_messages() {
    use crate::delivery::Channel;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let u = store.add_user("frank", None).unwrap();
    let mut devices = Vec::new();
    for (n, token) in [(1, Some("tok-gone")), (2, Some("tok-live")), (3, None)] {
        store
            .add_enrolment_code("frank", &format!("CODE{n}"), 60)
            .unwrap();
        let d = DeviceRecord {
            id: format!("dev{n}"),
            user_id: 0,
            name: format!("phone {n}"),
            platform: Platform::Fcm,
            push_token: token.map(str::to_owned),
            key_alg: "ed25519".to_owned(),
            public_key: vec![n; 32],
            created_at: 0,
        };
        devices.push(store.enrol_device(&format!("CODE{n}"), d).unwrap().unwrap());
    }
    let message = |channel, to: &str| NewMessage {
        channel,
        to: to.to_owned(),
        subject: "Login request".to_owned(),
        body: Zeroizing::new("{}".to_owned()),
        user_id: None,
        purpose: "push",
    };
    store
        .enqueue(&[
            message(Channel::Fcm, "tok-gone"),
            message(Channel::Fcm, "tok-gone"),
            message(Channel::Fcm, "tok-live"),
            // A text message to the same string is no push message and stays.
            message(Channel::Sms, "tok-gone"),
        ])
        .unwrap();
    let start = store.last_change().unwrap();

    assert_eq!(store.forget_push_token("tok-gone").unwrap(), 1);

    let after = store.devices(Some(u.id)).unwrap();
    assert_eq!(
        after.len(),
        3,
        "the device itself stays (its key still signs)"
    );
    let token_of = |id: &str| {
        after
            .iter()
            .find(|d| d.id == id)
            .unwrap()
            .push_token
            .clone()
    };
    assert_eq!(token_of("dev1"), None);
    assert_eq!(token_of("dev2").as_deref(), Some("tok-live"));
    let left: Vec<(Channel, String)> = store
        .outbox(false, 10)
        .unwrap()
        .into_iter()
        .map(|m| (m.channel, m.to))
        .collect();
    assert_eq!(
        left,
        vec![
            (Channel::Fcm, "tok-live".to_owned()),
            (Channel::Sms, "tok-gone".to_owned())
        ]
    );
    let changes: Vec<_> = store
        .changes_since(start)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(
        changes,
        vec![Change::User(u.id)],
        "the servers reload the user"
    );
    assert_eq!(store.forget_push_token("tok-gone").unwrap(), 0);
}

#[test]
fn the_wal_is_checkpointed_in_small_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mode: String = store
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let pages: i64 = store
        .conn
        .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
        .unwrap();
    assert_eq!(pages, WAL_CHECKPOINT_PAGES);
}

#[test]
fn new_passwords_are_hashed_with_the_configured_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let stored =
        |store: &Store, name: &str| store.user(name).unwrap().unwrap().password_hash.unwrap();
    store
        .add_user("before", Some(b"pw-one".as_slice()))
        .unwrap();
    assert!(stored(&store, "before").contains("$m=19456,t=2,p=1$"));
    store.set_hash_params(HashParams {
        memory_kib: 9_216,
        iterations: 4,
        parallelism: 2,
    });
    store.add_user("after", Some(b"pw-two".as_slice())).unwrap();
    let after = stored(&store, "after");
    assert!(after.contains("$m=9216,t=4,p=2$"), "{after}");
    assert!(verify_password(b"pw-two", &after));
    // A password set anew takes the new parameters; the old hash still verified before.
    assert!(verify_password(b"pw-one", &stored(&store, "before")));
    store.set_password("before", b"pw-three").unwrap();
    let reset = stored(&store, "before");
    assert!(reset.contains("$m=9216,t=4,p=2$"), "{reset}");
    assert!(verify_password(b"pw-three", &reset));
}
