//! Supervision: a client actor that panics is restarted and the server keeps answering.
//! The server runs in this process so that the test can make the actor panic.

use std::time::Duration;

use tollgate_actors::server::Server;
use tollgate_actors::store::{NewClient, NewToken, Store};
use tollgate_config::{Config, SharedSecret};
use tollgate_engine::login::LoginMode;
use tollgate_engine::otp::{Algorithm, TokenKind, TokenParams};
use tollgate_tests::{hotp_code, login, SECRET, SEED};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_client_actor_is_restarted_and_the_server_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.radius.listen = vec!["127.0.0.1:0".parse().unwrap()];
    {
        let mut store = Store::open(&config.data_dir).unwrap();
        store.add_user("alice", Some(b"Secret123")).unwrap();
        // Bob's first login needs the slow password check, which the client actor runs.
        store.add_user("bob", Some(b"BobPass1")).unwrap();
        for user in ["alice", "bob"] {
            let token = NewToken {
                params: TokenParams {
                    kind: TokenKind::Hotp,
                    algorithm: Algorithm::Sha1,
                    digits: 6,
                },
                secret: zeroize::Zeroizing::new(SEED.to_vec()),
                counter: 0,
            };
            store.add_token(user, token).unwrap();
        }
        store
            .add_client(NewClient {
                name: "nas1".into(),
                address: "127.0.0.1".parse().unwrap(),
                secret: SharedSecret::new(SECRET.as_bytes().to_vec()),
                mode: LoginMode::Append,
                require_message_authenticator: true,
                rate_limit: 0,
            })
            .unwrap();
    }
    let server = Server::start(&config, None).await.expect("server starts");
    let addr = server.radius_addrs()[0];
    let r = tokio::task::spawn_blocking(move || {
        login(addr, "alice", &format!("Secret123{}", hotp_code(0)))
    })
    .await
    .unwrap();
    assert!(r.is("Access-Accept"), "{}", r.output);

    let before = server.client_actor_id("nas1").expect("actor");
    server.crash_client("nas1");
    let mut after = before;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = server.client_actor_id("nas1").expect("actor");
        if after != before {
            break;
        }
    }
    assert_ne!(before, after, "the failed actor was replaced by a new one");

    let r = tokio::task::spawn_blocking(move || {
        login(addr, "alice", &format!("Secret123{}", hotp_code(1)))
    })
    .await
    .unwrap();
    assert!(r.is("Access-Accept"), "{}", r.output);
    // A login that needs the restarted actor (Argon2 on bob's first login) is answered too.
    let r = tokio::task::spawn_blocking(move || {
        login(addr, "bob", &format!("BobPass1{}", hotp_code(0)))
    })
    .await
    .unwrap();
    assert!(r.is("Access-Accept"), "{}", r.output);
    let report = server.shutdown().await;
    assert_eq!(report.abandoned, 0);
}
