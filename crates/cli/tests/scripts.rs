//! The Quick start's `scripts/run.sh`, with a stand-in `cargo` on the PATH that records how it
//! is called: the script runs detbench through cargo (so the binary is found wherever
//! CARGO_TARGET_DIR puts it) and says what the first build does and how long it takes.

use std::path::Path;
use std::process::Command;

#[test]
fn run_sh_uses_cargos_own_path_and_explains_the_first_build() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("cargo.log");
    let target = tmp.path().join("elsewhere");
    let stub = tmp.path().join("cargo");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\nif [ \"$1\" = metadata ]; then\n  echo '{{\"packages\":[],\"target_directory\":\"{}\",\"version\":1}}'\nelse\n  echo \"$*\" >> '{}'\nfi\n",
            target.display(),
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = format!(
        "{}:{}",
        tmp.path().display(),
        std::env::var("PATH").unwrap()
    );
    let run = Command::new("bash")
        .arg(root.join("scripts/run.sh"))
        .args(["--limit", "1"])
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("first build of detbench") && stderr.contains("roughly 8 minutes"),
        "{stderr}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("run --release -p detbench -- run --limit 1"),
        "{calls}"
    );
}
