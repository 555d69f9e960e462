//! The results store from the command line: a store that cannot be reached loses nothing (the
//! results files are written, the error says how to import them, `detbench import` records them
//! later, once); and, against the PostgreSQL server of `$DETBENCH_TEST_POSTGRES`, runs recorded
//! through `--db postgres://...` and `$DETBENCH_DB` are read back by `detbench report` and
//! `--compare`.

use std::path::Path;
use std::process::{Command, Output};

fn detbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn small_run(out: &Path) -> Command {
    let mut command = detbench();
    command
        .args([
            "run",
            "--model",
            "yolox_nano",
            "--limit",
            "3",
            "--warmup",
            "1",
            "-q",
        ])
        .arg("--out")
        .arg(out);
    command
}

#[test]
fn an_unreachable_store_loses_nothing_and_import_records_the_run_later() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let down = "postgresql://bench:s3cret@127.0.0.1:1/detbench?connect_timeout=3";
    let run = small_run(&out).args(["--db", down]).output().unwrap();
    let all = text(&run);
    assert!(!run.status.success(), "{all}");
    assert!(
        all.contains("warning: the results store cannot be used now")
            && all.contains("the run was not recorded in the results store")
            && all.contains("cannot reach the PostgreSQL results store")
            && all.contains("detbench import")
            && all.contains(&out.join("results.json").display().to_string()),
        "{all}"
    );
    assert!(!all.contains("s3cret"), "{all}");
    for file in ["results.json", "results.md", "results.csv"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }

    let db = tmp.path().join("later.db");
    let import = detbench()
        .arg("import")
        .arg(out.join("results.json"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", text(&import));
    assert!(text(&import).contains("as run 1"), "{}", text(&import));
    let again = detbench()
        .arg("import")
        .arg(&out)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("not recorded again"),
        "{}",
        text(&again)
    );
    let report = detbench()
        .args(["report", "--format", "csv", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", text(&report));
    let csv = String::from_utf8_lossy(&report.stdout);
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("yolox_nano,")).count(),
        1,
        "{csv}"
    );
}

/// A new schema on the test server, as a store URL; `None` when there is no server.
fn postgres_store() -> Option<String> {
    let Some(admin) = std::env::var("DETBENCH_TEST_POSTGRES")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert!(
            std::env::var("DETBENCH_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "$DETBENCH_TEST_REQUIRE_POSTGRES=1 but $DETBENCH_TEST_POSTGRES is not set"
        );
        eprintln!("skipped: no PostgreSQL server ($DETBENCH_TEST_POSTGRES)");
        return None;
    };
    let schema = format!("cli{}", std::process::id());
    postgres::Client::connect(&admin, postgres::NoTls)
        .unwrap()
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    let separator = if admin.contains('?') { '&' } else { '?' };
    Some(format!(
        "{admin}{separator}options=-c%20search_path%3D{schema}"
    ))
}

#[test]
fn runs_in_postgres_are_reported_and_compared() {
    let Some(url) = postgres_store() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let one = small_run(&tmp.path().join("one"))
        .args(["--threads", "1"])
        .env("DETBENCH_DB", &url)
        .output()
        .unwrap();
    assert!(one.status.success(), "{}", text(&one));
    let two = small_run(&tmp.path().join("two"))
        .args(["--threads", "2", "--db", &url])
        .output()
        .unwrap();
    assert!(two.status.success(), "{}", text(&two));
    assert!(text(&two).contains("as run 2"), "{}", text(&two));

    let list = detbench()
        .args(["report", "--list-runs", "--db", &url])
        .output()
        .unwrap();
    assert!(list.status.success(), "{}", text(&list));
    assert!(text(&list).contains("--threads 2"), "{}", text(&list));
    let compare = detbench()
        .args(["report", "--compare", "threads"])
        .env("DETBENCH_DB", &url)
        .output()
        .unwrap();
    assert!(compare.status.success(), "{}", text(&compare));
    let tables = String::from_utf8_lossy(&compare.stdout);
    assert!(tables.contains("1 thread vs 2 threads"), "{tables}");
    assert!(tables.contains("| yolox_nano |"), "{tables}");
}
