//! The Go programs under `tests/go/`: checks written with implementations that share no code
//! with bglass (Debian's Go and its golang.org/x/mod), built once per test into a directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `tests/go/<name>` into `dir`; returns the program's path.
pub fn build(name: &str, dir: &Path) -> PathBuf {
    let out = dir.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go").join(name);
    let build = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        // Debian installs the module's source under /usr/share/gocode (GOPATH mode).
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "go build {name}: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    out
}

/// Runs a built program; its exit code, stdout and stderr.
pub fn run(tool: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(tool).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
