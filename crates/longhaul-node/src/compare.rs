use std::path::PathBuf;

use napi::bindgen_prelude::*;

use crate::promise::spawn_promise;
use crate::types::BindingDifference;

/// Compares two local trees on threads of their own: every difference, in path order.
#[napi(ts_return_type = "Promise<BindingDifference[]>")]
pub fn compare_trees<'env>(env: &'env Env, expected: String, actual: String, dir_mtimes: bool) -> crate::error::Result<Object<'env>> {
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
