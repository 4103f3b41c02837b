use std::path::PathBuf;

use napi::bindgen_prelude::*;

use crate::promise::spawn_promise;

/// One difference between two trees (`longhaul_core::tools::compare`).
#[napi(object)]
pub struct BindingDifference {
    pub path: String,
    /// missing, extra, kind, size, content, mode, mtime or target.
    pub what: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// Compares two local trees on threads of their own: every difference, in path order.
#[napi(ts_return_type = "Promise<BindingDifference[]>")]
pub fn compare_trees<'env>(env: &'env Env, expected: String, actual: String, dir_mtimes: bool) -> Result<Object<'env>> {
    let (expected, actual) = (PathBuf::from(expected), PathBuf::from(actual));
    spawn_promise(
        env,
        "compare",
        move || longhaul_core::tools::compare::compare_trees(&expected, &actual, dir_mtimes),
        |diffs| {
            diffs
                .into_iter()
                .map(|d| BindingDifference { path: d.path, what: d.what.as_str().to_owned(), expected: d.expected, actual: d.actual })
                .collect::<Vec<_>>()
        },
    )
}
