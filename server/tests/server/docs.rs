//! The docs promise tests: SECURITY.md points every claim to the test that
//! proves it, and every `[P-n]` rule of PROTOCOL.md is named by a test.
//! These check both, so a renamed or deleted test cannot leave a claim
//! pointing at nothing.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively (skipping build output).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() && !path.ends_with("target") {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// A file of the repository, by its path from the top.
fn read(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

/// All the Rust source under the given folders (paths from the top).
fn sources(dirs: &[&str]) -> String {
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir), &mut files);
    }
    files.iter().map(|file| fs::read_to_string(file).unwrap()).collect()
}

#[test]
fn every_test_security_md_names_exists() {
    let security = read("SECURITY.md");
    let code = sources(&["common", "server", "client"]);
    // Test names are the backticked snake_case words with three or more parts.
    let names: Vec<&str> = security
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| {
            word.split('_').count() >= 3
                && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(names.len() >= 30, "expected SECURITY.md to name its tests; found {names:?}");
    let missing: Vec<&&str> = names.iter().filter(|name| !code.contains(&format!("fn {name}("))).collect();
    assert!(missing.is_empty(), "SECURITY.md names tests that do not exist: {missing:?}");
}

#[test]
fn every_rule_of_protocol_md_is_named_by_a_test() {
    let protocol = read("docs/PROTOCOL.md");
    let tests = sources(&["common/tests", "server/tests", "client/tests"]);
    let rules: Vec<&str> = protocol.split("[P-").skip(1).filter_map(|rest| rest.split(']').next()).collect();
    assert!(rules.len() >= 26, "expected numbered rules in PROTOCOL.md, found {rules:?}");
    let untested: Vec<&&str> = rules.iter().filter(|n| !tests.contains(&format!("[P-{n}]"))).collect();
    assert!(untested.is_empty(), "PROTOCOL.md rules no test names: {untested:?}");
}

#[test]
fn the_security_marker_list_matches_the_code() {
    let security = read("SECURITY.md");
    let section = security.split("## The audit checklist").nth(1).expect("SECURITY.md has an audit checklist");
    let mut listed: Vec<(String, String)> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|row| row.split_once("` | "))
        .map(|(file, text)| (file.to_string(), text.trim_end_matches('|').trim().to_string()))
        .collect();
    let mut files = Vec::new();
    for dir in ["common/src", "server/src", "client/src"] {
        rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir), &mut files);
    }
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut in_code = Vec::new();
    for file in &files {
        let name = file.strip_prefix(&top).unwrap().to_string_lossy().replace('\\', "/");
        for line in fs::read_to_string(file).unwrap().lines() {
            if let Some((_, text)) = line.split_once("// SECURITY: ") {
                in_code.push((name.clone(), text.trim().to_string()));
            }
        }
    }
    listed.sort();
    in_code.sort();
    assert!(in_code.len() >= 15, "expected SECURITY markers in the code, found {in_code:?}");
    let missing: Vec<_> = in_code.iter().filter(|marker| !listed.contains(marker)).collect();
    let stale: Vec<_> = listed.iter().filter(|marker| !in_code.contains(marker)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "SECURITY.md's checklist is out of date:\nnot listed: {missing:#?}\nno longer in the code: {stale:#?}"
    );
}
