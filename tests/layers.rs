//! The map of who depends on whom in `src/lib.rs` is the code's: read from the `use crate::`
//! and `super::` paths of every library file (tests left out), no module of a folder uses
//! one on a later layer of that folder's line, a folder uses only the folders its line names
//! (and `error`, `files`), every module is on the map, and no two files use each other
//! through any chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path, `["identity", "gallery", "file"]`.
type Module = Vec<String>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library file's module (the CLI and `main.rs` are not the library).
fn modules() -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src()).unwrap().with_extension("");
        let mut m: Module = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        if m[0] == "cli" || m == ["main"] || m == ["lib"] {
            continue;
        }
        if m.last().is_some_and(|l| l == "mod") {
            m.pop();
        }
        out.insert(m, f);
    }
    out
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests`.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths written after `crate::` or `super::` in `code`, brace groups expanded, as
/// absolute module paths (`super` resolved against `module`'s parent).
fn paths(module: &Module, is_folder: bool, code: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], s: &str, out: &mut Vec<Vec<String>>) {
        // `s` is `a::b::{c, d::{e}}` or `a::b`.
        let s = s.trim();
        if let Some(open) = s.find('{') {
            let head: Vec<String> = s[..open]
                .split("::")
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect();
            let base: Vec<String> = prefix.iter().cloned().chain(head).collect();
            let inner = &s[open + 1..s.rfind('}').unwrap_or(s.len())];
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&base, &inner[start..], out);
            out.push(base);
        } else {
            let item = s.split(" as ").next().unwrap_or("");
            let mut p = prefix.to_vec();
            p.extend(
                item.split("::")
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from),
            );
            out.push(p);
        }
    }
    // `super` of `a/b.rs` (module a::b) is `a`; of `a/b/mod.rs` or `a/b.rs` with a folder
    // `a/b/`, still `a`: the module's parent either way.
    let _ = is_folder;
    let parent: Vec<String> = module[..module.len() - 1].to_vec();
    let mut out = Vec::new();
    for (key, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(key) {
            let before = rest[..i].chars().last();
            rest = &rest[i + key.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let (mut depth, mut end) = (0i32, rest.len());
            for (j, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth > 0 => depth -= 1,
                    c if depth > 0 && (c.is_whitespace() || c == ',' || c == '*') => {}
                    c if c.is_alphanumeric() || c == '_' || c == ':' => {}
                    _ => {
                        end = j;
                        break;
                    }
                }
                if depth == 0 && c == '}' {
                    end = j + 1;
                    break;
                }
            }
            expand(&base, &rest[..end], &mut out);
        }
    }
    out
}

/// Each module's dependencies: the longest known module each path starts with, leaving out
/// itself, its ancestors and its descendants.
fn graph(mods: &BTreeMap<Module, PathBuf>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut g = BTreeMap::new();
    for (m, path) in mods {
        let folder = path.ends_with("mod.rs");
        let mut deps = BTreeSet::new();
        for p in paths(m, folder, &code(path)) {
            let hit = (1..=p.len())
                .rev()
                .map(|n| p[..n].to_vec())
                .find(|pre| mods.contains_key(pre));
            if let Some(d) = hit {
                let related = d.starts_with(m) || m.starts_with(&d);
                if !related {
                    deps.insert(d);
                }
            }
        }
        g.insert(m.clone(), deps);
    }
    g
}

/// One folder's line of the map: its layers (modules) and the folders it may use.
struct Line {
    layers: Vec<Vec<String>>,
    uses: BTreeSet<String>,
}

/// The map's lines, from the `text` block of `src/lib.rs` after "Who depends on whom".
fn map() -> BTreeMap<String, Line> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let start = lib.find("Who depends on whom").expect("the map in lib.rs");
    let block: Vec<&str> = lib[start..]
        .lines()
        .map(|l| l.trim_start_matches("//!"))
        .skip_while(|l| !l.trim().starts_with("```text"))
        .skip(1)
        .take_while(|l| !l.trim().starts_with("```"))
        .collect();
    let mut joined: Vec<String> = Vec::new();
    for l in block {
        if l.starts_with(' ') && l.trim_start().len() < l.len() - 1 && !joined.is_empty() {
            // A continuation (indented past the folder name).
            let last = joined.last_mut().unwrap();
            last.push(' ');
            last.push_str(l.trim());
        } else if !l.trim().is_empty() {
            joined.push(l.trim().to_string());
        }
    }
    let mut out = BTreeMap::new();
    // The first line is the crate's base (`error → files`), no folder.
    for l in joined.into_iter().filter(|l| !l.starts_with("error")) {
        let (body, uses) = match l.find('(') {
            Some(i) => (&l[..i], &l[i + 1..l.rfind(')').unwrap()]),
            None => (&l[..], ""),
        };
        let mut words = body.splitn(2, char::is_whitespace);
        let folder = words.next().unwrap().to_string();
        let rest = words.next().unwrap_or("");
        let layers = rest
            .split('→')
            .map(|layer| {
                layer
                    .split('·')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect();
        let uses = uses
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        out.insert(folder, Line { layers, uses });
    }
    out
}

#[test]
fn the_map_in_lib_rs_is_the_code() {
    let mods = modules();
    let g = graph(&mods);
    let map = map();
    let base: BTreeSet<String> = ["error", "files"].map(String::from).into();
    let mut wrong = Vec::new();
    // Every folder module is on its folder's line, once.
    for m in mods.keys().filter(|m| m.len() == 2) {
        let Some(line) = map.get(&m[0]) else {
            wrong.push(format!("no line for {}", m[0]));
            continue;
        };
        let on = line.layers.iter().flatten().filter(|x| **x == m[1]).count();
        if on != 1 {
            wrong.push(format!("{} is on the {} line {on} times", m[1], m[0]));
        }
    }
    for (folder, line) in &map {
        for name in line.layers.iter().flatten() {
            let m = vec![folder.clone(), name.clone()];
            if !mods.contains_key(&m) {
                wrong.push(format!(
                    "the map names {folder}::{name}, which is no module"
                ));
            }
        }
    }
    let layer_of = |m: &Module| -> Option<usize> {
        map.get(&m[0])?
            .layers
            .iter()
            .position(|l| m.len() > 1 && l.contains(&m[1]))
    };
    for (m, deps) in &g {
        for d in deps {
            let (a, b) = (&m[0], &d[0]);
            if a != b {
                let allowed = base.contains(b)
                    || map.get(a).is_some_and(|l| l.uses.contains(b))
                    || (a == "files" && b == "error");
                if !allowed {
                    wrong.push(format!(
                        "{} uses {} ({a} may not use {b})",
                        m.join("::"),
                        d.join("::")
                    ));
                }
            } else if m.len() > 1 && d.len() > 1 && m[1] != d[1] {
                let (lm, ld) = (layer_of(m), layer_of(d));
                if let (Some(lm), Some(ld)) = (lm, ld) {
                    if ld >= lm {
                        wrong.push(format!(
                            "{} uses {}: not on an earlier layer of the {a} line",
                            m.join("::"),
                            d.join("::")
                        ));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the map is not the code:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_use_each_other() {
    let g = graph(&modules());
    // Depth-first search for a cycle; reports the first found.
    fn visit(
        m: &Module,
        g: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, u8>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<Module>> {
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for d in g.get(m).into_iter().flatten() {
            match state.get(d).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|x| x == d).unwrap();
                    return Some(stack[at..].to_vec());
                }
                0 => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        if state.get(m).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(m, &g, &mut state, &mut Vec::new()) {
                let names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
                panic!("a cycle: {} → (back to the first)", names.join(" → "));
            }
        }
    }
}

/// The parser itself, on a made-up file: brace groups, `as`, `super`, and comments skipped.
#[test]
fn paths_are_read_with_their_brace_groups() {
    let m: Module = vec!["a".into(), "b".into()];
    let code = "use crate::x::{y, z::{w as v, q}};\nuse super::c::D;\nlet k = crate::e::f(1);";
    let got: BTreeSet<String> = paths(&m, false, code)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    for want in ["x::y", "x::z::w", "x::z::q", "a::c::D", "e::f"] {
        assert!(got.contains(want), "{want} in {got:?}");
    }
}
