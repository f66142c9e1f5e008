//! Every official R4 example and every Synthea bundle reads into the typed model and writes back
//! to JSON equal to the input: the same keys, the same values, number text identical.
//!
//! The corpus is `../shared/corpus` beside the repository (or `$HEARTH_CORPUS`). Its absence is
//! a failure, never a skip.

use std::fs;
use std::path::{Path, PathBuf};

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::json::reader::{self, Limits, Node};
use hearth_engine::json::write::{write_resource, Style};
use hearth_engine::resource::{Object, Value};

fn corpus() -> PathBuf {
    match std::env::var_os("HEARTH_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// The first difference between two JSON trees, as a path, or `None` when they are equal.
fn difference(left: &Node, right: &Node, path: &str) -> Option<String> {
    use hearth_engine::json::reader::Value;
    match (&left.value, &right.value) {
        (Value::Object(left), Value::Object(right)) => {
            for member in left {
                match right.iter().find(|other| other.key == member.key) {
                    None => return Some(format!("{path}.{} missing from the output", member.key)),
                    Some(other) => {
                        if let Some(diff) =
                            difference(&member.node, &other.node, &format!("{path}.{}", member.key))
                        {
                            return Some(diff);
                        }
                    }
                }
            }
            right
                .iter()
                .find(|other| !left.iter().any(|member| member.key == other.key))
                .map(|extra| format!("{path}.{} added by the output", extra.key))
        }
        (Value::Array(left), Value::Array(right)) if left.len() == right.len() => left
            .iter()
            .zip(right)
            .enumerate()
            .find_map(|(idx, (l, r))| difference(l, r, &format!("{path}[{idx}]"))),
        (l, r) if l == r => None,
        (l, r) => Some(format!("{path}: {l:?} became {r:?}")),
    }
}

/// How many resources a resource holds, itself included (`contained`, `Bundle.entry.resource`).
fn count_resources(object: &Object) -> usize {
    1 + object
        .fields
        .iter()
        .map(|field| match &field.value {
            Value::Resource(inner) => count_resources(inner),
            Value::Complex(inner) => count_resources(inner) - 1,
            Value::Primitive(_) => 0,
        })
        .sum::<usize>()
}

/// Reads, writes (compact and pretty) and compares one file, and lays the resource out for
/// reading (which must change nothing of it); `Err` says why it failed. `Ok` holds the number
/// of resources in the file and whether the layout moved its parts.
fn round_trip(bytes: &[u8]) -> Result<(usize, bool), String> {
    let input =
        reader::parse(bytes, Limits::default()).map_err(|err| format!("not JSON: {err}"))?;
    let resource = parse_resource(bytes).map_err(|err| format!("refused: {err}"))?;
    for style in [Style::Compact, Style::Pretty] {
        let text = write_resource(&resource, style);
        let output = reader::parse(text.as_bytes(), Limits::default())
            .map_err(|err| format!("wrote bad JSON: {err}"))?;
        if let Some(diff) = difference(&input, &output, "") {
            return Err(format!("{style:?} output differs at {diff}"));
        }
        let again =
            parse_resource(text.as_bytes()).map_err(|err| format!("output refused: {err}"))?;
        if again != resource {
            return Err(format!("{style:?} output reads back differently"));
        }
    }
    let mut arranged = resource.clone();
    let before = arranged.fields.as_ptr();
    arranged.arrange_for_reading();
    let moved = arranged.fields.as_ptr() != before;
    if arranged != resource
        || write_resource(&arranged, Style::Compact) != write_resource(&resource, Style::Compact)
    {
        return Err(String::from("laid out for reading, it differs"));
    }
    Ok((count_resources(&resource), moved))
}

/// Files whose round trip fails because the file breaks the FHIR JSON rules, with the reason.
/// Each entry is checked: it must still fail, with a message containing the given text.
const ERRATA: &[(&str, &str)] = &[];

/// Returns how many files were laid out anew for reading.
fn run(dir: &str, expected_min: usize) -> usize {
    let files = json_files(&corpus().join(dir));
    assert!(
        files.len() >= expected_min,
        "expected at least {expected_min} files in {dir}, found {}",
        files.len()
    );
    let (mut passed, mut errata, mut resources, mut failures) = (0, 0, 0, Vec::new());
    let mut arranged = 0;
    for file in &files {
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let bytes = fs::read(file).unwrap_or_default();
        let result = round_trip(&bytes);
        match (result, ERRATA.iter().find(|(erratum, _)| *erratum == name)) {
            (Ok((count, moved)), None) => {
                passed += 1;
                resources += count;
                arranged += usize::from(moved);
            }
            (Err(why), Some((_, reason))) if why.contains(reason) => errata += 1,
            (Ok(_), Some(_)) => failures.push(format!("{name}: listed as an erratum but passes")),
            (Err(why), _) => failures.push(format!("{name}: {why}")),
        }
    }
    println!(
        "{dir}: {} files ({resources} resources), {passed} round-trip, {errata} known errata, {} failed; {arranged} laid out anew for reading",
        files.len(),
        failures.len()
    );
    for failure in &failures {
        println!("  FAIL {failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} files in {dir} failed",
        failures.len(),
        files.len()
    );
    arranged
}

#[test]
fn every_r4_example_round_trips() {
    // The Bundles and Parameters among them hold resources in their elements' elements.
    let arranged = run("examples", 825);
    assert!(
        arranged >= 25,
        "only {arranged} examples were laid out anew"
    );
}

#[test]
fn every_synthea_bundle_round_trips() {
    let arranged = run("synthea", 32);
    assert_eq!(arranged, 32, "every Synthea Bundle is laid out anew");
}
