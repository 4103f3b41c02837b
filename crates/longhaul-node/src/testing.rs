//! Helpers for the SDK's tests: a way to build hostile content indexes, which the SDK itself
//! never produces.

use longhaul_core::vfile::index::{encode_entries, Entry, Kind};
use napi::bindgen_prelude::*;

use crate::types::BindingRawEntry;

/// Encodes entries into a content index exactly as given, without the checks `send` applies:
/// for tests that must show the node refusing a hostile index.
#[napi]
pub fn encode_index_unchecked(entries: Vec<BindingRawEntry>, total: f64) -> Result<Buffer> {
    let entries = entries
        .into_iter()
        .map(|e| {
            let kind = match e.kind.as_str() {
                "dir" => Kind::Dir,
                "file" => Kind::File,
                "symlink" => Kind::Symlink,
                "hardlink" => Kind::HardLink,
                k => return Err(Error::new(Status::InvalidArg, format!("unknown kind {k}"))),
            };
            Ok(Entry {
                path: e.path.into_bytes().into(),
                kind,
                mode: e.mode,
                mtime_ns: 0,
                size: e.size.unwrap_or(0.0) as u64,
                offset: e.offset.unwrap_or(0.0) as u64,
                target: e.target.unwrap_or_default().into_bytes().into(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(encode_entries(&entries, total as u64).into())
}
