//! The LDAP test harness against the real `ldap-utils`: binds over plain LDAP, StartTLS
//! and LDAPS with the test CA, the access rules (only the service account writes
//! `telexNumber`, anonymous reads nothing), the Active-Directory-shaped entries and their
//! filters, what the `telexNumber` syntax accepts, a crash and restart on the same ports
//! and database, and the load users.

use std::net::TcpStream;
use std::process::Output;
use std::time::Instant;

use tollgate_tests::slapd::{
    ad_user_dn, load_uid, user_dn, Slapd, ADMIN_DN, ADMIN_PASSWORD, AD_PEOPLE_DN, BASE_DN,
    EXPIRED_FILETIME, LOAD_PASSWORD, LOCKOUT_FILETIME, PASSWORD_ONLY_GROUP_DN, PEOPLE_DN,
    READONLY_DN, READONLY_PASSWORD, SERVICE_DN, SERVICE_PASSWORD, VPN_GROUP_DN,
};

/// The LDAP result code a tool exited with.
fn rc(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts a bind succeeded as `dn` (ldapwhoami prints `dn:<dn>`).
fn assert_bound(out: &Output, dn: &str) {
    assert_eq!(rc(out), 0, "bind as {dn} failed: {}", text(out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dn:{dn}")
    );
}

/// Replaces `attr` of `dn` with `value`, bound as `who`; returns ldapmodify's output.
fn replace_as(slapd: &Slapd, who: (&str, &str), dn: &str, attr: &str, value: &str) -> Output {
    modify_as(
        slapd,
        who,
        &format!("dn: {dn}\nchangetype: modify\nreplace: {attr}\n{attr}: {value}\n"),
    )
}

fn modify_as(slapd: &Slapd, (who, password): (&str, &str), ldif: &str) -> Output {
    slapd.tool(
        "ldapmodify",
        &["-x", "-H", &slapd.ldap_url, "-D", who, "-w", password],
        Some(ldif),
    )
}

/// The values of `attr` in the entry `dn`, read as the administrator.
fn values(slapd: &Slapd, dn: &str, attr: &str) -> Vec<String> {
    let out = slapd.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            &slapd.ldap_url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
            "-b",
            dn,
            "-s",
            "base",
            "(objectClass=*)",
            attr,
        ],
        None,
    );
    assert_eq!(rc(&out), 0, "read {attr} of {dn}: {}", text(&out));
    let prefix = format!("{attr}: ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

#[test]
fn binds_over_plain_starttls_and_ldaps_with_the_test_ca() {
    let started = Instant::now();
    let slapd = Slapd::start();
    eprintln!("Slapd::start() took {:?}", started.elapsed());
    let alice = user_dn("alice");

    assert_bound(
        &slapd.whoami(&slapd.ldap_url, &alice, "alice-pass", false),
        &alice,
    );
    assert_bound(
        &slapd.whoami(&slapd.ldap_url, &alice, "alice-pass", true),
        &alice,
    );
    assert_bound(
        &slapd.whoami(&slapd.ldaps_url, &alice, "alice-pass", false),
        &alice,
    );

    // Wrong password, unknown user: invalidCredentials, on every transport.
    for (url, starttls) in [
        (&slapd.ldap_url, false),
        (&slapd.ldap_url, true),
        (&slapd.ldaps_url, false),
    ] {
        let out = slapd.whoami(url, &alice, "wrong-pass", starttls);
        assert_eq!(rc(&out), 49, "{}", text(&out));
    }
    let out = slapd.whoami(&slapd.ldap_url, &user_dn("nobody"), "x", false);
    assert_eq!(rc(&out), 49, "{}", text(&out));

    // Every account of the tree binds with its documented password.
    let mut accounts: Vec<(String, String)> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|u| (user_dn(u), format!("{u}-pass")))
        .collect();
    accounts.extend(
        ["erin", "frank", "grace", "heidi"]
            .iter()
            .map(|u| (ad_user_dn(u), format!("{u}-pass"))),
    );
    accounts.push((SERVICE_DN.into(), SERVICE_PASSWORD.into()));
    accounts.push((READONLY_DN.into(), READONLY_PASSWORD.into()));
    for (dn, password) in &accounts {
        assert_bound(&slapd.whoami(&slapd.ldaps_url, dn, password, false), dn);
    }
    // Passwords are stored hashed: `{SSHA}` is "e1NTSEF9" in base64, and ldapsearch
    // shows userPassword in base64.
    let stored = slapd.search("(uid=alice)", &["userPassword"]);
    assert_eq!(
        stored.matches("userPassword:: e1NTSEF9").count(),
        1,
        "{stored}"
    );
}

#[test]
fn tls_is_verified_against_the_test_ca_only() {
    let slapd = Slapd::start();
    let alice = user_dn("alice");
    let system_cas = "/etc/ssl/certs/ca-certificates.crt";
    for args in [
        vec!["-x", "-H", &slapd.ldaps_url],
        vec!["-x", "-ZZ", "-H", &slapd.ldap_url],
    ] {
        let mut args = args;
        args.extend(["-D", &alice, "-w", "alice-pass", "-o", "nettimeout=5"]);
        let out = std::process::Command::new("ldapwhoami")
            .args(&args)
            .env("LDAPTLS_CACERT", system_cas)
            .env("LDAPTLS_REQCERT", "demand")
            .output()
            .expect("ldapwhoami");
        assert!(
            !out.status.success(),
            "a server certificate from the test CA must not verify against {system_cas}"
        );
    }
    let pem = std::fs::read_to_string(&slapd.ca_file).expect("CA file");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
}

#[test]
fn access_rules_protect_the_token_attribute_and_hide_the_tree() {
    let slapd = Slapd::start();
    let alice = user_dn("alice");
    let value = "tollgate$1$QUJD+/9kZWY=";

    let out = replace_as(
        &slapd,
        (SERVICE_DN, SERVICE_PASSWORD),
        &alice,
        "telexNumber",
        value,
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(values(&slapd, &alice, "telexNumber"), [value]);

    // The read-only account and the user herself may read it but not write it.
    for (who, password) in [(READONLY_DN, READONLY_PASSWORD), (&*alice, "alice-pass")] {
        let out = replace_as(
            &slapd,
            (who, password),
            &alice,
            "telexNumber",
            "tollgate$1$WFla",
        );
        assert_eq!(rc(&out), 50, "{who}: {}", text(&out));
        assert!(text(&out).contains("Insufficient access"), "{}", text(&out));
        let out = slapd.tool(
            "ldapsearch",
            &[
                "-x",
                "-LLL",
                "-H",
                &slapd.ldap_url,
                "-D",
                who,
                "-w",
                password,
                "-b",
                &alice,
                "-s",
                "base",
                "telexNumber",
            ],
            None,
        );
        assert_eq!(rc(&out), 0, "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("telexNumber: {value}")),
            "{who} reads the token attribute: {}",
            text(&out)
        );
    }
    assert_eq!(values(&slapd, &alice, "telexNumber"), [value]);

    // The service account may not write anything else.
    let out = replace_as(
        &slapd,
        (SERVICE_DN, SERVICE_PASSWORD),
        &alice,
        "mobile",
        "+44 7700 900999",
    );
    assert_eq!(rc(&out), 50, "{}", text(&out));

    // Bound accounts read the tree but never a password.
    let out = slapd.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &slapd.ldap_url,
            "-D",
            SERVICE_DN,
            "-w",
            SERVICE_PASSWORD,
            "-b",
            BASE_DN,
            "(uid=alice)",
            "mail",
            "mobile",
            "userPassword",
        ],
        None,
    );
    let found = text(&out);
    assert_eq!(rc(&out), 0, "{found}");
    assert!(found.contains("mail: alice@example.com"), "{found}");
    assert!(found.contains("mobile: +44 7700 900123"), "{found}");
    assert!(!found.contains("userPassword"), "{found}");

    // Anonymous finds nothing at all.
    let out = slapd.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &slapd.ldap_url,
            "-b",
            BASE_DN,
            "(objectClass=*)",
        ],
        None,
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("dn:"),
        "anonymous search returned entries: {}",
        text(&out)
    );
}

#[test]
fn telex_number_syntax_takes_tollgate_values_and_replace_only() {
    let slapd = Slapd::start();
    let dave = user_dn("dave");
    let service = (SERVICE_DN, SERVICE_PASSWORD);

    let long = format!("tollgate$1${}", "QUJD+/9kZWY=".repeat(1000));
    let accepted = [
        "tollgate$1$QUJD+/9kZWY=",
        "tollgate$1$abcXYZ019+/=",
        "TOLLGATE$2$A",
        "tollgate$1$a'()+,-./:=? b",
        "abc",
        "a$b",
        "a$b$c$d",
        long.as_str(),
    ];
    for value in accepted {
        let out = replace_as(&slapd, service, &dave, "telexNumber", value);
        assert_eq!(rc(&out), 0, "{value:?} refused: {}", text(&out));
        assert_eq!(values(&slapd, &dave, "telexNumber"), [value]);
    }

    let refused = [
        "$$",
        "a$$c",
        "a$1$",
        "$a",
        "tollgate$1$a_b",
        "tollgate$1$a@b",
        "tollgate$1$a!b",
        "tollgate$1$a*b",
        "tollgate$1$a&b",
        "tollgate$1$a#b",
        "tollgate$1$a%b",
        "tollgate$1$a;b",
        "tollgate$1$a\\b",
        "tollgate$1$é",
    ];
    let current = values(&slapd, &dave, "telexNumber");
    for value in refused {
        let out = replace_as(&slapd, service, &dave, "telexNumber", value);
        assert_eq!(rc(&out), 21, "{value:?} accepted: {}", text(&out));
        assert!(text(&out).contains("invalid per syntax"), "{}", text(&out));
    }
    assert_eq!(values(&slapd, &dave, "telexNumber"), current);

    // No equality rule: only replace works. Deleting one value, adding a second one and
    // compare are inappropriate matching (18); a presence filter works.
    let stored = "tollgate$1$QUJD+/9kZWY=";
    assert_eq!(
        rc(&replace_as(&slapd, service, &dave, "telexNumber", stored)),
        0
    );
    let swap = format!(
        "dn: {dave}\nchangetype: modify\ndelete: telexNumber\ntelexNumber: {stored}\n-\n\
         add: telexNumber\ntelexNumber: tollgate$1$RUZH\n"
    );
    let out = modify_as(&slapd, service, &swap);
    assert_eq!(rc(&out), 18, "{}", text(&out));
    let add =
        format!("dn: {dave}\nchangetype: modify\nadd: telexNumber\ntelexNumber: tollgate$1$RUZH\n");
    let out = modify_as(&slapd, service, &add);
    assert_eq!(rc(&out), 18, "{}", text(&out));
    assert_eq!(values(&slapd, &dave, "telexNumber"), [stored]);
    assert_eq!(slapd.count("(telexNumber=*)"), 1);
    assert_eq!(slapd.count(&format!("(telexNumber={stored})")), 0);
    // Deleting the whole attribute works.
    let out = modify_as(
        &slapd,
        service,
        &format!("dn: {dave}\nchangetype: modify\ndelete: telexNumber\n"),
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert!(values(&slapd, &dave, "telexNumber").is_empty());
}

#[test]
fn active_directory_shaped_entries_and_their_filters() {
    let slapd = Slapd::start();

    let erin = slapd.search("(sAMAccountName=erin)", &["*"]);
    assert!(
        erin.starts_with(&format!("dn: {}\n", ad_user_dn("erin"))),
        "{erin}"
    );
    for line in [
        format!("memberOf: {VPN_GROUP_DN}"),
        "userAccountControl: 512".into(),
        "userPrincipalName: erin@corp.example.com".into(),
        "sAMAccountName: erin".into(),
        "mail: erin@corp.example.com".into(),
        "mobile: +44 7700 900131".into(),
    ] {
        assert!(erin.lines().any(|l| l == line), "{line:?} missing:\n{erin}");
    }

    // AD matches these names without regard to case; so does the harness's schema.
    assert_eq!(slapd.count("(sAMAccountName=ERIN)"), 1);
    assert_eq!(slapd.count("(userPrincipalName=Erin@Corp.Example.com)"), 1);
    assert_eq!(
        slapd.count(&format!("(memberOf={})", VPN_GROUP_DN.to_uppercase())),
        4
    );
    assert_eq!(slapd.count("(&(objectClass=user)(sAMAccountName=*))"), 4);

    // The account state filters an AD client uses.
    let disabled = slapd.search("(userAccountControl:1.2.840.113556.1.4.803:=2)", &["1.1"]);
    assert_eq!(disabled.trim(), format!("dn: {}", ad_user_dn("frank")));
    let enabled =
        slapd.count("(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))");
    assert_eq!(enabled, 3);
    let expired = slapd.search(
        "(&(accountExpires>=1)(accountExpires<=133500000000000000))",
        &["accountExpires"],
    );
    assert!(expired.contains(&ad_user_dn("grace")), "{expired}");
    assert!(
        expired.contains(&format!("accountExpires: {EXPIRED_FILETIME}")),
        "{expired}"
    );
    assert_eq!(expired.matches("dn:").count(), 1, "{expired}");
    let locked = slapd.search("(lockoutTime>=1)", &["lockoutTime"]);
    assert!(locked.contains(&ad_user_dn("heidi")), "{locked}");
    assert!(
        locked.contains(&format!("lockoutTime: {LOCKOUT_FILETIME}")),
        "{locked}"
    );
    assert_eq!(locked.matches("dn:").count(), 1, "{locked}");

    // An AD user binds with its DN; the AD users live under their own OU.
    assert_bound(
        &slapd.whoami(&slapd.ldaps_url, &ad_user_dn("heidi"), "heidi-pass", false),
        &ad_user_dn("heidi"),
    );
    let under = slapd.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &slapd.ldap_url,
            "-D",
            READONLY_DN,
            "-w",
            READONLY_PASSWORD,
            "-b",
            AD_PEOPLE_DN,
            "(sAMAccountName=grace)",
            "userAccountControl",
            "memberOf",
        ],
        None,
    );
    assert_eq!(rc(&under), 0, "{}", text(&under));
    assert!(
        text(&under).contains("userAccountControl: 512"),
        "{}",
        text(&under)
    );
}

#[test]
fn groups_hold_the_documented_members() {
    let slapd = Slapd::start();
    let vpn = values(&slapd, VPN_GROUP_DN, "member");
    let mut expected: Vec<String> = ["alice", "carol", "dave"].map(user_dn).to_vec();
    expected.extend(["erin", "frank", "grace", "heidi"].map(ad_user_dn));
    assert_eq!(vpn, expected);
    assert_eq!(
        values(&slapd, PASSWORD_ONLY_GROUP_DN, "member"),
        [user_dn("carol")]
    );
    // bob is in no group.
    assert_eq!(slapd.count(&format!("(member={})", user_dn("bob"))), 0);
    assert_eq!(slapd.count(&format!("(member={})", user_dn("carol"))), 2);
    let alice = slapd.search("(uid=alice)", &["cn", "sn", "mail", "mobile"]);
    for line in [
        "cn: Alice Archer",
        "mail: alice@example.com",
        "mobile: +44 7700 900123",
    ] {
        assert!(
            alice.lines().any(|l| l == line),
            "{line:?} missing:\n{alice}"
        );
    }
}

#[test]
fn a_killed_slapd_restarts_on_the_same_ports_and_data() {
    let mut slapd = Slapd::start();
    let (ldap_url, ldaps_url) = (slapd.ldap_url.clone(), slapd.ldaps_url.clone());
    let first_pid = slapd.pid();
    let alice = user_dn("alice");
    slapd.modify(&format!(
        "dn: {alice}\nchangetype: modify\nreplace: telexNumber\ntelexNumber: tollgate$1$S0VQVA==\n"
    ));

    slapd.kill();
    let port: u16 = ldap_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a killed slapd still answers"
    );
    let out = slapd.whoami(&ldap_url, &alice, "alice-pass", false);
    assert_ne!(rc(&out), 0, "bind to a killed slapd: {}", text(&out));

    slapd.restart();
    assert_ne!(slapd.pid(), first_pid);
    assert_eq!((&slapd.ldap_url, &slapd.ldaps_url), (&ldap_url, &ldaps_url));
    assert_bound(&slapd.whoami(&ldap_url, &alice, "alice-pass", true), &alice);
    assert_bound(
        &slapd.whoami(&ldaps_url, &alice, "alice-pass", false),
        &alice,
    );
    assert_eq!(
        values(&slapd, &alice, "telexNumber"),
        ["tollgate$1$S0VQVA=="]
    );
}

#[test]
fn load_users_are_people_in_the_vpn_group() {
    let started = Instant::now();
    let slapd = Slapd::start_with_load_users(1000);
    eprintln!(
        "Slapd::start_with_load_users(1000) took {:?}",
        started.elapsed()
    );
    assert_eq!(slapd.count("(uid=load*)"), 1000);
    assert_eq!(
        slapd.count("(&(uid=load*)(objectClass=inetOrgPerson))"),
        1000
    );
    let members = values(&slapd, VPN_GROUP_DN, "member");
    assert_eq!(members.len(), 7 + 1000);
    assert!(members.contains(&user_dn(&load_uid(0))));
    assert!(members.contains(&user_dn(&load_uid(999))));
    assert!(!members.contains(&user_dn(&load_uid(1000))));
    for i in [0, 999] {
        let dn = format!("uid={},{PEOPLE_DN}", load_uid(i));
        assert_bound(
            &slapd.whoami(&slapd.ldap_url, &dn, LOAD_PASSWORD, false),
            &dn,
        );
    }
    // The service account sees all of them in one search (no size limit for it).
    let out = slapd.tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &slapd.ldap_url,
            "-D",
            SERVICE_DN,
            "-w",
            SERVICE_PASSWORD,
            "-b",
            PEOPLE_DN,
            "(uid=load*)",
            "1.1",
        ],
        None,
    );
    assert_eq!(rc(&out), 0, "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).matches("dn:").count(),
        1000
    );
}
