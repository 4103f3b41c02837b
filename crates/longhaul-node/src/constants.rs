//! The engine's tables, which the SDK reads once at load: its defaults and the bounds of every
//! option, and every error code it raises.

use crate::types::BindingDefaults;

/// The engine's defaults (`SendOptions`, `ServeOptions`, `GetOptions`) and the bounds of every
/// option, which the SDK's checks and the CLI's config schema read.
#[napi]
pub fn defaults() -> BindingDefaults {
    crate::convert::defaults()
}

/// Every error code the engine produces (`longhaul_core::error::CODES`).
#[napi]
pub fn error_codes() -> Vec<String> {
    longhaul_core::error::CODES.iter().map(|c| c.to_string()).collect()
}
