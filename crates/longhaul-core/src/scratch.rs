//! A test's scratch directory, removed when the test passes.
//!
//! Used by the unit tests (`mod scratch` in lib.rs, test builds only) and by the integration
//! tests (`tests/common` includes this file by path), so every test names and cleans its
//! directory the same way. A failing test leaves its directory behind to be looked at.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// `longhaul-<name>-<pid>` under the temp dir: emptied on creation, deleted on drop unless the
/// thread is panicking (a failed assertion keeps the evidence).
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("longhaul-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
