//! The crate's layering, checked on its source: data flows protocol → statements → execution →
//! storage, with the domain model at the bottom, and no module reaches up into one that calls it.

use std::collections::BTreeSet;
use std::path::Path;

/// (module, modules of the crate it must never name)
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("model", &["*"]),
    ("durable", &["*"]),
    (
        "sql",
        &["exec", "storage", "server", "backup", "jobs", "config"],
    ),
    (
        "storage",
        &[
            "exec", "jobs", "server", "backup", "sql", "config", "cluster",
        ],
    ),
    // The Raft binding sits on storage, below execution and start-up.
    (
        "cluster",
        &["exec", "jobs", "server", "backup", "sql", "node"],
    ),
    ("jobs", &["exec", "server", "sql"]),
    ("backup", &["exec", "server", "sql"]),
    ("exec", &["server", "node"]),
    ("server", &["node", "storage", "backup", "jobs"]),
];

/// The top-level crate modules a source text names through `crate::`, including inside
/// `use crate::{a::X, b::Y}` groups.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            let mut depth = 0;
            let mut start = 0;
            let inner = &group[..end];
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_segment(&inner[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            found.insert(first_segment(&inner[start..]));
        } else {
            found.insert(first_segment(rest));
        }
    }
    found.remove("");
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files of module `name`: `src/<name>/**` or `src/<name>.rs`.
fn module_files(src: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let dir = src.join(name);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    let file = src.join(format!("{name}.rs"));
    if file.is_file() {
        files.push(file);
    }
    assert!(!files.is_empty(), "no module {name} in src/");
    files
}

#[test]
fn no_module_names_a_layer_above_it() {
    // Cargo's run-time path: a binary shared between clones must read this checkout's sources.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or(env!("CARGO_MANIFEST_DIR").into());
    let src = Path::new(&root).join("src");
    let mut violations = Vec::new();
    for (module, forbidden) in FORBIDDEN {
        for file in module_files(&src, module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for named in named_modules(&text) {
                if named != *module
                    && (forbidden.contains(&"*") || forbidden.contains(&named.as_str()))
                {
                    violations.push(format!("{} names crate::{named}", file.display()));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_grouped_and_nested_paths() {
    let text = "use crate::{model::Role, storage::{Store, Command}};\nlet x = crate::exec::run();\n// crate::server is only a comment\n";
    let named: Vec<String> = named_modules(text).into_iter().collect();
    assert_eq!(named, ["exec", "model", "storage"]);
}
