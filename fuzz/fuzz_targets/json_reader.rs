//! Any bytes: the strict JSON reader never panics.
#![no_main]

use hearth_engine::json::reader::{parse, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = parse(bytes, Limits::default());
});
