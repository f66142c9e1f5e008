//! What the REST and search tests share: a fixed clock and counting ids.

use std::cell::Cell;

use hearth_engine::rest::{Clock, IdSource};

/// Always the same instant.
pub struct FixedClock;
impl Clock for FixedClock {
    fn now(&self) -> String {
        String::from("2026-11-27T10:20:30.000Z")
    }
}

/// Ids `id1`, `id2`, ...
#[derive(Default)]
pub struct Counter(Cell<u32>);
impl IdSource for Counter {
    fn next_id(&self) -> String {
        self.0.set(self.0.get() + 1);
        format!("id{}", self.0.get())
    }
}
