//! The layering `ARCHITECTURE.md` draws, checked on the sources: each module may refer only to the
//! modules before it in [`LAYERS`], so no two modules depend on each other, however indirectly.
//!
//! A reference is a `crate::` or `super::` path in the code (in a `use` or inline) or a path
//! through a child module (`lww_columns::encode`); comments and test code are left out. A
//! re-export (`pub use`) only names a path, so it counts only where the module's own code uses what
//! it re-exports. A reference must name the module that defines the item, not one that re-exports
//! it, so the check sees the real dependency. One exception: [`crate::Error`] is the vocabulary of
//! every module, and its variants carry a clock's `Drift` and a `MapKind`; `error.rs` may name
//! those.
//!
//! Method calls are not references: `storage/manager.rs`, `load.rs` and `flush.rs` are `impl`
//! blocks of the one `StorageManager` and call each other's methods (see `storage/mod.rs`).

extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::fs;
use std::path::Path;

/// Every module of the crate (test modules aside), bottom first. Keep it in step with
/// `ARCHITECTURE.md`; a new module must be placed here.
const LAYERS: &[&str] = &[
    // The vocabulary: the error type, hashing, the clock, sorting, what both map kinds share.
    "error",
    "hash",
    "hlc",
    "sort",
    "map_common",
    "event",
    "dirty",
    "merkle",
    "value",
    // The codec's primitives: the reader cursors, the version and the shared decode errors and
    // checks, the writer, a value's bytes (an LWW map holds its values encoded).
    "codec::read",
    "codec",
    "codec::write",
    "codec::value",
    // The two map kinds.
    "or_map",
    "lww",
    // The codec's records: snapshots and stored values of whole maps and records.
    "codec::snapshot::lww_columns",
    "codec::snapshot",
    "codec::stored",
    // The storage manager, which owns the maps and the clock.
    "storage",
    "storage::maps",
    "storage::manager",
    "storage::load",
    "storage::flush",
    // The façade, then sync and the byte ABI over it.
    "grid",
    "sync::permissions",
    "sync::frame",
    "sync::types",
    "sync::log",
    "sync::catchup",
    "sync::connection",
    "sync::connection::push",
    "sync",
    "abi",
    "abi::codec",
    "abi::execute",
    "abi::replica",
    // The table of contents.
    "crate",
];

/// Files that only tests compile.
const TEST_FILES: &[&str] = &["layers.rs", "codec/tests.rs", "abi/tests.rs"];

struct Module {
    name: String,
    /// The code without comments and test-only items.
    code: String,
    /// Its `use` declarations: (is it a `pub use`, the path, the name it binds).
    uses: Vec<(bool, Vec<String>, String)>,
    /// The code outside its `use` declarations.
    body: String,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The code of a file without full-line comments and without the items under `#[cfg(test)]`.
fn strip(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed == "#[cfg(test)]" {
            // Skip the item: one line ending in `;`, or a block until its braces balance.
            let mut depth = 0i32;
            for item in lines.by_ref() {
                depth += item.matches('{').count() as i32 - item.matches('}').count() as i32;
                if depth <= 0 && (item.trim_end().ends_with(';') || item.trim_end().ends_with('}')) {
                    break;
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Splits `use` declarations off the code.
fn split_uses(code: &str) -> (Vec<(bool, String)>, String) {
    let (mut uses, mut body) = (Vec::new(), String::new());
    let mut current: Option<(bool, String)> = None;
    for line in code.lines() {
        let trimmed = line.trim_start();
        if current.is_none() {
            let public = trimmed.starts_with("pub use ") || trimmed.starts_with("pub(crate) use ");
            if let Some(at) = trimmed.find("use ").filter(|&at| public || at == 0) {
                current = Some((public, String::from(&trimmed[at + 4..])));
            } else {
                body.push_str(line);
                body.push('\n');
                continue;
            }
        } else if let Some((_, text)) = &mut current {
            text.push(' ');
            text.push_str(trimmed);
        }
        if let Some((public, text)) = current.take_if(|(_, text)| text.trim_end().ends_with(';')) {
            uses.push((public, String::from(text.trim_end().trim_end_matches(';'))));
        }
    }
    (uses, body)
}

/// The paths a `use` tree names, each with the name it binds.
fn expand(tree: &str) -> Vec<(Vec<String>, String)> {
    let tokens: Vec<String> = {
        let mut tokens = Vec::new();
        let mut word = String::new();
        for c in tree.chars() {
            if is_ident(c) || c == '*' {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                tokens.push(core::mem::take(&mut word));
            }
            if matches!(c, '{' | '}' | ',') {
                tokens.push(c.to_string());
            }
        }
        if !word.is_empty() {
            tokens.push(word);
        }
        tokens
    };
    let mut out = Vec::new();
    let mut at = 0;
    expand_from(&tokens, &mut at, &[], &mut out);
    out
}

fn expand_from(tokens: &[String], at: &mut usize, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
    let mut path: Vec<String> = prefix.to_vec();
    while *at < tokens.len() {
        let token = tokens[*at].as_str();
        *at += 1;
        match token {
            "{" => {
                loop {
                    expand_from(tokens, at, &path, out);
                    let close = tokens.get(*at).map(String::as_str);
                    *at += 1;
                    if close != Some(",") || tokens.get(*at).map(String::as_str) == Some("}") {
                        if close == Some(",") {
                            *at += 1;
                        }
                        break;
                    }
                }
                return;
            }
            "," | "}" => {
                *at -= 1;
                break;
            }
            "as" => {
                let alias = tokens.get(*at).cloned().unwrap_or_default();
                *at += 1;
                out.push((path.clone(), alias));
                return;
            }
            word => path.push(String::from(word)),
        }
    }
    if path.len() > prefix.len() {
        let name = path.last().cloned().unwrap_or_default();
        out.push((path, name));
    }
}

fn modules() -> Vec<Module> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = alloc::vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
        if TEST_FILES.contains(&relative.as_str()) {
            continue;
        }
        let name = match relative.as_str() {
            "lib.rs" => String::from("crate"),
            other => other.trim_end_matches(".rs").trim_end_matches("/mod").replace('/', "::"),
        };
        let code = strip(&fs::read_to_string(&path).expect("read file"));
        let (uses, body) = split_uses(&code);
        let uses = uses
            .into_iter()
            .flat_map(|(public, tree)| expand(&tree).into_iter().map(move |(path, bound)| (public, path, bound)))
            .collect();
        out.push(Module { name, code, uses, body });
    }
    out
}

/// True when `code` has an item `name` (a function, type, constant, trait or module).
fn defines(code: &str, name: &str) -> bool {
    ["fn", "struct", "enum", "const", "static", "type", "trait", "mod"].iter().any(|kw| {
        let needle = format!("{kw} {name}");
        code.match_indices(&needle).any(|(at, _)| {
            let before = code[..at].chars().next_back().is_none_or(|c| !is_ident(c));
            let after = code[at + needle.len()..].chars().next().is_none_or(|c| !is_ident(c));
            before && after
        })
    })
}

/// True when `code` uses the word `word`.
fn mentions(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        let after = code[at + word.len()..].chars().next().is_none_or(|c| !is_ident(c));
        before && after
    })
}

/// The inline paths of `body` that start with `start` (`crate::`, `super::`, `child::`), as
/// segments after it.
fn inline_paths(body: &str, start: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in body.match_indices(start) {
        let before = &body[..at];
        if before.chars().next_back().is_some_and(is_ident) || before.ends_with("::") {
            continue;
        }
        let rest = &body[at + start.len()..];
        let end = rest.find(|c: char| !is_ident(c) && c != ':').unwrap_or(rest.len());
        out.push(rest[..end].split("::").filter(|s| !s.is_empty()).map(String::from).collect());
    }
    out
}

#[test]
fn every_module_refers_only_to_modules_below_it() {
    let modules = modules();
    let rank = |name: &str| LAYERS.iter().position(|m| *m == name);
    let mut problems = Vec::new();
    for module in &modules {
        if rank(&module.name).is_none() {
            problems.push(format!("{}: not in LAYERS (place it in the layering)", module.name));
        }
    }
    for name in LAYERS {
        if !modules.iter().any(|m| m.name == *name) {
            problems.push(format!("{name}: in LAYERS but not in src/"));
        }
    }
    let find = |name: &str| modules.iter().find(|m| m.name == name);
    for module in &modules {
        let parent = module.name.rsplit_once("::").map_or("crate", |(p, _)| p);
        let mut paths: Vec<Vec<String>> = Vec::new();
        let absolute = |relative: &[String], base: &str| -> Vec<String> {
            let mut path: Vec<String> =
                if base == "crate" { Vec::new() } else { base.split("::").map(String::from).collect() };
            path.extend(relative.iter().cloned());
            path
        };
        for (public, path, bound) in &module.uses {
            // A re-export is a path unless this module's code uses it.
            if *public && !mentions(&module.body, bound) {
                continue;
            }
            match path.first().map(String::as_str) {
                Some("crate") => paths.push(path[1..].to_vec()),
                Some("super") => paths.push(absolute(&path[1..], parent)),
                Some(first) if module.code.contains(&format!("mod {first};")) => {
                    paths.push(absolute(path, &module.name));
                }
                _ => {}
            }
        }
        paths.extend(inline_paths(&module.body, "crate::"));
        paths.extend(inline_paths(&module.body, "super::").iter().map(|p| absolute(p, parent)));
        for line in module.code.lines() {
            if let Some(child) = line.trim().strip_suffix(';').and_then(|l| l.rsplit_once("mod ")).map(|(_, c)| c) {
                paths.extend(inline_paths(&module.body, &format!("{child}::")).iter().map(|p| {
                    let mut path = alloc::vec![String::from(child)];
                    path.extend(p.iter().cloned());
                    absolute(&path, &module.name)
                }));
            }
        }
        for path in paths {
            // The longest prefix of the path that is a module is what it refers to.
            let split = (0..=path.len()).rev().find(|&n| n == 0 || find(&path[..n].join("::")).is_some());
            let Some(split) = split else { continue };
            let target = if split == 0 { String::from("crate") } else { path[..split].join("::") };
            let shown = format!("crate::{}", path.join("::"));
            if let Some(item) = path.get(split).filter(|i| *i != "self" && *i != "*")
                && let Some(defining) = find(&target)
                && !defines(&defining.code, item)
            {
                problems.push(format!(
                    "{}: {shown} is not defined in {target}; name the module that defines it",
                    module.name
                ));
                continue;
            }
            if target == module.name || module.name == "error" {
                continue;
            }
            if let (Some(from), Some(to)) = (rank(&module.name), rank(&target))
                && to > from
            {
                problems.push(format!("{}: refers to {shown}, which is above it", module.name));
            }
        }
    }
    assert!(problems.is_empty(), "the layering is broken:\n{}", problems.join("\n"));
}
