//! The SRE artefacts in `dashboards/`: the Prometheus rules pass `promtool` (syntax and
//! their unit tests), the Grafana dashboard is well formed, and every metric either names
//! is really exported by a running server.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tollgate_tests::{
    free_tcp_port, hotp_code, http_get, login, metric, radclient, require, Node, RawClient, SECRET,
};

/// Metrics used by the rules or the dashboard that no traffic from a test can produce;
/// the test checks they are at least declared in `actors/src/metrics.rs`.
const DECLARED_ONLY: &[(&str, &str)] = &[
    // Counted only when writing runtime state to SQLite fails (a full or read-only disk),
    // which a test cannot cause without breaking the data directory under the server.
    (
        "tollgate_store_errors_total",
        "needs a failing SQLite write (full or read-only disk)",
    ),
];

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("dashboards")
}

fn read(name: &str) -> String {
    let path = dashboards_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn promtool(args: &[&str]) {
    require("promtool", "prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dashboards_dir())
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check() {
    promtool(&["check", "rules", "alerts.yml"]);
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", "alerts_test.yml"]);
}

#[test]
fn every_alert_has_a_severity_a_summary_and_a_description() {
    // promtool does not insist on labels or annotations; the on-call runbook does. The
    // rules file is small and regular enough to check alert by alert as text.
    let rules = read("alerts.yml");
    let alerts: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(alerts.len() >= 14, "expected the fourteen alerts at least");
    for alert in alerts {
        let name = alert.lines().next().unwrap_or_default();
        for key in ["severity: ", "summary: ", "description: "] {
            assert!(alert.contains(key), "alert {name} has no `{key}`");
        }
    }
}

/// Every panel, the ones nested in collapsed rows included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

#[test]
fn the_dashboard_is_well_formed() {
    let dashboard: Value =
        serde_json::from_str(&read("tollgate.json")).expect("tollgate.json is JSON");
    assert!(dashboard["schemaVersion"].as_u64().unwrap_or(0) >= 36);
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));

    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` variable"))
    };
    let datasource = var("datasource");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let client = var("client");
    assert_eq!(client["type"], "query");
    assert_eq!(client["datasource"]["uid"], "${datasource}");
    assert_eq!(
        client["query"]["query"],
        "label_values(tollgate_radius_replies_total, client)"
    );

    let mut ids = BTreeSet::new();
    let mut repeated = false;
    for panel in all_panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {panel}");
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate id at {title}"
        );
        if panel["type"] == "row" {
            repeated |= panel["repeat"] == "client";
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {title} does not use the datasource variable"
        );
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title} has no target");
        for target in targets {
            assert!(
                target["expr"]
                    .as_str()
                    .is_some_and(|e| e.contains("tollgate_")),
                "panel {title} has a target without a Tollgate query: {target}"
            );
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
        }
    }
    assert!(repeated, "no row repeated by client");
}

/// Metric names in a text: every `tollgate_[a-z_]+`, with the histogram series suffixes
/// taken off so that they name the metric the server declares.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tollgate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let mut name = &tail[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            name = name.strip_suffix(suffix).unwrap_or(name);
        }
        names.insert(name.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn metric_names_are_extracted_without_histogram_suffixes() {
    let names = metric_names(
        "rate(tollgate_radius_request_duration_seconds_bucket{le=\"1\"}[5m]) tollgate_shed_total>0 job=\"tollgate\"",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "tollgate_radius_request_duration_seconds",
            "tollgate_shed_total"
        ]
    );
}

#[test]
fn every_metric_of_the_rules_and_the_dashboard_is_exported() {
    let mut used = metric_names(&read("tollgate.json"));
    used.extend(metric_names(&read("alerts.yml")));
    assert!(used.len() >= 10, "{used:?}");

    // The declared-only names must at least be constants of the metrics module.
    let declared = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../actors/src/metrics.rs"),
    )
    .expect("actors/src/metrics.rs");
    for (name, why) in DECLARED_ONLY {
        assert!(
            declared.contains(&format!("&str = \"{name}\";")),
            "{name} ({why}) is not declared in actors/src/metrics.rs"
        );
    }

    // A challenge client with one session slot and a lockout after two failures, so that
    // a handful of logins produces every series; a directory domain whose only server is a
    // closed loopback port (connections open on first use, so the server starts); an SMS
    // gateway writing to a file, and the day-code batch due at once for one preload user.
    let port = free_tcp_port();
    let mut node = Node::new(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[audit]\nfile = \"{{dir}}/audit.jsonl\"\n\
         [login]\nmax_sessions = 1\n[lockout]\nthreshold = 2\n\
         [delivery.preload]\nsend_at = \"00:00\"\n\
         [[ldap]]\ndomain = \"corp.example\"\nservers = [\"ldaps://127.0.0.1:1\"]\n\
         bind_dn = \"cn=tollgate,dc=corp,dc=example\"\nbind_password = \"unused\"\n\
         base_dn = \"dc=corp,dc=example\"\n\
         [[gateway]]\nname = \"sms-file\"\nchannel = \"sms\"\ntype = \"file\"\n\
         path = \"{{dir}}/sms.log\"\n"
    ));
    node.add_client("nas1", "challenge", true);
    node.add_hotp_user("alice", "Secret123");
    node.add_hotp_user("bob", "Secret456");
    node.add_hotp_user("carol", "Secret789");
    node.ok(
        &["user", "add", "dora", "--password-stdin"],
        Some("Secret321\n"),
    );
    node.ok(
        &[
            "user",
            "set",
            "dora",
            "--delivery",
            "preload-sms",
            "--mobile",
            "+447700900123",
        ],
        None,
    );
    node.start();
    let addr = node.radius();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // Challenge: alice's session takes the only slot, so bob's login is shed.
    let first = login(addr, "alice", "Secret123");
    assert!(first.is("Access-Challenge"), "{}", first.output);
    let state = first.attr("State").expect("State").to_owned();
    let shed = login(addr, "bob", "Secret456");
    assert!(shed.is("Access-Reject"), "{}", shed.output);
    // Accept: alice answers her challenge.
    let answer = radclient(
        addr,
        SECRET,
        "auth",
        &format!(
            "User-Name = \"alice\", User-Password = \"{}\", State = {state}, Message-Authenticator = 0x00\n",
            hotp_code(0)
        ),
        1,
        3,
    );
    assert!(answer.is("Access-Accept"), "{}", answer.output);
    // Reject and lockout: two wrong passwords for carol.
    for _ in 0..2 {
        assert!(login(addr, "carol", "wrong").is("Access-Reject"));
    }
    // Drop: a request signed with another secret.
    let dropped = radclient(
        addr,
        "not-the-secret",
        "auth",
        "User-Name = \"alice\", User-Password = \"x\", Message-Authenticator = 0x00\n",
        1,
        1,
    );
    assert!(dropped.code.is_none(), "{}", dropped.output);
    // Duplicate: the same request twice gets the cached reply the second time.
    let raw = RawClient::new(addr);
    let request = RawClient::access_request(7, [7u8; 16], SECRET, "nobody", "x", &[], true);
    for _ in 0..2 {
        raw.send(&request);
        assert!(
            raw.recv().is_some(),
            "no reply to the duplicate test request"
        );
    }

    // Directory: the only server refuses the connection, so the search fails, the server
    // is marked dead and the login is refused as directory_unavailable.
    let directory = login(addr, "someone@corp.example", "Secret123");
    assert!(directory.is("Access-Reject"), "{}", directory.output);

    let mut text = String::new();
    let complete = Node::eventually(Duration::from_secs(10), || {
        text = http_get(metrics_addr, "/metrics").unwrap_or_default();
        metric(&text, "tollgate_lockouts_total").is_some()
            && metric(&text, "tollgate_radius_duplicates_total{client=\"nas1\"}")
                .is_some_and(|n| n >= 1.0)
            // The day code went out through the file gateway.
            && metric(
                &text,
                "tollgate_delivery_sent_total{channel=\"sms\",gateway=\"sms-file\"}",
            )
            .is_some_and(|n| n >= 1.0)
    });
    assert!(complete, "{text}\n{}", node.log());
    for (series, at_least) in [
        ("tollgate_shed_total{gate=\"sessions\"}", 1.0),
        ("tollgate_lockouts_total", 1.0),
        (
            "tollgate_radius_replies_total{client=\"nas1\",mode=\"challenge\",result=\"challenge\"}",
            1.0,
        ),
        (
            "tollgate_radius_replies_total{client=\"nas1\",mode=\"challenge\",result=\"accept\"}",
            1.0,
        ),
        (
            "tollgate_radius_rejects_total{client=\"nas1\",reason=\"sessions_full\"}",
            1.0,
        ),
        (
            "tollgate_radius_dropped_total{client=\"nas1\",reason=\"bad_message_authenticator\"}",
            1.0,
        ),
        ("tollgate_directory_users", 3.0),
        (
            "tollgate_radius_rejects_total{client=\"nas1\",reason=\"directory_unavailable\"}",
            1.0,
        ),
        (
            "tollgate_ldap_errors_total{domain=\"corp.example\",role=\"search\"}",
            1.0,
        ),
        ("tollgate_ldap_failovers_total{domain=\"corp.example\"}", 1.0),
        (
            "tollgate_ldap_operation_duration_seconds_count{domain=\"corp.example\",role=\"search\"}",
            1.0,
        ),
        ("tollgate_daycodes_issued_total{reason=\"batch\"}", 1.0),
        ("tollgate_delivery_duration_seconds_count{channel=\"sms\"}", 1.0),
    ] {
        assert!(
            metric(&text, series).is_some_and(|n| n >= at_least),
            "{series} should be at least {at_least} in\n{text}"
        );
    }
    // Registered at start-up at zero: series that this traffic never touched.
    for series in [
        "tollgate_ldap_errors_total{domain=\"corp.example\",role=\"bind\"}",
        "tollgate_delivery_retried_total{channel=\"sms\"}",
        "tollgate_delivery_failed_total{channel=\"sms\"}",
        "tollgate_delivery_throttled_total{channel=\"email\"}",
        "tollgate_delivery_dead_letters",
    ] {
        assert_eq!(metric(&text, series), Some(0.0), "{series} in\n{text}");
    }
    assert!(
        metric(&text, "tollgate_delivery_queued").is_some(),
        "tollgate_delivery_queued in\n{text}"
    );
    assert!(
        std::fs::read_to_string(node.path().join("sms.log"))
            .is_ok_and(|log| log.contains("+447700900123")),
        "the day code is not in the gateway's file"
    );

    let exported = |name: &str| text.contains(&format!("# TYPE {name} "));
    let declared_only: BTreeSet<&str> = DECLARED_ONLY.iter().map(|(n, _)| *n).collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !declared_only.contains(name.as_str()) && !exported(name))
        .collect();
    assert!(
        missing.is_empty(),
        "used in dashboards/ but not exported by the server: {missing:?}\n{text}"
    );
    // A declared-only name that the traffic did produce belongs with the others.
    for name in &declared_only {
        assert!(
            !exported(name),
            "{name} is exported: take it off DECLARED_ONLY"
        );
    }
}
