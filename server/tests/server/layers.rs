//! The arrows between modules point one way. These tests read each crate's
//! sources, list every `crate::` (and, in a folder module, `super::`) edge
//! between its modules, and fail on a cycle, printing the edges; for the
//! server they also check the layers that ARCHITECTURE.md draws.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module → the modules it names, for the crate sources under `src` (a
/// path from the top of the repository). A module is a file's path under
/// `src` without `.rs` (`gui/app`; `gui/mod.rs` is `gui`); `lib` and `main`
/// are the roots, and a `crate::` path to anything that is not a module
/// (an item of the root, or a re-export) is an edge to the root.
fn edges(src: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(src);
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for path in fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    let name_of = |path: &Path| {
        let relative = path.strip_prefix(&root).unwrap().with_extension("");
        let name = relative.to_string_lossy().replace('\\', "/");
        name.strip_suffix("/mod").map(str::to_string).unwrap_or(name)
    };
    let modules: BTreeSet<String> = files.iter().map(|path| name_of(path)).collect();
    let mut graph = BTreeMap::new();
    for path in &files {
        let module = name_of(path);
        let text = fs::read_to_string(path).unwrap();
        // Unit tests may use anything; comments are not code.
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let parent = module.rsplit_once('/').map(|(parent, _)| parent.to_string());
        let mut targets = BTreeSet::new();
        for (prefix, base) in [("crate::", None), ("super::", parent.clone())] {
            if prefix == "super::" && base.is_none() {
                continue;
            }
            for rest in code.split(prefix).skip(1) {
                // `crate::a::b`, or `crate::{a, b::c}`: the first segment of each path.
                let paths: Vec<&str> = match rest.strip_prefix('{') {
                    Some(inner) => inner.split('}').next().unwrap_or_default().split(',').collect(),
                    None => vec![rest],
                };
                for path in paths {
                    let first: String =
                        path.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    let full = match &base {
                        Some(base) => format!("{base}/{first}"),
                        None => first,
                    };
                    let target = if modules.contains(&full) {
                        full
                    } else if base.is_some() {
                        base.clone().unwrap_or_default()
                    } else {
                        "lib".to_string()
                    };
                    if target != module && !target.is_empty() {
                        targets.insert(target);
                    }
                }
            }
        }
        graph.insert(module, targets);
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn show(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    graph
        .iter()
        .map(|(from, to)| format!("  {from} → {}\n", to.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect()
}

#[test]
fn no_crate_has_an_import_cycle() {
    for src in ["common/src", "server/src", "client/src"] {
        let graph = edges(src);
        assert!(graph.len() >= 8, "{src}: found only {graph:?}");
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{src}: import cycle {}\nall edges:\n{}", cycle.join(" → "), show(&graph));
        }
    }
}

#[test]
fn the_server_layers_point_down() {
    let graph = edges("server/src");
    let uses = |module: &str| graph.get(module).cloned().unwrap_or_default();
    let set = |names: &[&str]| names.iter().map(|name| name.to_string()).collect::<BTreeSet<_>>();
    for leaf in ["journal", "mail", "pool", "presence", "slots", "config", "trace"] {
        assert!(
            uses(leaf).is_empty(),
            "{leaf} uses {:?}; it must use nothing of the server\n{}",
            uses(leaf),
            show(&graph)
        );
    }
    assert!(uses("state").is_subset(&set(&["mail", "presence", "journal"])), "state: {:?}", uses("state"));
    let delivery = set(&["state", "pool", "config", "trace"]);
    assert!(uses("delivery").is_subset(&delivery), "delivery: {:?}", uses("delivery"));
    assert!(!uses("state").contains("delivery") && !uses("journal").contains("state"));
    for module in graph.keys().filter(|module| *module != "main") {
        assert!(!uses(module).contains("lib"), "{module} reaches into lib.rs; name the module instead");
    }
}
