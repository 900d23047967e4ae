//! The Python side of the interop tests (ws-std's and ws-tokio's): where
//! its scripts live and the virtualenv's python, found once.
//!
//! The scripts stay where they are, in `crates/ws-std/tests/interop/`
//! (`setup_venv.sh`, `echo_server.py`, `echo_client.py`). The interop tests
//! never skip: when python3 is missing, or the virtualenv cannot be set up,
//! [`python`] fails the test saying what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The directory of the Python scripts and the virtualenv setup
/// (`crates/ws-std/tests/interop`).
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ws-std/tests/interop")
}

/// The virtualenv's python (made on first use by `setup_venv.sh`, with
/// `websockets`). Fails the test, saying what to install, when that is not
/// possible.
pub fn python() -> PathBuf {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(find)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn find() -> Result<PathBuf, String> {
    let has_python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        return Err(
            "python3 is not installed: the Python interop tests need it. Install python3 \
             with its venv module (e.g. `apt-get install python3 python3-venv`); the tests \
             then install the `websockets` package into a virtualenv themselves \
             (crates/ws-std/tests/interop/setup_venv.sh)"
                .to_string(),
        );
    }
    let setup = dir().join("setup_venv.sh");
    let out = Command::new("bash")
        .arg(&setup)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run bash for {}: {e}", setup.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} could not make a virtualenv with the Python `websockets` package \
             (>=13,<18). Install python3-venv and make sure pip can reach its package \
             index, or install `websockets` into the virtualenv named by WS_INTEROP_VENV \
             yourself. Its output:\n{}{}",
            setup.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| "setup_venv.sh printed no python path".to_string())
}
