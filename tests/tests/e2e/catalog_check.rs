//! `bglass catalog check` on the shipped catalog and on every malformed catalog.

use bglass_tests::{assert_no_panic, command, root, run};

#[test]
fn shipped_catalog_lists_exactly_18_services() {
    let home = tempfile::tempdir().unwrap();
    let out = run(command("bglass", home.path()).args(["catalog", "check", "services.toml"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(rows.len(), 18, "{}", out.stdout);
    assert!(out.stdout.contains("services.toml: valid, 18 services"));

    let json =
        run(command("bglass", home.path()).args(["catalog", "check", "services.toml", "--json"]));
    assert_eq!(json.code, Some(0));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["services"].as_array().unwrap().len(), 18);
    assert_eq!(doc["valid"], true);
}

#[test]
fn every_malformed_catalog_fails_with_file_line_column_and_rule() {
    let home = tempfile::tempdir().unwrap();
    let dir = root().join("bglass-core/testdata/catalog/bad");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let out = run(command("bglass", home.path())
            .args(["catalog", "check"])
            .arg(&path));
        assert_no_panic(&out);
        assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "{name}: nothing listed for an invalid catalog"
        );
        // "error: <path>:<line>:<col>: <rule>"
        let first = out.stderr.lines().next().unwrap_or_default();
        let rest = first
            .strip_prefix(&format!("error: {}:", path.display()))
            .unwrap_or_else(|| panic!("{name}: {first}"));
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().unwrap();
        let col: usize = parts.next().unwrap().parse().unwrap();
        let rule = parts.next().unwrap().trim();
        assert!(line >= 1 && col >= 1 && !rule.is_empty(), "{name}: {first}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} malformed catalogs");
}

#[test]
fn oversized_catalog_is_refused_before_parsing() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("huge.toml");
    // 1 MiB of comments: valid TOML, refused on size alone.
    std::fs::write(&path, "# x\n".repeat(256 * 1024)).unwrap();
    let out = run(command("bglass", home.path())
        .args(["catalog", "check"])
        .arg(&path));
    assert_no_panic(&out);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(
            "file is too large: 1048576 bytes, limit 262144 bytes (refused before parsing)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_catalog_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = run(command("bglass", home.path()).args(["catalog", "check", "no-such-file.toml"]));
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .starts_with("error: no-such-file.toml: cannot read file:"),
        "{}",
        out.stderr
    );
    // No position to point at: the hint does not claim one.
    assert!(!out.stderr.contains("position"), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: check the path"),
        "{}",
        out.stderr
    );
}
