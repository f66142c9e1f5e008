//! Times FHIRPath evaluation natively over the Synthea resources (no Wasm, no JS):
//! `cargo run --release -p hearth-engine --example fhirpath_timing -- DIR`.
use std::time::Instant;

use hearth_engine::fhirpath::{self, Options};
use hearth_engine::json::fhir::parse_resource;
use hearth_engine::resource::{Object, Value};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| String::from("../shared/corpus/synthea"));
    let mut resources: Vec<Object> = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|ext| ext == "json") {
            let Ok(bundle) = parse_resource(&std::fs::read(entry.path()).unwrap_or_default())
            else {
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
    }
    let expressions = [
        (
            "Patient",
            "Patient.name.where(use = 'official').given.first()",
        ),
        (
            "Observation",
            "Observation.code.coding.where(system = 'http://loinc.org').code",
        ),
        ("Observation", "Observation.value.ofType(Quantity).value"),
        ("Encounter", "Encounter.period.start"),
    ];
    for (type_name, text) in expressions {
        let Ok(expression) = fhirpath::compile(text) else {
            continue;
        };
        let matching: Vec<&Object> = resources
            .iter()
            .filter(|r| r.type_def().name == type_name)
            .collect();
        let rounds = 200;
        let start = Instant::now();
        let mut sink = 0;
        for _ in 0..rounds {
            for resource in &matching {
                let variables = fhirpath::Variables::default();
                let collections = variables.collections();
                let resolver = fhirpath::LocalResolver::new(resource);
                let options = Options {
                    variables: &collections,
                    resolver: Some(&resolver),
                    now: None,
                    root_resource: None,
                    lenient_as: false,
                    projection: false,
                };
                sink += expression
                    .evaluate(resource, &options)
                    .map(|r| fhirpath::to_json(&r).len())
                    .unwrap_or(0);
            }
        }
        let per_second = (rounds * matching.len()) as f64 / start.elapsed().as_secs_f64();
        println!("{text:<70} {per_second:>12.0} evaluations/s (sink {sink})");
    }
}
