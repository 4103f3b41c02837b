//! Helpers shared by the integration tests.

use std::fs;
use std::path::PathBuf;

/// A fresh, empty directory for one test: `longhaul-<suite>-<name>-<pid>` under the temp dir.
pub fn scratch(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("longhaul-{suite}-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}
