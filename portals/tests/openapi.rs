//! `openapi.yaml` documents every endpoint and every status the API answers it with. The
//! statuses listed here are the ones the handlers can return; adding one to a handler without
//! documenting it should fail this test when the list is updated with the handler.

/// (path, method, statuses the implementation returns).
const ENDPOINTS: &[(&str, &str, &[&str])] = &[
    ("/v1/health", "get", &["200", "405"]),
    (
        "/v1/devices",
        "post",
        &["201", "400", "401", "405", "408", "410", "413", "500"],
    ),
    (
        "/v1/challenges",
        "get",
        &["200", "401", "405", "408", "413", "429", "503"],
    ),
    (
        "/v1/challenges/{id}",
        "post",
        &[
            "200", "400", "401", "404", "405", "408", "409", "413", "422", "429", "503",
        ],
    ),
];

/// The text of one path item of the `paths:` section.
fn path_section<'a>(spec: &'a str, path: &str) -> &'a str {
    let paths = &spec[spec.find("\npaths:\n").expect("a paths section")..];
    let paths = &paths[..paths.find("\ncomponents:\n").unwrap_or(paths.len())];
    let start = paths
        .find(&format!("\n  {path}:\n"))
        .unwrap_or_else(|| panic!("{path} is not documented"));
    let rest = &paths[start + 1..];
    let end = rest[1..].find("\n  /").map(|i| i + 2).unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_endpoint_and_status_is_documented() {
    let spec = include_str!("../openapi.yaml");
    assert!(spec.starts_with("openapi: 3.1."));
    for (path, method, statuses) in ENDPOINTS {
        let section = path_section(spec, path);
        assert!(
            section.contains(&format!("\n    {method}:\n")),
            "{method} {path} is not documented"
        );
        for status in *statuses {
            assert!(
                section.contains(&format!("\n        \"{status}\":\n")),
                "{method} {path}: status {status} is not documented"
            );
        }
    }
}
