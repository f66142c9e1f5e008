//! FHIRPath over large collections: set operations (`distinct`, `union`, `intersect`,
//! `exclude`, `repeat`) on tens of thousands of items give exact answers without comparing
//! every item with every other.

use hearth_engine::fhirpath::{self, Options};
use hearth_engine::json::fhir::parse_resource;
use hearth_engine::resource::Object;

const ENTRIES: usize = 40_000;

/// A Bundle of `ENTRIES` Observations whose values repeat every 1,000, with codes that repeat
/// every 500, and dates over 400 days.
fn bundle() -> Object {
    let mut text = String::from(r#"{"resourceType":"Bundle","type":"collection","entry":["#);
    for idx in 0..ENTRIES {
        if idx > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"resource":{{"resourceType":"Observation","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"c{}"}}]}},"effectiveDateTime":"2020-{:02}-{:02}","valueQuantity":{{"value":{}.{},"unit":"mg"}}}}}}"#,
            idx % 500,
            1 + (idx / 28) % 12,
            1 + idx % 28,
            idx % 1000,
            if idx % 2 == 0 { "0" } else { "00" },
        ));
    }
    text.push_str("]}");
    parse_resource(text.as_bytes()).unwrap_or_else(|err| panic!("{err}"))
}

fn eval(resource: &Object, text: &str) -> String {
    let expression = fhirpath::compile(text).unwrap_or_else(|err| panic!("{text}: {err}"));
    let result = expression
        .evaluate(resource, &Options::default())
        .unwrap_or_else(|err| panic!("{text}: {err}"));
    fhirpath::to_json(&result)
}

#[test]
fn set_operations_on_large_collections_are_exact() {
    let bundle = bundle();
    let values = "Bundle.entry.resource.value.ofType(Quantity).value";
    let codes = "Bundle.entry.resource.code.coding.code";
    let cases = [
        // 1.0 and 1.00 are equal numbers: 1,000 distinct values.
        (format!("{values}.distinct().count()"), "[1000]"),
        (format!("{values}.isDistinct()"), "[false]"),
        (format!("{values}.distinct().isDistinct()"), "[true]"),
        (format!("{codes}.distinct().count()"), "[500]"),
        (format!("({codes} | {codes}).count()"), "[500]"),
        (format!("{codes}.union({codes}).count()"), "[500]"),
        (
            format!("{codes}.intersect({codes}.where($this != 'c7')).count()"),
            "[499]",
        ),
        (
            format!("{codes}.exclude({codes}.where($this != 'c7')).count()"),
            "[80]",
        ),
        (
            format!("{codes}.where($this != 'c7').subsetOf({codes})"),
            "[true]",
        ),
        (format!("{codes}.supersetOf({codes}.distinct())"), "[true]"),
        (
            "Bundle.entry.resource.effective.ofType(dateTime).distinct().count()".into(),
            "[336]",
        ),
        // Equal objects are one: every coding is one of 500.
        (
            "Bundle.entry.resource.code.coding.distinct().count()".into(),
            "[500]",
        ),
        // repeat() keeps every node once, by identity: the same as descendants().
        (
            "Bundle.repeat(children()).count() = Bundle.descendants().count()".into(),
            "[true]",
        ),
        ("Bundle.descendants().count() > 400000".into(), "[true]"),
    ];
    for (text, expected) in cases {
        assert_eq!(eval(&bundle, &text), expected, "{text}");
    }
}
