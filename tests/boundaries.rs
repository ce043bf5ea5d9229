//! The module boundaries ARCHITECTURE.md claims, checked against the
//! source: the codemap's "may use" column lists, in backticks, the crate's
//! own modules and the guarded capabilities each folder may use; every
//! `crate::…` (or, in the binary, `leadflow::…`) path and every guarded
//! capability a file uses must be listed for its folder. Comments and
//! `#[cfg(test)]` code are not checked (tests may use anything).
//!
//! Guarded capabilities (the ones a claim is about):
//! - `sled`, `rdkafka`, `axum`, `tokio`, `hyper`, `clap`, `indicatif`,
//!   `signal_hook`, `ureq`: those crates;
//! - `pb`: the generated protobuf types (`codec::pb`);
//! - `threads`: spawning a thread or task (`thread::spawn`, `scope`,
//!   `Builder`, `tokio::spawn`, `spawn_blocking`);
//! - `fs`: the file system (`std::fs`, `File::`, `tempfile`, `rustix::fs`);
//! - `net`: sockets (`std::net`, `TcpListener`);
//! - `clock`: the wall clock or a monotonic one (`SystemTime`,
//!   `Instant::now`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Per folder, what it may use.
type Codemap = BTreeMap<String, BTreeSet<String>>;
/// Source files as (path from the crate root, text).
type Sources = Vec<(String, String)>;

/// The crate's own top-level modules: every folder and file under `src/`
/// but the two crate roots.
fn modules() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: Vec<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "main.rs" && n != "lib.rs")
        .map(|n| n.trim_end_matches(".rs").to_string())
        .collect();
    out.sort();
    out
}

/// Guarded capabilities and the source patterns that mean using them.
const GUARDED: &[(&str, &[&str])] = &[
    ("sled", &["sled::"]),
    ("rdkafka", &["rdkafka::"]),
    ("axum", &["axum::"]),
    ("tokio", &["tokio::"]),
    ("hyper", &["hyper::", "hyper_util::"]),
    ("clap", &["clap::"]),
    ("indicatif", &["indicatif::"]),
    ("signal_hook", &["signal_hook::"]),
    ("ureq", &["ureq::"]),
    ("pb", &["pb::", "codec::pb"]),
    (
        "threads",
        &[
            "thread::spawn",
            "thread::scope",
            "thread::Builder",
            "tokio::spawn",
            "spawn_blocking",
        ],
    ),
    ("fs", &["std::fs", "File::", "tempfile::", "rustix::fs"]),
    ("net", &["std::net", "TcpListener"]),
    ("clock", &["SystemTime", "Instant::now"]),
];

/// The folder (top-level module) a source file belongs to.
fn module_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    let first = rest.split('/').next()?;
    Some(match first {
        "main.rs" => "cli",
        "lib.rs" => return None,
        f => f.strip_suffix(".rs").unwrap_or(f),
    })
}

/// The "may use" sets of the codemap in `architecture` (the markdown).
fn codemap(architecture: &str) -> Codemap {
    let mut out = BTreeMap::new();
    for line in architecture.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | path | what | may use |
        if cells.len() < 5 {
            continue;
        }
        let path = cells[1].trim_matches('`');
        let Some(module) = module_of(path.trim_end_matches('/')) else {
            continue;
        };
        let may: BTreeSet<String> = cells[cells.len() - 2]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        out.entry(module.to_string())
            .or_insert_with(BTreeSet::new)
            .extend(may);
    }
    out
}

/// The code of a source file without comments and without its
/// `#[cfg(test)]` part (test modules come last in a file).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            // `//` inside a string literal (a URL) is rare in code; a
            // literal is cut short here, which can only hide a use, and
            // the literal patterns checked are never URLs.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a file's code uses: the crate's modules and guarded capabilities.
fn uses(module: &str, code: &str) -> BTreeSet<String> {
    let modules = modules();
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "leadflow::"] {
        for (i, _) in code.match_indices(prefix) {
            // `crate::` inside a longer path (`leadflow::crate::`) never
            // happens; a preceding identifier character would mean another
            // name (`my_crate::`).
            if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = code[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != module {
                out.insert(name);
            }
        }
    }
    for (capability, patterns) in GUARDED {
        if patterns.iter().any(|p| contains_path(code, p)) {
            out.insert(capability.to_string());
        }
    }
    out
}

/// Whether `code` holds `path` as a path of its own: not as the tail of a
/// longer name (`PolicyFile::` is not `File::`).
fn contains_path(code: &str, path: &str) -> bool {
    code.match_indices(path)
        .any(|(i, _)| !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// Every use in `files` (path, text) that the codemap does not allow.
fn violations(map: &BTreeMap<String, BTreeSet<String>>, files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let Some(module) = module_of(path) else {
            continue;
        };
        let base = Path::new(path).file_name().unwrap().to_string_lossy();
        if base == "tests.rs" || base.ends_with("_tests.rs") {
            continue;
        }
        let Some(allowed) = map.get(module) else {
            out.push(format!("{path}: module `{module}` is not in the codemap"));
            continue;
        };
        for used in uses(module, &code_of(text)) {
            if !allowed.contains(&used) {
                out.push(format!(
                    "{path}: `{module}` uses `{used}`, which the codemap does not allow"
                ));
            }
        }
    }
    out
}

fn source_files(dir: &Path, out: &mut Sources) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

fn the_tree() -> (Codemap, Sources) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = codemap(&std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap());
    let mut files = Vec::new();
    source_files(&root.join("src"), &mut files);
    files.sort();
    (map, files)
}

#[test]
fn every_module_uses_only_what_the_codemap_allows() {
    let (map, files) = the_tree();
    assert!(files.len() > 50, "found the sources");
    for m in modules() {
        assert!(map.contains_key(&m), "the codemap has no row for `{m}`");
    }
    let found = violations(&map, &files);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_forbidden_import_is_caught() {
    // Given the real codemap, when the pure core reaches for storage,
    // Kafka, generated types, a thread or the clock, or the log for Kafka,
    // then each is reported.
    let (map, _) = the_tree();
    let bad = [
        ("src/domain/x.rs", "use crate::log::EventLog;", "`log`"),
        (
            "src/projector/x.rs",
            "use rdkafka::ClientConfig;",
            "`rdkafka`",
        ),
        (
            "src/policy/x.rs",
            "let t = std::time::SystemTime::now();",
            "`clock`",
        ),
        ("src/policy/x.rs", "std::thread::spawn(|| {});", "`threads`"),
        (
            "src/bus/x.rs",
            "let e = crate::codec::pb::LeadEvent::default();",
            "`pb`",
        ),
        ("src/log/x.rs", "use crate::bus::BusError;", "`bus`"),
        ("src/api/x.rs", "use sled::Tree;", "`sled`"),
        ("src/replay.rs", "let f = std::fs::read(\"x\");", "`fs`"),
    ];
    for (path, code, what) in bad {
        let found = violations(&map, &[(path.to_string(), code.to_string())]);
        assert!(
            found.iter().any(|v| v.contains(what)),
            "{path} with {code:?} was not caught: {found:?}"
        );
    }
    // And the same uses in comments or in test code are not.
    for (path, code, _) in bad {
        let commented = format!("// {code}\n#[cfg(test)]\nmod tests {{ {code} }}\n");
        assert!(violations(&map, &[(path.to_string(), commented)]).is_empty());
    }
}

#[test]
fn the_codemap_and_the_test_map_name_every_test_and_only_paths_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    // Every test binary is in the test map.
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            assert!(
                text.contains(&format!("`tests/{name}`")),
                "ARCHITECTURE.md's test map does not name tests/{name}"
            );
        }
    }
    // Every path it names in backticks exists.
    for quoted in text.split('`').skip(1).step_by(2) {
        let path = quoted.split_whitespace().next().unwrap_or("");
        if (path.starts_with("src/") || path.starts_with("tests/"))
            && !path.contains('*')
            && !path.contains('<')
        {
            assert!(
                root.join(path).exists(),
                "ARCHITECTURE.md names {path}, which does not exist"
            );
        }
    }
}
