use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation flag shared with an engine transfer. The SDK sets it from an AbortSignal;
/// the engine's threads check it and stop, removing what they had not finished.
#[napi]
pub struct BindingCancel {
    pub(crate) flag: Arc<AtomicBool>,
}

#[napi]
impl BindingCancel {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        BindingCancel { flag: Arc::new(AtomicBool::new(false)) }
    }

    /// Asks the transfer to stop. Idempotent.
    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}
