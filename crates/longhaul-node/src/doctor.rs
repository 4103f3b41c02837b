use crate::types::BindingCheck;

/// Probes each fast path and limit (sendfile, mlock, pinning, NUMA, placement, socket buffer
/// maxima, open files, io_uring) and says what to do about each that is off.
#[napi]
pub fn doctor() -> crate::error::Result<Vec<BindingCheck>> {
    let checks = crate::error::sync("doctor", || Ok(longhaul_core::tools::doctor::run(std::path::Path::new("/"))))?;
    Ok(checks.into_iter().map(|c| BindingCheck { name: c.name.to_owned(), ok: c.ok, detail: c.detail, advice: c.advice }).collect())
}
