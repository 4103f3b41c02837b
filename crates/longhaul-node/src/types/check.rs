//! A probe of `doctor`.

/// One probe of `doctor`.
#[napi(object)]
pub struct BindingCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when it is not ok.
    pub advice: Option<String>,
}
