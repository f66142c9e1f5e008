//! Validation of every official R4 example and every Synthea bundle against the base
//! specification. Prints how many validate clean, and every error found; Synthea must be
//! clean, and the examples' errors must be the known errata listed here.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::outcome::Severity;
use hearth_engine::validation::validate;

fn corpus() -> PathBuf {
    match std::env::var_os("HEARTH_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}

fn errors_in(dir: &str) -> (usize, BTreeMap<String, Vec<String>>) {
    let mut files: Vec<PathBuf> = fs::read_dir(corpus().join(dir))
        .unwrap_or_else(|err| panic!("{dir}: {err}"))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut errors = BTreeMap::new();
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let Ok(resource) = parse_resource(&fs::read(file).unwrap_or_default()) else {
            continue;
        };
        let found: Vec<String> = validate(&resource)
            .into_iter()
            .filter(|finding| finding.severity == Severity::Error)
            .map(|finding| format!("{}: {}", finding.path, finding.message))
            .collect();
        if !found.is_empty() {
            errors.insert(name, found);
        }
    }
    (files.len(), errors)
}

#[test]
fn synthea_validates_clean_against_the_base_spec() {
    let (total, errors) = errors_in("synthea");
    println!(
        "validation: synthea {total} bundles, {} with errors",
        errors.len()
    );
    for (name, found) in &errors {
        for error in found.iter().take(5) {
            println!("  {name}: {error}");
        }
    }
    assert!(errors.is_empty());
}

/// Examples that break the R4 base specification, with the reason (a piece of each error).
const ERRATA: &[(&str, &str)] = &[
    // Narratives that are an empty <div>: txt-1 and txt-2 (both `htmlChecks()`) fail.
    ("ActivityDefinition-blood-tubes-supply.json", "txt-"),
    ("ActivityDefinition-heart-valve-replacement.json", "txt-"),
    ("EventDefinition-example.json", "txt-"),
    ("PlanDefinition-KDN5.json", "txt-"),
    ("Questionnaire-zika-virus-exposure-assessment.json", "txt-"),
    // Display items without the required linkId (Questionnaire.item.linkId is 1..1).
    (
        "Questionnaire-qs1.json",
        "missing required element \"linkId\"",
    ),
    // R4's que-7 reads `answer is Boolean`, the System type, which a FHIR boolean is not
    // (the FHIRPath suite's testType12); R5 corrects the invariant to `answer is boolean`.
    ("Questionnaire-bb.json", "que-7"),
    // SearchParameter.base is 1..*.
    (
        "SearchParameter-codesystem-extensions-CodeSystem-author.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-effective.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-end.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-keyword.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-codesystem-extensions-CodeSystem-workflow.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-author.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-effective.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-end.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-keyword.json",
        "missing required element \"base\"",
    ),
    (
        "SearchParameter-valueset-extensions-ValueSet-workflow.json",
        "missing required element \"base\"",
    ),
    // An id of 68 characters; ids have at most 64.
    (
        "SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json",
        "expected a valid id value",
    ),
    // Full URLs `.../Observation/lri-gramstain1` for resources whose id is `gramstain1`:
    // a RESTful fullUrl must end with the resource's type and id.
    ("Bundle-lri-example.json", "is a RESTful URL"),
    // `.../Patient/pat12` for the Patient whose id is `pat2`.
    (
        "Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json",
        "is a RESTful URL",
    ),
    (
        "Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json",
        "is a RESTful URL",
    ),
    // Search parameters declared with another type than their definition's: the core
    // `*-version` parameters are tokens, ValueSet-reference a uri, ConceptMap-source/-target
    // references.
    (
        "CapabilityStatement-knowledge-repository.json",
        "but is declared here as",
    ),
    (
        "CapabilityStatement-measure-processor.json",
        "but is declared here as",
    ),
    (
        "CapabilityStatement-terminology-server.json",
        "but is declared here as",
    ),
    // References to a type the element does not allow (the element's targetProfile).
    (
        "DeviceMetric-example.json",
        "found a reference to a DeviceDefinition",
    ),
    (
        "DeviceUseStatement-example.json",
        "found a reference to a Procedure",
    ),
    (
        "MedicationRequest-medrx0301.json",
        "found a reference to a Practitioner",
    ),
    (
        "Observation-clinical-gender.json",
        "found a reference to an Encounter",
    ),
    // Logical models that are neither abstract nor based on anything (sdf-4).
    ("StructureDefinition-Definition.json", "sdf-4"),
    ("StructureDefinition-Event.json", "sdf-4"),
    ("StructureDefinition-FiveWs.json", "sdf-4"),
    ("StructureDefinition-Request.json", "sdf-4"),
];

#[test]
fn r4_examples_validate_clean_but_for_known_errata() {
    let (total, errors) = errors_in("examples");
    println!(
        "validation: examples {total} files, {} clean, {} known errata",
        total - errors.len(),
        errors.len()
    );
    let mut unexpected = Vec::new();
    for (name, found) in &errors {
        match ERRATA.iter().find(|(erratum, _)| erratum == name) {
            Some((_, reason)) => unexpected.extend(
                found
                    .iter()
                    .filter(|error| !error.contains(reason))
                    .map(|error| format!("{name}: {error}")),
            ),
            None => unexpected.extend(found.iter().map(|error| format!("{name}: {error}"))),
        }
    }
    for (erratum, _) in ERRATA {
        if !errors.contains_key(*erratum) {
            unexpected.push(format!(
                "{erratum}: listed as an erratum but validates clean"
            ));
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}
