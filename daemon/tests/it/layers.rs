//! The daemon's modules import one way: the layer list in `docs/ARCHITECTURE.md` ("Layers: who
//! may import whom") is checked against every `crate::` path in `daemon/src/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const ARCHITECTURE: &str = include_str!("../../../docs/ARCHITECTURE.md");

/// The layer of each module, top first (0 is the top line), as the document lists them.
fn layers(doc: &str) -> BTreeMap<String, usize> {
    let start = doc
        .find("<!-- layers: top line first -->")
        .expect("the layer list");
    let end = doc[start..]
        .find("<!-- /layers -->")
        .expect("the list's end")
        + start;
    let mut out = BTreeMap::new();
    for (i, line) in doc[start..end]
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .enumerate()
    {
        let names = line.split(" — ").next().unwrap_or(line);
        for name in names.split('`').skip(1).step_by(2) {
            assert!(
                out.insert(name.to_owned(), i).is_none(),
                "{name} is listed twice"
            );
        }
    }
    out
}

/// The module a source file belongs to: its folder under `src/`, or its own name.
fn module_of(rel: &Path) -> String {
    let mut parts = rel.iter().map(|p| p.to_string_lossy().into_owned());
    let first = parts.next().unwrap_or_default();
    if rel.components().count() > 1 {
        first
    } else {
        first.trim_end_matches(".rs").to_owned()
    }
}

/// The modules a file's code (not its tests, not its comments) names through `crate::`.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::X, b};`: each name at the group's top level.
                let inner = group.split('}').next().unwrap_or("");
                out.extend(
                    inner
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap_or("").to_owned())
                        .filter(|n| !n.is_empty() && n != "self"),
                );
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// Every import that does not point to a line above its module's, and every module the list
/// does not place.
fn violations(
    layers: &BTreeMap<String, usize>,
    files: &[(String, String, BTreeSet<String>)],
) -> Vec<String> {
    let mut out = Vec::new();
    for (file, module, names) in files {
        let Some(&mine) = layers.get(module) else {
            out.push(format!(
                "{file}: module `{module}` is not in the layer list"
            ));
            continue;
        };
        for name in names.iter().filter(|n| *n != module) {
            match layers.get(name) {
                Some(&theirs) if theirs > mine => {}
                Some(_) => out.push(format!(
                    "{file}: `{module}` imports `{name}`, which is not below it"
                )),
                None => out.push(format!("{file}: imports `{name}`, not in the layer list")),
            }
        }
    }
    out
}

fn source_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_points_down() {
    let layers = layers(ARCHITECTURE);
    assert!(layers.len() > 20, "the list was read: {layers:?}");
    let mut paths = Vec::new();
    source_files(Path::new(SRC), &mut paths);
    let files: Vec<(String, String, BTreeSet<String>)> = paths
        .iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(SRC).unwrap();
            let name = rel.to_string_lossy().into_owned();
            // The crate's roots declare every module.
            (name != "lib.rs" && name != "main.rs").then(|| {
                (
                    name,
                    module_of(rel),
                    imports(&std::fs::read_to_string(p).unwrap()),
                )
            })
        })
        .collect();
    assert!(files.len() > 60, "the sources were read");
    let found = violations(&layers, &files);
    assert!(
        found.is_empty(),
        "imports against docs/ARCHITECTURE.md's layers:\n{}",
        found.join("\n")
    );
    // Every listed module exists.
    let modules: BTreeSet<&String> = files.iter().map(|(_, m, _)| m).collect();
    for listed in layers.keys() {
        assert!(
            modules.contains(listed),
            "`{listed}` is listed but not in daemon/src"
        );
    }
}

#[test]
fn an_upward_import_is_caught() {
    let layers = layers(ARCHITECTURE);
    let file =
        |name: &str, module: &str, text: &str| (name.to_owned(), module.to_owned(), imports(text));
    // The store reaching up into the domain, a task into the API, a grouped import, and a
    // module the list does not place: each is reported.
    let found = violations(
        &layers,
        &[
            file(
                "store/writer.rs",
                "store",
                "use crate::domain::menu::Menu;\n",
            ),
            file(
                "hub/worker.rs",
                "hub",
                "use crate::{state::AppStateRef, api::ApiStateRef};\n",
            ),
            file("new.rs", "new", "use crate::store::Store;\n"),
            // Comments and tests are not imports.
            file(
                "store/mod.rs",
                "store",
                "// crate::domain\n#[cfg(test)]\nuse crate::domain::x;\n",
            ),
        ],
    );
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("`store` imports `domain`"));
    assert!(found[1].contains("`hub` imports `api`"));
    assert!(found[2].contains("`new` is not in the layer list"));
}

/// Runtime code reads the resolved settings; the configuration as written is read only by the
/// admin page's editor, which checks a change exactly as the next start will.
#[test]
fn only_the_admin_pages_editor_reads_the_configuration_as_written() {
    let mut paths = Vec::new();
    source_files(Path::new(SRC), &mut paths);
    let readers: BTreeSet<String> = paths
        .iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.contains(".as_written()") || text.contains("settings.raw")
        })
        .map(|p| p.strip_prefix(SRC).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        readers,
        BTreeSet::from(["api/site.rs".to_owned()]),
        "only the admin page's editor reads the written configuration"
    );
}
