//! Architecture conformance: each concept has one home, and this test fails when a second one
//! appears (after hotcoco's `tests/architecture.rs`). Crude on purpose: it greps the shipped
//! source of every crate (`crates/*/src`, unit-test modules and whole-line comments left out),
//! so a determined author can evade it; it is here to catch the accidental second copy that
//! review misses, and to make the rules explicit:
//!
//! - one atomic write (`assets/src/files.rs`), one sha256 (`assets/src/digest.rs`), one
//!   percentile (`assets/src/percentile.rs`), one palette (`report/src/palette.rs`), one CSV field
//!   quoting (`report/src/tables/mod.rs`), one panic message (`assets/src/panic.rs`);
//! - stage names only from `Stage` (`bench/src/sut.rs`);
//! - engine names only in the engine table (`backends/src/config.rs`);
//! - no `format!("{:?}")` of a value: Debug output is not a name to store or print;
//! - no library function returning `Result<_, String>` (typed errors; `String` errors only in
//!   the CLI, which uses anyhow anyway);
//! - no source file over 600 lines, data tables (the zoo catalogue) excepted.
//!
//! When a rule has a genuinely new home, add it to that rule's list with a comment; do not
//! weaken or `#[ignore]` the test.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

fn workspace_root() -> &'static Path {
    static ROOT: LazyLock<PathBuf> = LazyLock::new(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("the crate lives at <workspace>/crates/<name>")
            .to_path_buf()
    });
    &ROOT
}

struct SourceFile {
    /// Workspace-relative, e.g. `crates/report/src/files.rs`.
    path: String,
    /// Lines of the whole file.
    total_lines: usize,
    /// (1-based line number, text) of the code lines: whole-line comments and `#[cfg(test)]`
    /// items left out (tests may spell names out to check them).
    lines: Vec<(usize, String)>,
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> &'static [SourceFile] {
    static SOURCES: LazyLock<Vec<SourceFile>> = LazyLock::new(|| {
        let mut paths = Vec::new();
        let crates = fs::read_dir(workspace_root().join("crates")).expect("crates/ folder");
        for entry in crates.flatten() {
            collect_rs(&entry.path().join("src"), &mut paths);
        }
        assert!(paths.len() > 50, "found only {} source files", paths.len());
        paths.sort();
        paths.iter().map(|p| read(p)).collect()
    });
    &SOURCES
}

fn read(path: &Path) -> SourceFile {
    // A conformance test that cannot read a file must fail, never pass by scanning nothing.
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let relative = path
        .strip_prefix(workspace_root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    SourceFile {
        path: relative,
        total_lines: text.lines().count(),
        lines: code_lines(&text),
    }
}

/// (1-based line number, text) of the code lines of a file: whole-line comments dropped, and the
/// items under `#[cfg(test)]` skipped (their braces counted, so code after them is kept).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            let mut depth = 0i64;
            let mut opened = false;
            for (_, skipped) in lines.by_ref() {
                depth += skipped.matches('{').count() as i64;
                depth -= skipped.matches('}').count() as i64;
                opened |= skipped.contains('{');
                if (opened && depth <= 0) || (!opened && skipped.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        if !line.trim_start().starts_with("//") {
            out.push((i + 1, line.to_owned()));
        }
    }
    out
}

/// Every code line matching `hit` in a file `skip` does not exclude, as `path:line  text`.
fn scan(skip: impl Fn(&str) -> bool, hit: impl Fn(&str) -> bool) -> Vec<String> {
    sources()
        .iter()
        .filter(|f| !skip(&f.path))
        .flat_map(|f| {
            f.lines
                .iter()
                .filter(|(_, line)| hit(line))
                .map(move |(n, line)| format!("{}:{n}  {}", f.path, line.trim()))
        })
        .collect()
}

fn assert_none(rule: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{rule}\nFound:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn one_atomic_write() {
    // In detbench-assets (the bottom crate) so that every crate, the trainer and LoadGen
    // included, can call it; detbench-report re-exports it.
    const HOME: &str = "crates/assets/src/files.rs";
    assert_none(
        "files are written atomically by `detbench_assets::write_atomic` (assets/src/files.rs: \
         temporary file, fsync, rename, normal permissions) and nowhere else; call it",
        scan(|path| path == HOME, atomic_write),
    );
}

#[test]
fn one_sha256() {
    const HOME: &str = "crates/assets/src/digest.rs";
    assert_none(
        "files are identified by `detbench_assets::sha256_file` / `sha256_hex` \
         (assets/src/digest.rs) and nowhere else; call them",
        scan(|path| path == HOME, sha256),
    );
}

#[test]
fn one_percentile() {
    // In detbench-assets so that the trainer's step times use it too; detbench-bench's
    // `timing` re-exports it.
    const HOME: &str = "crates/assets/src/percentile.rs";
    assert_none(
        "percentiles are `detbench_assets::percentile` (MLPerf LoadGen's nearest rank; also \
         `detbench_bench::timing::percentile`) and nowhere else; call it or `timing::summarize`",
        scan(
            |path| path == HOME,
            |line| line.contains("fn percentile") || line.contains("fn quantile"),
        ),
    );
}

#[test]
fn one_palette() {
    const HOME: &str = "crates/report/src/palette.rs";
    assert_none(
        "chart and annotation colours come from `detbench_report::palette` and nowhere else",
        scan(
            |path| path == HOME,
            |line| {
                line.contains("PALETTE:")
                    || line.contains("[RGBColor;")
                    || line.contains("fn category_color")
            },
        ),
    );
}

#[test]
fn one_csv_field_and_one_panic_message() {
    assert_none(
        "CSV fields are quoted by `detbench_report::tables::csv_field` and nowhere else",
        scan(
            |path| path == "crates/report/src/tables/mod.rs",
            |line| line.contains("fn csv_field"),
        ),
    );
    assert_none(
        "a caught panic's message is `detbench_assets::panic_message` and nowhere else",
        scan(
            |path| path == "crates/assets/src/panic.rs",
            |line| line.contains("fn panic_message") || line.contains("downcast_ref::<&str>"),
        ),
    );
}

#[test]
fn stage_names_only_from_stage() {
    const HOME: &str = "crates/bench/src/sut.rs";
    assert_none(
        "stage names come from `detbench_bench::Stage` (`Stage::ALL`, `as_str`) and are \
         spelled nowhere else",
        scan(|path| path == HOME, stage_names),
    );
}

#[test]
fn one_engine_table() {
    const HOME: &str = "crates/backends/src/config.rs";
    assert_none(
        "engine names live in the one engine table (`engines!` in backends/src/config.rs): use \
         `EngineKind` (`name()`, `cli_name()`, `Display`, `FromStr`) instead of spelling them",
        scan(|path| path == HOME, engine_names),
    );
}

#[test]
fn no_debug_formatting_as_a_name() {
    assert_none(
        "`format!(\"{:?}\")` makes a name out of Debug output, which changes when a variant is \
         renamed: give the type a name (`as_str`, `Display`, `named_enum!`)",
        scan(|_| false, bare_debug),
    );
}

#[test]
fn no_library_returns_string_errors() {
    assert_none(
        "library crates return typed errors (thiserror); `Result<_, String>` belongs to no \
         library function (the CLI uses anyhow)",
        scan(|path| path.starts_with("crates/cli/"), string_error),
    );
}

#[test]
fn source_files_stay_under_600_lines() {
    /// Data, not logic: the catalogue's entries.
    const DATA_TABLES: &str = "crates/models/src/zoo/";
    let long: Vec<String> = sources()
        .iter()
        .filter(|f| !f.path.starts_with(DATA_TABLES) && f.total_lines > 600)
        .map(|f| format!("{}: {} lines", f.path, f.total_lines))
        .collect();
    assert_none(
        "source files stay under ~600 lines: split the module by concern",
        long,
    );
}

/// A second atomic write: its function, or the temporary-file-and-rename it is made of.
fn atomic_write(line: &str) -> bool {
    line.contains("fn write_atomic")
        || line.contains("NamedTempFile")
        || line.contains("tempfile::Builder")
        || line.contains(".persist(")
        || line.contains("fs::rename(")
}

/// A second sha256: the hasher crate, or a function named for it.
fn sha256(line: &str) -> bool {
    line.contains("sha2::") || line.contains("fn sha256")
}

/// A list of stage names: two on one line, or one alone as an element of an array written one
/// element per line (`"preprocess",`). A pipeline's provenance key (`"preprocess": ...`) is not a
/// list of stages and passes.
fn stage_names(line: &str) -> bool {
    const NAMES: [&str; 4] = [
        "\"decode\"",
        "\"preprocess\"",
        "\"inference\"",
        "\"postprocess\"",
    ];
    NAMES.iter().filter(|name| line.contains(*name)).count() >= 2
        || NAMES
            .iter()
            .any(|name| line.trim() == format!("{name},") || line.trim() == *name)
}

/// An engine name spelled out, or a second table of them.
fn engine_names(line: &str) -> bool {
    line.contains("\"onnxruntime\"")
        || line.contains("\"libtorch\"")
        || (line.contains("\"ort\"") && line.contains("\"torch\""))
        || line.contains("macro_rules! engines")
        || line.contains("ENGINES: &[")
}

/// `format!("{:?}", x)` or `format!("{x:?}")`: a value's Debug text as a whole string.
fn bare_debug(line: &str) -> bool {
    let Some(start) = line.find("format!(\"{") else {
        return false;
    };
    let rest = &line[start + "format!(\"{".len()..];
    rest.find("}\"")
        .is_some_and(|end| rest[..end].ends_with(":?") && !rest[..end].contains('{'))
}

/// A `Result<..., String>` (the error type `String`), or a `FromStr` whose error is `String`.
fn string_error(line: &str) -> bool {
    let mut rest = line;
    while let Some(start) = rest.find("Result<") {
        let after = &rest[start + "Result<".len()..];
        let (mut depth, mut last_comma, mut end) = (0i32, None, None);
        for (i, c) in after.char_indices() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' if depth == 0 => {
                    end = Some(i);
                    break;
                }
                '>' | ')' | ']' => depth -= 1,
                ',' if depth == 0 => last_comma = Some(i),
                _ => {}
            }
        }
        if let (Some(comma), Some(end)) = (last_comma, end)
            && after[comma + 1..end].trim() == "String"
        {
            return true;
        }
        rest = after;
    }
    line.contains("type Err = String")
}

/// The matchers catch what their rule forbids, and let through what it does not.
#[test]
fn the_matchers_catch_what_they_forbid() {
    assert!(atomic_write("pub fn write_atomic(path: &Path) {"));
    assert!(atomic_write(
        "let mut file = tempfile::NamedTempFile::new_in(dir)?;"
    ));
    assert!(!atomic_write(
        "detbench_report::write_atomic(&path, &bytes)?;"
    ));
    assert!(sha256("let mut hasher = sha2::Sha256::new();"));
    assert!(!sha256("let sha = detbench_assets::sha256_file(&path)?;"));
    assert!(stage_names("for stage in [\"decode\", \"preprocess\"] {"));
    assert!(stage_names("let stages = [\"decode\", \"inference\"];"));
    assert!(stage_names("        \"postprocess\","));
    assert!(!stage_names(
        "\"decode\": run_options.decode.to_json(batch),"
    ));
    assert!(!stage_names("\"preprocess\": \"letterbox, pad 114\","));
    assert!(engine_names("EngineKind::Ort => \"onnxruntime\","));
    assert!(engine_names(
        "#[arg(long, value_parser = [\"ort\", \"torch\"])]"
    ));
    assert!(!engine_names("#[cfg(feature = \"torch\")]"));
    assert!(bare_debug("family: format!(\"{:?}\", entry.family),"));
    assert!(bare_debug("let name = format!(\"{family:?}\");"));
    assert!(!bare_debug(
        "format!(\"moving the module to {device:?} as {kind:?}: {reason}\")"
    ));
    assert!(string_error("fn parse(s: &str) -> Result<u32, String> {"));
    assert!(string_error("    type Err = String;"));
    assert!(!string_error(
        "fn f() -> Result<HashMap<String, String>, StoreError> {"
    ));
    assert!(!string_error(
        "pub fn sha256_file(path: &Path) -> std::io::Result<String> {"
    ));
    let lines =
        code_lines("fn a() {}\n#[cfg(test)]\nmod tests {\n    fn b() {\n    }\n}\nfn c() {}\n");
    let kept: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(kept, vec![1, 7]);
}
