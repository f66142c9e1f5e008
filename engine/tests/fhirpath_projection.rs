//! Evaluation on a projection (the resource keeping only the property names an expression can
//! read) gives what evaluation on the whole resource gives, or declines so that the caller
//! reads the whole resource: over every expression of the official FHIRPath R4 suite on its
//! inputs, and over every R4 example with expressions that reach into it.

use std::fs;
use std::path::{Path, PathBuf};

use hearth_engine::fhirpath::{self, Expression, Item, LocalResolver, Options, Temporal};
use hearth_engine::json::fhir::{parse_projection, parse_resource};
use hearth_engine::resource::Object;
use serde_json::{Map, Value};

fn corpus() -> PathBuf {
    match std::env::var_os("HEARTH_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}

/// What `JSON.stringify(value, names)` keeps: at every level, only the listed properties.
fn project(value: &Value, names: &[String]) -> Value {
    match value {
        Value::Object(object) => {
            let mut res = Map::new();
            for name in names {
                if let Some(inner) = object.get(name) {
                    res.insert(name.clone(), project(inner, names));
                }
            }
            Value::Object(res)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| project(item, names)).collect())
        }
        other => other.clone(),
    }
}

/// A node of `Expression::projection_shape`'s tree: each property kept, with what is kept
/// inside it; and whether its objects are kept whole (always, or resources of some types).
#[derive(Debug, Default)]
struct Shape {
    children: Vec<(String, Shape)>,
    whole: Option<Option<Vec<String>>>,
}

/// Reads `a,b(c,d(e)*),f*[Observation]` from `text` at `*at`, up to an unmatched `)` or the end.
fn read_shape(text: &[u8], at: &mut usize) -> Shape {
    let mut res = Vec::new();
    while *at < text.len() && text[*at] != b')' {
        let start = *at;
        while *at < text.len() && !matches!(text[*at], b',' | b'(' | b')' | b'*') {
            *at += 1;
        }
        let name = String::from_utf8(text[start..*at].to_vec()).expect("ASCII names");
        assert!(!name.is_empty(), "a name at {start}");
        let mut inner = Shape::default();
        if text.get(*at) == Some(&b'(') {
            *at += 1;
            inner = read_shape(text, at);
            assert_eq!(text.get(*at), Some(&b')'), "')' at {at}");
            *at += 1;
        }
        if text.get(*at) == Some(&b'*') {
            *at += 1;
            inner.whole = Some(None);
            if text.get(*at) == Some(&b'[') {
                let close = *at + text[*at..].iter().position(|b| *b == b']').expect("']'");
                let names = String::from_utf8(text[*at + 1..close].to_vec()).expect("ASCII");
                inner.whole = Some(Some(names.split('|').map(String::from).collect()));
                *at = close + 1;
            }
        }
        res.push((name, inner));
        if text.get(*at) == Some(&b',') {
            *at += 1;
        }
    }
    Shape {
        children: res,
        whole: None,
    }
}

/// What a JS host keeps of `value` by the tree: in each object, the listed properties only,
/// or all of it where the tree says whole; the paths of what it kept whole go to `wholes`.
fn project_shape(value: &Value, shape: &Shape, path: &str, wholes: &mut Vec<String>) -> Value {
    let step = |path: &str, name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    match value {
        Value::Object(object) => {
            let whole = match &shape.whole {
                None => false,
                Some(None) => true,
                Some(Some(types)) => object
                    .get("resourceType")
                    .and_then(Value::as_str)
                    .is_some_and(|found| types.iter().any(|name| name == found)),
            };
            if whole {
                wholes.push(path.to_string());
                return value.clone();
            }
            let mut res = Map::new();
            for (name, inner) in &shape.children {
                if let Some(item) = object.get(name) {
                    res.insert(
                        name.clone(),
                        project_shape(item, inner, &step(path, name), wholes),
                    );
                }
            }
            Value::Object(res)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(idx, item)| {
                    project_shape(item, shape, &step(path, &idx.to_string()), wholes)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The value at `path` (as `project_shape` writes paths) in `value`.
fn resolve<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.')
        .try_fold(value, |value, step| match step.parse::<usize>() {
            Ok(idx) => value.as_array()?.get(idx),
            Err(_) => value.as_object()?.get(step),
        })
}

#[derive(Default, Debug)]
struct Counts {
    agreed: usize,
    declined: usize,
    whole_only: usize,
    /// Evaluations on the tree's projection (`projection_shape`): agreed, declined.
    shape_agreed: usize,
    shape_declined: usize,
    mismatched: Vec<String>,
}

/// Evaluates on a tree's projection as the package does: `Ok(None)` when it declines, `Err`
/// when the projection does not read.
fn evaluate_tree(
    expression: &Expression,
    projected: &str,
    now: Option<Temporal>,
    json: &Value,
    wholes: &[String],
) -> Result<Option<Value>, String> {
    let part = parse_projection(projected.as_bytes())
        .map_err(|error| format!("the projection does not read ({error})"))?;
    let resolver = LocalResolver::new(&part);
    let options = Options {
        now,
        resolver: Some(&resolver),
        projection: true,
        ..Options::default()
    };
    let mut items = Vec::new();
    if expression
        .evaluate_streaming_whole_objects(&part, &options, &mut |item| items.push(item))
        .is_err()
    {
        return Ok(None);
    }
    let objects: Vec<&Object> = items
        .iter()
        .filter_map(|item| match item {
            Item::Object(object) => Some(*object),
            _ => None,
        })
        .collect();
    if objects.is_empty() {
        let text = fhirpath::to_json(&items);
        return Ok(Some(serde_json::from_str(&text).expect("JSON results")));
    }
    if objects.len() != items.len() {
        return Ok(None);
    }
    let mut res = Vec::new();
    for path in part.paths_to(&objects) {
        // Only what was kept whole is handed back; else the whole resource is read.
        let Some(path) = path.filter(|path| wholes.contains(path)) else {
            return Ok(None);
        };
        res.push(resolve(json, &path).cloned().ok_or("a path to nothing")?);
    }
    Ok(Some(Value::Array(res)))
}

/// Evaluates on a projection's JSON text; `None` when evaluation declines.
fn evaluate_projected(
    expression: &Expression,
    projected: &str,
    now: Option<Temporal>,
    label: &str,
    counts: &mut Counts,
) -> Option<Result<String, String>> {
    let Ok(part) = parse_projection(projected.as_bytes()) else {
        counts.mismatched.push(format!(
            "{label}: the projection does not read: {projected}"
        ));
        return None;
    };
    let resolver = LocalResolver::new(&part);
    let options = Options {
        now,
        resolver: Some(&resolver),
        projection: true,
        ..Options::default()
    };
    match expression.evaluate(&part, &options) {
        Ok(items) => Some(Ok(fhirpath::to_json(&items))),
        Err(_) => None,
    }
}

/// Compares evaluation on the projection of `json` with evaluation on the whole of it, both
/// written by one JSON writer (as a JS host writes both from one object: numbers as the
/// nearest double).
fn compare(expression: &Expression, json: &Value, label: &str, counts: &mut Counts) {
    let text = serde_json::to_string(json).expect("writes");
    let Ok(whole) = parse_resource(text.as_bytes()) else {
        return;
    };
    let now = Temporal::parse("2026-11-27T10:00:00.000+00:00", None);
    let resolver = LocalResolver::new(&whole);
    let options = Options {
        now,
        resolver: Some(&resolver),
        ..Options::default()
    };
    let want = expression
        .evaluate(&whole, &options)
        .map(|items| fhirpath::to_json(&items));
    let want = want.map_err(|error| error.to_string());
    // The tree, on the resource's own type, as the package uses it: objects among the results
    // are the input's own, when they were kept whole.
    let shape = json
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(|resource_type| expression.projection_shape(resource_type));
    if let Some(shape) = shape {
        let mut at = 0;
        let tree = read_shape(shape.as_bytes(), &mut at);
        assert_eq!(at, shape.len(), "{label}: the whole tree read: {shape}");
        let mut wholes = Vec::new();
        let projected = project_shape(json, &tree, "", &mut wholes);
        let projected = serde_json::to_string(&projected).expect("writes");
        match evaluate_tree(expression, &projected, now, json, &wholes) {
            Err(message) => counts
                .mismatched
                .push(format!("{label}: {message}: {projected}")),
            Ok(None) => counts.shape_declined += 1,
            Ok(Some(got)) => {
                let want = want
                    .as_ref()
                    .map(|text| serde_json::from_str::<Value>(text).expect("JSON results"));
                if Ok(&got) == want.as_ref() {
                    counts.shape_agreed += 1;
                } else {
                    counts.mismatched.push(format!(
                        "{label}: tree {shape}: projection {got}, whole {want:?}"
                    ));
                }
            }
        }
    }
    let Some(names) = expression.projection() else {
        counts.whole_only += 1;
        return;
    };
    let projected = serde_json::to_string(&project(json, &names)).expect("writes");
    match evaluate_projected(expression, &projected, now, label, counts) {
        Some(got) if got == want => counts.agreed += 1,
        Some(got) => counts
            .mismatched
            .push(format!("{label}: projection {got:?}, whole {want:?}")),
        // Declined: the caller evaluates on the whole resource.
        None => counts.declined += 1,
    }
}

#[test]
fn projections_agree_with_whole_resources_on_the_official_suite() {
    let dir = corpus().join("fhirpath");
    let xml = fs::read_to_string(dir.join("tests-fhir-r4.xml")).expect("suite");
    let doc = roxmltree::Document::parse(&xml).expect("suite XML");
    let mut counts = Counts::default();
    let mut inputs = std::collections::HashMap::new();
    for test in doc.descendants().filter(|node| node.has_tag_name("test")) {
        let Some(input) = test.attribute("inputfile") else {
            continue;
        };
        let Some(text) = test
            .children()
            .find(|node| node.has_tag_name("expression"))
            .and_then(|node| node.text())
        else {
            continue;
        };
        let Ok(expression) = fhirpath::compile(text) else {
            continue;
        };
        let json_text = inputs.entry(input.to_string()).or_insert_with(|| {
            fs::read_to_string(dir.join(input.replace(".xml", ".json"))).unwrap_or_default()
        });
        let Ok(json) = serde_json::from_str::<Value>(json_text) else {
            continue;
        };
        let label = format!("{} ({input})", text);
        compare(&expression, &json, &label, &mut counts);
    }
    println!(
        "fhirpath projections, official suite: {} agree, {} declined (evaluated whole), {} read anything; by type tree {} agree, {} declined; {} differ",
        counts.agreed,
        counts.declined,
        counts.whole_only,
        counts.shape_agreed,
        counts.shape_declined,
        counts.mismatched.len()
    );
    assert!(counts.mismatched.is_empty(), "{:#?}", counts.mismatched);
    assert!(counts.agreed > 300, "{counts:?}");
    assert!(counts.declined > 0, "{counts:?}");
}

#[test]
fn projections_agree_with_whole_resources_on_the_r4_examples() {
    // Expressions that navigate, filter, compare with literals, count, resolve and look for
    // extensions; and some whose answer needs whole objects (results, comparisons, unions).
    const EXPRESSIONS: &[&str] = &[
        "id",
        "meta.lastUpdated",
        "text.status",
        "identifier.where(system.exists()).value",
        "identifier.count()",
        "extension.url",
        "extension.value",
        "extension('http://hl7.org/fhir/StructureDefinition/patient-birthPlace').value.city",
        "contained.id",
        "contained.ofType(Patient).name.family",
        "code.coding.where(system = 'http://loinc.org').code",
        "code.coding.code.distinct()",
        "code.text.length()",
        "subject.reference",
        "subject.resolve().id",
        "status = 'final'",
        "value.ofType(Quantity).value > 5",
        "value.ofType(Quantity) > 5 'mg'",
        "value.ofType(Quantity).unit",
        "(value as Quantity).value",
        "effective.ofType(dateTime) > @2010",
        "component.value.ofType(Quantity).value.sum()",
        "name.given.first()",
        "name.where(use = 'official').exists()",
        "name.exists() and name.count() > 1",
        "name.empty()",
        "name.family | name.given",
        "telecom.where(system = 'phone').value",
        "birthDate < @2000-01-01",
        "item.linkId",
        "item.item.count()",
        "entry.resource.id",
        "entry.fullUrl",
        "entry.resource.ofType(Observation).code.coding.code",
        "iif(active, 'yes', 'no')",
        "category.coding.display.join(', ')",
        // Named by type, as `tests/perf/fhirpath.bench.js` names them.
        "Patient.name.where(use = 'official').given.first()",
        "Patient.birthDate",
        "Patient.telecom.where(system = 'phone').value",
        "Patient.address.city",
        "Observation.code.coding.where(system = 'http://loinc.org').code",
        "Observation.value.ofType(Quantity).value",
        "Observation.subject.reference",
        "Observation.component.code.coding.code",
        "Condition.clinicalStatus.coding.code",
        "Encounter.period.start",
        "Encounter.type.coding.display",
        "Procedure.code.coding.exists(system = 'http://snomed.info/sct')",
        "Patient.identifier.where(type.coding.code = 'MR').value",
        "MedicationRequest.medication.ofType(CodeableConcept).coding.code",
        "DiagnosticReport.result.count()",
        "Claim.total.value > 100",
        // Types narrowed, choices, quantities, primitives' extensions, other resources.
        "Observation.value > 5 'mg'",
        "Encounter.length > 5 'min'",
        "Observation.valueQuantity.value",
        "(Observation.value as Quantity).unit",
        "Observation.value.ofType(string).length()",
        "Observation.component.where(code.coding.code = '8480-6').value.ofType(Quantity).value",
        "Patient.birthDate.extension.url",
        "Patient.name.given.extension.value",
        "Patient.name.select(given | family)",
        "Patient.name.given[0]",
        "Patient.name.given.union(Patient.name.family)",
        "iif(Patient.active, Patient.name.family, Patient.name.given)",
        "Patient.telecom.where(use = %resource.telecom.first().use).value",
        "contained.ofType(Patient).gender",
        "contained.where($this is Medication).code.coding.code",
        "Bundle.entry.resource.ofType(Patient).birthDate",
        "Bundle.entry.resource.ofType(Observation).value.ofType(Quantity).unit",
        "Bundle.entry.where(resource is Patient).fullUrl",
        "Questionnaire.item.item.linkId",
        "Patient.contact.name.family",
        "meta.tag.code | meta.security.code",
        "text.`div`.length() > 10",
        // Whole objects: results, comparisons and sets of them.
        "name",
        "code",
        "identifier.first()",
        "name.distinct()",
        "name | name",
        "name = name",
        "name.first() = name.last()",
        "name.first() != name.last()",
        "identifier.distinct().count()",
        "(identifier | identifier).count()",
        "telecom.isDistinct()",
        "identifier.first() ~ identifier.last()",
        "identifier.exclude(identifier.first()).count()",
        "identifier.subsetOf(identifier.first())",
        "code ~ code",
        "identifier.intersect(identifier)",
        "identifier.first() in identifier",
        "%resource",
        "descendants().count()",
        "children().count()",
    ];
    let compiled: Vec<(&str, Expression)> = EXPRESSIONS
        .iter()
        .map(|text| (*text, fhirpath::compile(text).expect("compiles")))
        .collect();
    let dir = corpus().join("examples");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("examples")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    names.sort();
    let mut counts = Counts::default();
    for path in &names {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        for (expression_text, expression) in &compiled {
            let label = format!("{expression_text} on {}", path.display());
            compare(expression, &json, &label, &mut counts);
        }
    }
    println!(
        "fhirpath projections, R4 examples: {} agree, {} declined (evaluated whole), {} read anything; by type tree {} agree, {} declined; {} differ",
        counts.agreed,
        counts.declined,
        counts.whole_only,
        counts.shape_agreed,
        counts.shape_declined,
        counts.mismatched.len()
    );
    assert!(
        counts.mismatched.is_empty(),
        "{:#?}",
        &counts.mismatched[..counts.mismatched.len().min(20)]
    );
    assert!(counts.agreed > 10_000, "{counts:?}");
    assert!(counts.declined > 1_000, "{counts:?}");
}
