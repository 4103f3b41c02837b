//! A panic in an engine thread is a bug in longhaul, not a network fault: it ends the transfer
//! with `E_PANIC` naming the thread's role (never `E_PROTOCOL`, which the SDK retries), and the
//! process (a storage node, a Node.js host) goes on. Every engine thread runs its body through
//! `catch`, and every join that could still see a panic maps it with `from_payload`.
//!
//! Test-only: `LONGHAUL_TEST_PANIC=ROLE` (read once per process; Rust tests call
//! `inject_for_tests`) makes every thread of that role panic as it starts, so tests can show
//! what a panic does where it happens. Unset in production; setting it only makes transfers
//! fail. Roles: `reader`, `processor`, `sender`, `worker`, `driver`, `digester`,
//! `control watcher` (a sender's or a receiver's), `receiver` (a data connection's),
//! `writer`, `connection` (a node's session), `copy`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// Runs `f` as the body of a thread of role `role`; a panic in it becomes `Error::Panic`.
pub fn catch<T>(role: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(|| {
        inject(role);
        f()
    }))
    .unwrap_or_else(|p| Err(from_payload(role, p)))
}

/// The error for a panic caught (or seen at a join) in a thread of role `role`.
pub fn from_payload(role: &'static str, payload: Box<dyn Any + Send>) -> Error {
    let message = match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast::<&'static str>().map_or_else(|_| "a panic without a message".to_owned(), |s| (*s).to_owned()),
    };
    Error::Panic { role, message }
}

/// The role whose threads panic as they start: `LONGHAUL_TEST_PANIC` at first use, then what
/// `inject_for_tests` sets.
fn injected() -> &'static Mutex<Option<String>> {
    static ROLE: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    ROLE.get_or_init(|| Mutex::new(std::env::var("LONGHAUL_TEST_PANIC").ok().filter(|r| !r.is_empty())))
}

/// The test hook: panics if the injected role is `role`.
pub fn inject(role: &str) {
    if injected().lock().unwrap_or_else(|e| e.into_inner()).as_deref() == Some(role) {
        panic!("LONGHAUL_TEST_PANIC={role}");
    }
}

/// Test-only: makes every thread of `role` panic as it starts from now on (`None`: none).
#[doc(hidden)]
pub fn inject_for_tests(role: Option<&str>) {
    *injected().lock().unwrap_or_else(|e| e.into_inner()) = role.map(str::to_owned);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_e_panic_with_the_role_and_the_message() {
        let e = catch::<()>("reader", || panic!("block {} out of range", 7)).unwrap_err();
        assert_eq!(e.code(), "E_PANIC");
        assert!(matches!(&e, Error::Panic { role: "reader", message } if message == "block 7 out of range"), "{e}");
        let e = catch::<()>("writer", || panic!("static")).unwrap_err();
        assert!(e.to_string().contains("writer") && e.to_string().contains("static"), "{e}");
        assert_eq!(catch("writer", || Ok(3)).unwrap(), 3);
        assert_eq!(catch::<()>("writer", || Err(Error::Cancelled)).unwrap_err().code(), "E_CANCELLED");
    }
}
