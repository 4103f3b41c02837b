//! The napi-rs binding: converts types, starts engine threads, settles promises from them and
//! forwards progress. Engine logic lives in `longhaul-core`; if a function here grows logic,
//! that logic belongs there.

#[macro_use]
extern crate napi_derive;

mod cancel;
mod client;
mod compare;
mod constants;
mod convert;
mod doctor;
mod error;
mod progress;
mod promise;
mod send;
mod serve;
mod testing;
mod types;
