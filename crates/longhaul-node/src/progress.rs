use std::sync::Mutex;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};

use crate::types::BindingProgress;

/// The JS progress callback. The `.d.ts` cannot name this Rust alias, so each `#[napi]` function
/// taking one spells its JS type with `ts_arg_type`: `(progress: BindingProgress) => void` (not
/// callee-handled, so no leading error argument).
pub type ProgressFn = ThreadsafeFunction<BindingProgress, (), BindingProgress, Status, false, true>;

/// Forwards engine progress to JS, at most one event per `interval` (and always the last),
/// without blocking the engine: a busy JS thread drops events rather than slowing a transfer.
pub struct Forwarder {
    tsfn: Option<ProgressFn>,
    interval: Duration,
    last: Mutex<Instant>,
}

impl Forwarder {
    pub fn new(tsfn: Option<ProgressFn>, interval: Duration) -> Forwarder {
        Forwarder { tsfn, interval, last: Mutex::new(Instant::now() - interval) }
    }

    pub fn forward(&self, p: &longhaul_core::Progress) {
        let Some(tsfn) = self.tsfn.as_ref() else { return };
        let mut l = self.last.lock().expect("progress lock");
        if l.elapsed() >= self.interval || p.bytes_done == p.bytes_total {
            *l = Instant::now();
            tsfn.call(BindingProgress::from(p), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
