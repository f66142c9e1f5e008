use hearth_engine::fhirpath::{self, Options};
use hearth_engine::json::fhir::parse_resource;
use hearth_engine::resource::{Object, Value};
use std::time::Instant;
fn main() {
    let mut resources: Vec<Object> = Vec::new();
    for entry in std::fs::read_dir("../shared/corpus/synthea")
        .into_iter()
        .flatten()
        .flatten()
    {
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
    let only = std::env::args().nth(1);
    let expressions = [
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
    ];
    let mut total = 0.0;
    for (type_name, text) in expressions {
        if only.as_deref().is_some_and(|o| !text.contains(o)) {
            continue;
        }
        let expression = fhirpath::compile(text).unwrap();
        let matching: Vec<Object> = resources
            .iter()
            .filter(|r| r.type_def().name == type_name)
            .cloned()
            .collect();
        let rounds = 3000;
        let start = Instant::now();
        let mut sink = 0;
        for _ in 0..rounds {
            let mut out = String::with_capacity(matching.len() * 16);
            let collections = Vec::new();
            for resource in &matching {
                let resolver = fhirpath::LocalResolver::new(resource);
                let options = Options {
                    variables: &collections,
                    resolver: Some(&resolver),
                    now: None,
                    root_resource: None,
                    lenient_as: false,
                    projection: false,
                };
                out.push('[');
                let mut first = true;
                expression
                    .evaluate_streaming(resource, &options, &mut |item| {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        fhirpath::write_item(&mut out, &item);
                    })
                    .unwrap();
                out.push(']');
            }
            sink += out.len();
        }
        let per = start.elapsed().as_secs_f64() / rounds as f64 * 1e3;
        total += per;
        println!(
            "{text:<70} {per:.4} ms/pass ({} ns each) sink {sink}",
            (per * 1e6 / matching.len() as f64) as u64
        );
    }
    println!("total {total:.3}");
}
