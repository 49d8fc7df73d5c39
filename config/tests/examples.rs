//! Every shipped example configuration parses, and a copy with a bogus key is refused.

use std::path::PathBuf;

use tollgate_config::Config;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no example configuration in {}",
        dir.display()
    );
    files
}

#[test]
fn every_example_configuration_is_valid() {
    for path in examples() {
        Config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn every_example_with_a_bogus_key_is_refused() {
    for path in examples() {
        let text = std::fs::read_to_string(&path).unwrap();
        // A misspelt key in the first table of the file.
        let bogus = text.replacen("[radius]\n", "[radius]\nlistn = []\n", 1);
        assert_ne!(bogus, text, "{} has no [radius] table", path.display());
        let err = Config::parse(&bogus).expect_err("bogus key accepted");
        assert_eq!(err.key_path(), Some("radius.listn"), "{}", path.display());
    }
}
