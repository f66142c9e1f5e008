//! Times validation natively over the Synthea resources (no Wasm, no JS):
//! `cargo run --release -p hearth-engine --example validate_timing -- DIR`.
use std::time::Instant;

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::resource::{Object, Value};
use hearth_engine::validation::Validator;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| String::from("../shared/corpus/synthea"));
    let mut resources: Vec<Object> = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    names.sort();
    for path in names {
        let Ok(bundle) = parse_resource(&std::fs::read(&path).unwrap_or_default()) else {
            continue;
        };
        for entry in bundle.values("entry") {
            if let Value::Complex(entry) = entry {
                if let Some(Value::Resource(resource)) = entry.values("resource").next() {
                    resources.push(resource.clone());
                }
            }
        }
    }
    let mut validator = Validator::new();
    let rounds = 5;
    let start = Instant::now();
    let mut findings = 0;
    for _ in 0..rounds {
        for resource in &resources {
            findings += validator.validate(resource).len();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "validation: {} resources x {rounds}, {:.0} resources/s natively (findings {findings})",
        resources.len(),
        (resources.len() * rounds) as f64 / seconds
    );
}
