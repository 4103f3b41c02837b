use std::path::PathBuf;

use napi::bindgen_prelude::*;

use crate::convert::{client_tls, millis, secret};
use crate::promise::spawn_promise;
use crate::types::{BindingConnectOptions, BindingDifference};

fn binding_differences(diffs: Vec<longhaul_core::tools::compare::Difference>) -> Vec<BindingDifference> {
    diffs
        .into_iter()
        .map(|d| BindingDifference { path: d.path, what: d.what.as_str().to_owned(), expected: d.expected, actual: d.actual })
        .collect()
}

/// Compares two local trees on threads of their own: every difference, in path order.
#[napi(ts_return_type = "Promise<BindingDifference[]>")]
pub fn compare_trees<'env>(env: &'env Env, expected: String, actual: String, dir_mtimes: bool) -> crate::error::Result<Object<'env>> {
    let (expected, actual) = (PathBuf::from(expected), PathBuf::from(actual));
    spawn_promise(env, "compare", move || longhaul_core::tools::compare::compare_trees(&expected, &actual, dir_mtimes), binding_differences)
}

/// Compares a local tree with `path` on the node at `options.address`, which lists and hashes
/// its side while this one hashes the local side: every difference, in path order.
#[napi(ts_return_type = "Promise<BindingDifference[]>")]
pub fn compare_with_node<'env>(
    env: &'env Env,
    expected: String,
    options: BindingConnectOptions,
    path: String,
    dir_mtimes: bool,
) -> crate::error::Result<Object<'env>> {
    let secret = secret(options.token.as_deref())?;
    let tls = client_tls(options.tls_pin.as_deref(), options.tls_ca.as_deref())?;
    let timeout = millis(options.timeout_ms, longhaul_core::client::GetOptions::default().timeout);
    let expected = PathBuf::from(expected);
    spawn_promise(
        env,
        "compare",
        move || {
            longhaul_core::tools::compare::compare_with_sums(&expected, dir_mtimes, || {
                let mut c = longhaul_core::client::Connection::open(&options.address, secret.as_ref(), tls.as_ref(), timeout)?;
                let entries = c.tree_sums(path.as_bytes());
                c.close();
                entries
            })
        },
        binding_differences,
    )
}
