//! A search parameter's expression without the union branches that are empty on a resource
//! type (`Expression::for_root_type`) gives what the whole expression gives: over every core
//! search parameter on every R4 example and Synthea resource of its types.

use std::fs;
use std::path::{Path, PathBuf};

use hearth_engine::fhirpath::{self, LocalResolver, Options};
use hearth_engine::json::fhir::parse_resource;
use hearth_engine::model::{self, SEARCH_PARAMS};
use hearth_engine::resource::Object;

fn corpus() -> PathBuf {
    match std::env::var_os("HEARTH_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}

/// The resources of a file: the resource, or a Bundle's entries with the Bundle.
fn resources(text: &[u8]) -> Vec<Object> {
    let Ok(resource) = parse_resource(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if resource.type_def().name == "Bundle" {
        for entry in resource.values("entry") {
            if let hearth_engine::resource::Value::Complex(entry) = entry {
                for inner in entry.values("resource") {
                    if let hearth_engine::resource::Value::Resource(inner) = inner {
                        out.push(inner.clone());
                    }
                }
            }
        }
    }
    out.push(resource);
    out
}

#[test]
fn pruned_search_expressions_give_what_the_whole_expressions_give() {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["examples", "synthea"] {
        let Ok(entries) = fs::read_dir(corpus().join(dir)) else {
            continue;
        };
        files.extend(
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "json")),
        );
    }
    files.sort();
    assert!(
        files.len() > 800,
        "the corpus is at {}: {} files",
        corpus().display(),
        files.len()
    );
    let mut compared = 0usize;
    let mut pruned = 0usize;
    let mut differ = Vec::new();
    for path in &files {
        let text = fs::read(path).unwrap();
        for resource in resources(&text) {
            let type_name = resource.type_def().name;
            for def in SEARCH_PARAMS.iter().filter(|def| {
                def.base.iter().any(|base| {
                    *base == type_name || *base == "Resource" || *base == "DomainResource"
                })
            }) {
                let Some(text) = def.expression else { continue };
                let Ok(whole) = fhirpath::compile(text) else {
                    continue;
                };
                let Some(part) = whole.for_root_type(resource.type_id) else {
                    continue;
                };
                pruned += 1;
                let resolver = LocalResolver::new(&resource);
                let options = Options {
                    resolver: Some(&resolver),
                    lenient_as: true,
                    ..Options::default()
                };
                let expected = whole
                    .evaluate(&resource, &options)
                    .map(|items| fhirpath::to_json(&items))
                    .map_err(|err| err.to_string());
                let got = part
                    .evaluate(&resource, &options)
                    .map(|items| fhirpath::to_json(&items))
                    .map_err(|err| err.to_string());
                compared += 1;
                if expected != got {
                    differ.push(format!(
                        "{}: {} {}: {expected:?} vs {got:?}",
                        path.display(),
                        type_name,
                        def.code
                    ));
                }
            }
        }
    }
    println!(
        "pruned expressions compared: {compared} on {} files ({pruned} pruned), {} different",
        files.len(),
        differ.len()
    );
    assert!(compared > 10_000, "only {compared} comparisons");
    assert!(
        differ.is_empty(),
        "{} differ, first: {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    // The parameter of many types keeps one branch on each.
    let patient = SEARCH_PARAMS
        .iter()
        .find(|def| def.code == "patient" && def.base.contains(&"Observation"))
        .unwrap();
    let whole = fhirpath::compile(patient.expression.unwrap()).unwrap();
    let observation = model::type_by_name("Observation").unwrap();
    assert!(whole.for_root_type(observation).is_some());
}

#[test]
fn pruning_keeps_errors_and_declines_what_could_fail_on_an_empty_input() {
    let patient = parse_resource(br#"{"resourceType":"Patient","name":[{"given":["A","B"]}],"gender":"male","link":[{"other":{"reference":"Patient/x"},"type":"seealso"}]}"#).unwrap();
    let root = patient.type_id;
    let run = |expression: &fhirpath::Expression| {
        let resolver = LocalResolver::new(&patient);
        let options = Options {
            resolver: Some(&resolver),
            ..Options::default()
        };
        expression
            .evaluate(&patient, &options)
            .map(|items| fhirpath::to_json(&items))
            .map_err(|err| err.to_string())
    };
    let mut pruned = 0;
    for text in [
        // Pruned: the same answers.
        "Observation.subject | Patient.link.other",
        "Observation.subject.where(resolve() is Patient) | Patient.gender",
        "(Observation.value as Quantity) | Observation.value.ofType(Quantity).first() | Patient.gender",
        "Encounter.subject | Observation.subject",
        "Patient.name.given | Observation.status | Patient.name.given",
        "Observation.code | Patient.name.given.first() | Patient.name.given",
        // An argument evaluated, or checked, even on an empty input: not pruned, the same error.
        "Observation.extension(name.given) | Patient.gender",
        "Observation.extension(%unknown) | Patient.gender",
        "Observation.code.first(1) | Patient.gender",
        "Observation.where() | Patient.gender",
        "Observation.value.ofType(Quanity) | Patient.gender",
        // Functions with an answer on an empty input are kept.
        "Observation.exists() | Patient.gender",
        "Observation.count() | Patient.gender",
        "Observation.empty() | Patient.gender",
    ] {
        let whole = fhirpath::compile(text).unwrap();
        let part = whole.for_root_type(root);
        pruned += usize::from(part.is_some());
        let got = run(part.as_ref().unwrap_or(&whole));
        assert_eq!(got, run(&whole), "{text}");
    }
    assert_eq!(pruned, 6, "the first six are pruned");
    // A path deeper than the pruning follows is left whole (its depth fails evaluation).
    let deep = format!("Observation{} | Patient.gender", ".id".repeat(401));
    let whole = fhirpath::compile(&deep).unwrap();
    assert!(whole.for_root_type(root).is_none());
    // Only for a concrete resource type: a Patient is a DomainResource too.
    let abstract_root = model::type_by_name("DomainResource").unwrap();
    assert!(fhirpath::compile("Patient.gender | Observation.status")
        .unwrap()
        .for_root_type(abstract_root)
        .is_none());
}
