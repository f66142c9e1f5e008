//! Times FHIRPath evaluation natively over the Synthea resources (no Wasm, no JS), each
//! resource's results streamed out as `evaluateEach` takes them:
//! `cargo run --release -p hearth-engine --example fhirpath_timing -- DIR [ROUNDS]`.
use std::time::Instant;

use hearth_engine::fhirpath::{self, Item, Options};
use hearth_engine::json::fhir::parse_resource;
use hearth_engine::resource::{Object, Value};

/// The expressions of `tests/perf/fhirpath.bench.js`, with the type each is evaluated over.
const EXPRESSIONS: [(&str, &str); 17] = [
    (
        "Patient",
        "Patient.name.where(use = 'official').given.first()",
    ),
    ("Patient", "Patient.birthDate"),
    ("Patient", "Patient.telecom.where(system = 'phone').value"),
    ("Patient", "Patient.address.city"),
    (
        "Observation",
        "Observation.code.coding.where(system = 'http://loinc.org').code",
    ),
    ("Observation", "Observation.value.ofType(Quantity).value"),
    ("Observation", "Observation.subject.reference"),
    ("Observation", "Observation.component.code.coding.code"),
    ("Condition", "Condition.clinicalStatus.coding.code"),
    ("Encounter", "Encounter.period.start"),
    ("Encounter", "Encounter.type.coding.display"),
    (
        "Procedure",
        "Procedure.code.coding.exists(system = 'http://snomed.info/sct')",
    ),
    (
        "Patient",
        "Patient.identifier.where(type.coding.code = 'MR').value",
    ),
    (
        "MedicationRequest",
        "MedicationRequest.medication.ofType(CodeableConcept).coding.code",
    ),
    ("DiagnosticReport", "DiagnosticReport.result.count()"),
    ("Claim", "Claim.total.value > 100"),
    ("Bundle", "Bundle.entry.resource.ofType(Observation)"),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| String::from("../shared/corpus/synthea"));
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let mut resources: Vec<Object> = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let Ok(mut bundle) = parse_resource(&std::fs::read(path).unwrap_or_default()) else {
            continue;
        };
        for entry in bundle.values("entry") {
            if let Value::Complex(entry) = entry {
                if let Some(Value::Resource(resource)) = entry.values("resource").next() {
                    resources.push(resource.clone());
                }
            }
        }
        bundle.arrange_for_reading();
        resources.push(bundle);
    }
    let only = std::env::var("ONLY").ok();
    let mut total = 0.0;
    for (type_name, text) in EXPRESSIONS {
        if only
            .as_ref()
            .is_some_and(|only| !text.contains(only.as_str()))
        {
            continue;
        }
        let Ok(expression) = fhirpath::compile(text) else {
            continue;
        };
        let matching: Vec<&Object> = resources
            .iter()
            .filter(|r| r.type_def().name == type_name)
            .collect();
        let start = Instant::now();
        let results = evaluate_all(&expression, &matching, rounds);
        let elapsed = start.elapsed().as_secs_f64();
        total += elapsed;
        let micros = elapsed * 1e6 / (rounds * matching.len()) as f64;
        println!(
            "{text:<70} {micros:>8.3} µs per resource ({} resources, {} results)",
            matching.len(),
            results / rounds.max(1)
        );
    }
    println!("all: {:.1} ms per round", total * 1e3 / rounds as f64);
}

/// Evaluates `expression` on every resource `rounds` times, writing the results out as
/// `evaluateEach` does; answers the number of results. (A function of its own, so that a
/// profiler can count its instructions alone.)
#[inline(never)]
fn evaluate_all(expression: &fhirpath::Expression, resources: &[&Object], rounds: usize) -> usize {
    let mut out = String::new();
    let mut results = 0;
    for _ in 0..rounds {
        out.clear();
        for resource in resources {
            let resolver = fhirpath::LocalResolver::new(resource);
            let options = Options {
                variables: &[],
                resolver: Some(&resolver),
                now: None,
                root_resource: None,
                lenient_as: false,
                projection: false,
            };
            let _ = expression.evaluate_streaming(resource, &options, &mut |item| {
                results += 1;
                match &item {
                    Item::Object(_) => out.push('O'),
                    item => fhirpath::write_item(&mut out, item),
                }
            });
        }
    }
    results
}
