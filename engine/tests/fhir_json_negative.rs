//! Malformed FHIR JSON, one rule broken per case: each must be refused with the expected
//! message, at the expected element path and position, and never panic.

use hearth_engine::json::fhir::parse_resource;
use hearth_engine::json::ParseError;
use hearth_engine::Error;

/// A case: its name, the input (one line), the message and path of the first issue, and a
/// piece of the input whose first occurrence is where the issue points.
struct Case {
    name: &'static str,
    input: &'static str,
    message: &'static str,
    path: Option<&'static str>,
    at: &'static str,
}

const fn case(
    name: &'static str,
    input: &'static str,
    message: &'static str,
    path: &'static str,
    at: &'static str,
) -> Case {
    Case {
        name,
        input,
        message,
        path: if path.is_empty() { None } else { Some(path) },
        at,
    }
}

fn issues(input: &str) -> Vec<ParseError> {
    match parse_resource(input.as_bytes()) {
        Ok(resource) => panic!("accepted {input}: {resource:?}"),
        Err(Error::Json(err)) => vec![err],
        Err(Error::Resource(errors)) => errors,
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

const CASES: &[Case] = &[
    // The resource itself.
    case(
        "array root",
        r#"[{"resourceType":"Patient"}]"#,
        "expected a FHIR resource (a JSON object), found an array",
        "",
        "[",
    ),
    case(
        "string root",
        r#""Patient""#,
        "expected a FHIR resource (a JSON object), found a string",
        "",
        r#""Patient""#,
    ),
    case(
        "no resourceType",
        r#"{"id":"a"}"#,
        r#"expected a "resourceType" element, found none"#,
        "",
        "{",
    ),
    case(
        "numeric resourceType",
        r#"{"resourceType":5}"#,
        r#"expected "resourceType" to be a string, found a number"#,
        "",
        "5",
    ),
    case(
        "unknown resourceType",
        r#"{"resourceType":"Patientt"}"#,
        r#"expected a FHIR R4 resource type, found "Patientt""#,
        "",
        r#""Patientt""#,
    ),
    case(
        "abstract DomainResource",
        r#"{"resourceType":"DomainResource"}"#,
        r#"expected a concrete resource type, found the abstract type "DomainResource""#,
        "",
        r#""DomainResource""#,
    ),
    case(
        "abstract Resource",
        r#"{"resourceType":"Resource"}"#,
        r#"expected a concrete resource type, found the abstract type "Resource""#,
        "",
        r#""Resource""#,
    ),
    case(
        "empty resourceType",
        r#"{"resourceType":""}"#,
        r#"expected a FHIR R4 resource type, found """#,
        "",
        r#""""#,
    ),
    case(
        "data type as resourceType",
        r#"{"resourceType":"HumanName"}"#,
        r#"expected a FHIR R4 resource type, found "HumanName""#,
        "",
        r#""HumanName""#,
    ),
    // Unknown elements.
    case(
        "unknown element",
        r#"{"resourceType":"Patient","foo":1}"#,
        r#"unknown element "foo""#,
        "Patient.foo",
        r#""foo""#,
    ),
    case(
        "unknown element in a data type",
        r#"{"resourceType":"Patient","name":[{"surname":"x"}]}"#,
        r#"unknown element "surname""#,
        "Patient.name[0].surname",
        r#""surname""#,
    ),
    case(
        "unknown element in a backbone element",
        r#"{"resourceType":"Patient","contact":[{"nickname":"x"}]}"#,
        r#"unknown element "nickname""#,
        "Patient.contact[0].nickname",
        r#""nickname""#,
    ),
    case(
        "wrong case",
        r#"{"resourceType":"Patient","BirthDate":"1970"}"#,
        r#"unknown element "BirthDate""#,
        "Patient.BirthDate",
        r#""BirthDate""#,
    ),
    case(
        "choice without type",
        r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"value":1}"#,
        r#"unknown element "value""#,
        "Observation.value",
        r#""value""#,
    ),
    case(
        "choice with unknown type",
        r#"{"resourceType":"Observation","valueFoo":1}"#,
        r#"unknown element "valueFoo""#,
        "Observation.valueFoo",
        r#""valueFoo""#,
    ),
    case(
        "choice with a type not allowed",
        r#"{"resourceType":"Observation","valueDecimal":1}"#,
        r#"unknown element "valueDecimal""#,
        "Observation.valueDecimal",
        r#""valueDecimal""#,
    ),
    case(
        "companion of a complex element",
        r#"{"resourceType":"Patient","_name":[{"id":"a"}]}"#,
        r#"unknown element "_name""#,
        "Patient._name",
        r#""_name""#,
    ),
    case(
        "companion of an element id",
        r#"{"resourceType":"Patient","name":[{"id":"a","_id":{"id":"b"}}]}"#,
        r#"unknown element "_id""#,
        "Patient.name[0]._id",
        r#""_id""#,
    ),
    case(
        "resourceType inside a data type",
        r#"{"resourceType":"Patient","name":[{"resourceType":"HumanName"}]}"#,
        r#"unknown element "resourceType""#,
        "Patient.name[0].resourceType",
        r#""resourceType":"H"#,
    ),
    case(
        "companion without element",
        r#"{"resourceType":"Patient","_foo":{"id":"a"}}"#,
        r#"unknown element "_foo""#,
        "Patient._foo",
        r#""_foo""#,
    ),
    // Arrays and single values.
    case(
        "array for a single value",
        r#"{"resourceType":"Patient","birthDate":["1970"]}"#,
        r#"expected a single value for "birthDate", found an array"#,
        "Patient.birthDate",
        r#"["1970"]"#,
    ),
    case(
        "object for a repeating element",
        r#"{"resourceType":"Patient","name":{"family":"x"}}"#,
        r#"expected an array for "name" (it repeats), found an object"#,
        "Patient.name",
        r#"{"family""#,
    ),
    case(
        "string for a repeating primitive",
        r#"{"resourceType":"Patient","name":[{"given":"Peter"}]}"#,
        r#"expected an array for "given" (it repeats), found a string"#,
        "Patient.name[0].given",
        r#""Peter""#,
    ),
    case(
        "companion array for a single value",
        r#"{"resourceType":"Patient","_birthDate":[{"id":"a"}]}"#,
        r#"expected a single value for "birthDate", found an array"#,
        "Patient.birthDate",
        r#"[{"id"#,
    ),
    case(
        "single companion for a repeating primitive",
        r#"{"resourceType":"Patient","name":[{"given":["a"],"_given":{"id":"b"}}]}"#,
        r#"expected an array for "given" (it repeats), found an object"#,
        "Patient.name[0].given",
        r#"{"id":"b"}"#,
    ),
    case(
        "empty array",
        r#"{"resourceType":"Patient","name":[]}"#,
        "expected an array with at least one item, found an empty array",
        "Patient.name",
        "[]",
    ),
    case(
        "empty primitive array",
        r#"{"resourceType":"Patient","name":[{"given":[]}]}"#,
        "expected an array with at least one item, found an empty array",
        "Patient.name[0].given",
        "[]",
    ),
    // Empty values and nulls.
    case(
        "empty object",
        r#"{"resourceType":"Patient","maritalStatus":{}}"#,
        "expected an object with at least one element, found an empty object",
        "Patient.maritalStatus",
        "{}",
    ),
    case(
        "empty object in an array",
        r#"{"resourceType":"Patient","name":[{}]}"#,
        "expected an object with at least one element, found an empty object",
        "Patient.name[0]",
        "{}",
    ),
    case(
        "null value",
        r#"{"resourceType":"Patient","birthDate":null}"#,
        r#"expected a value for "birthDate", found null"#,
        "Patient.birthDate",
        "null",
    ),
    case(
        "null in an array of objects",
        r#"{"resourceType":"Patient","name":[null]}"#,
        r#"expected a value for "name", found null"#,
        "Patient.name[0]",
        "null",
    ),
    case(
        "null in a primitive array without companion",
        r#"{"resourceType":"Patient","name":[{"given":["a",null]}]}"#,
        r#"expected a value for "given", found null"#,
        "Patient.name[0].given[1]",
        "null",
    ),
    case(
        "empty string",
        r#"{"resourceType":"Patient","name":[{"family":""}]}"#,
        r#"expected "family" (string) to be a non-empty string, found """#,
        "Patient.name[0].family",
        r#""""#,
    ),
    case(
        "empty string in an array",
        r#"{"resourceType":"Patient","name":[{"given":[""]}]}"#,
        r#"expected "given" (string) to be a non-empty string, found """#,
        "Patient.name[0].given[0]",
        r#""""#,
    ),
    case(
        "empty companion",
        r#"{"resourceType":"Patient","_birthDate":{}}"#,
        "expected an object with at least one element, found an empty object",
        "Patient.birthDate",
        "{}",
    ),
    case(
        "null companion",
        r#"{"resourceType":"Patient","_birthDate":null}"#,
        r#"expected a value for "birthDate", found null"#,
        "Patient.birthDate",
        "null",
    ),
    case(
        "null in both arrays",
        r#"{"resourceType":"Patient","name":[{"given":[null],"_given":[null]}]}"#,
        r#"expected a value for "given", found null"#,
        "Patient.name[0].given[0]",
        "null],",
    ),
    case(
        "empty id",
        r#"{"resourceType":"Patient","id":""}"#,
        r#"expected "id" (id) to be a non-empty string, found """#,
        "Patient.id",
        r#""""#,
    ),
    // Primitive values of the wrong JSON type.
    case(
        "boolean as string",
        r#"{"resourceType":"Patient","active":"true"}"#,
        r#"expected "active" (boolean) to be true or false, found a string "true""#,
        "Patient.active",
        r#""true""#,
    ),
    case(
        "boolean as number",
        r#"{"resourceType":"Patient","active":1}"#,
        r#"expected "active" (boolean) to be true or false, found a number 1"#,
        "Patient.active",
        "1}",
    ),
    case(
        "integer with fraction",
        r#"{"resourceType":"Patient","multipleBirthInteger":1.5}"#,
        r#"expected "multipleBirthInteger" (integer) to be a whole number, found 1.5"#,
        "Patient.multipleBirth.ofType(integer)",
        "1.5",
    ),
    case(
        "integer with exponent",
        r#"{"resourceType":"Patient","multipleBirthInteger":1e3}"#,
        r#"expected "multipleBirthInteger" (integer) to be a whole number, found 1e3"#,
        "Patient.multipleBirth.ofType(integer)",
        "1e3",
    ),
    case(
        "integer out of range",
        r#"{"resourceType":"Patient","multipleBirthInteger":2147483648}"#,
        r#"expected "multipleBirthInteger" (integer) to be within the 32-bit integer range, found 2147483648"#,
        "Patient.multipleBirth.ofType(integer)",
        "2147483648",
    ),
    case(
        "decimal as string",
        r#"{"resourceType":"Observation","valueQuantity":{"value":"1.5"}}"#,
        r#"expected "value" (decimal) to be a JSON number, found a string "1.5""#,
        "Observation.value.ofType(Quantity).value",
        r#""1.5""#,
    ),
    case(
        "string as number",
        r#"{"resourceType":"Patient","name":[{"family":42}]}"#,
        r#"expected "family" (string) to be a JSON string, found a number 42"#,
        "Patient.name[0].family",
        "42",
    ),
    case(
        "date as number",
        r#"{"resourceType":"Patient","birthDate":19700101}"#,
        r#"expected "birthDate" (date) to be a JSON string, found a number 19700101"#,
        "Patient.birthDate",
        "19700101",
    ),
    case(
        "code as boolean",
        r#"{"resourceType":"Patient","gender":true}"#,
        r#"expected "gender" (code) to be a JSON string, found a boolean"#,
        "Patient.gender",
        "true",
    ),
    case(
        "string as object",
        r#"{"resourceType":"Patient","name":[{"family":{"x":1}}]}"#,
        r#"expected "family" (string) to be a JSON string, found an object"#,
        "Patient.name[0].family",
        r#"{"x""#,
    ),
    case(
        "string as array",
        r#"{"resourceType":"Patient","name":[{"family":["a"]}]}"#,
        r#"expected a single value for "family", found an array"#,
        "Patient.name[0].family",
        r#"["a"]"#,
    ),
    case(
        "unsignedInt as string",
        r#"{"resourceType":"Patient","photo":[{"size":"10"}]}"#,
        r#"expected "size" (unsignedInt) to be a JSON number, found a string "10""#,
        "Patient.photo[0].size",
        r#""10""#,
    ),
    case(
        "instant as number",
        r#"{"resourceType":"Patient","meta":{"lastUpdated":5}}"#,
        r#"expected "lastUpdated" (instant) to be a JSON string, found a number 5"#,
        "Patient.meta.lastUpdated",
        "5}",
    ),
    case(
        "xhtml as number",
        r#"{"resourceType":"Patient","text":{"status":"generated","div":5}}"#,
        r#"expected "div" (xhtml) to be a JSON string, found a number 5"#,
        "Patient.text.div",
        "5}",
    ),
    case(
        "complex type as string",
        r#"{"resourceType":"Patient","maritalStatus":"married"}"#,
        "expected an object, found a string",
        "Patient.maritalStatus",
        r#""married""#,
    ),
    case(
        "element id as number",
        r#"{"resourceType":"Patient","name":[{"id":7}]}"#,
        r#"expected "id" (string) to be a JSON string, found a number 7"#,
        "Patient.name[0].id",
        "7}",
    ),
    case(
        "negative unsignedInt",
        r#"{"resourceType":"Patient","photo":[{"size":-1}]}"#,
        r#"expected "size" (unsignedInt) to be at least 0, found -1"#,
        "Patient.photo[0].size",
        "-1",
    ),
    case(
        "zero positiveInt",
        r#"{"resourceType":"Observation","valueSampledData":{"origin":{"value":1},"period":1,"dimensions":0,"data":"1"}}"#,
        r#"expected "dimensions" (positiveInt) to be at least 1, found 0"#,
        "Observation.value.ofType(SampledData).dimensions",
        "0,",
    ),
    case(
        "extension on xhtml",
        r#"{"resourceType":"Patient","text":{"status":"generated","div":"<div>x</div>","_div":{"extension":[{"url":"http://x","valueString":"y"}]}}}"#,
        r#"element "extension" is not allowed here"#,
        "Patient.text.div",
        r#""extension""#,
    ),
    // Choice elements.
    case(
        "two types for value[x]",
        r#"{"resourceType":"Observation","valueString":"a","valueBoolean":true}"#,
        r#"expected one type for "value[x]", found "valueString" and "valueBoolean""#,
        "Observation.value.ofType(boolean)",
        r#""valueBoolean""#,
    ),
    case(
        "two types for deceased[x]",
        r#"{"resourceType":"Patient","deceasedBoolean":true,"deceasedDateTime":"2020"}"#,
        r#"expected one type for "deceased[x]", found "deceasedBoolean" and "deceasedDateTime""#,
        "Patient.deceased.ofType(dateTime)",
        r#""deceasedDateTime""#,
    ),
    case(
        "companion of another choice type",
        r#"{"resourceType":"Observation","valueString":"a","_valueBoolean":{"id":"x"}}"#,
        r#"expected one type for "value[x]", found "valueString" and "_valueBoolean""#,
        "Observation.value.ofType(boolean)",
        r#""_valueBoolean""#,
    ),
    // Companions.
    case(
        "companion length differs",
        r#"{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"}]}]}"#,
        r#"expected "_given" to have as many items as "given" (2), found 1"#,
        "Patient.name[0].given",
        r#"[{"id":"x"}]"#,
    ),
    case(
        "unknown element in a companion",
        r#"{"resourceType":"Patient","birthDate":"1970","_birthDate":{"foo":1}}"#,
        r#"unknown element "foo""#,
        "Patient.birthDate.foo",
        r#""foo""#,
    ),
    case(
        "companion extension not an array",
        r#"{"resourceType":"Patient","_birthDate":{"extension":{"url":"http://x"}}}"#,
        r#"expected an array for "extension" (it repeats), found an object"#,
        "Patient.birthDate.extension",
        r#"{"url""#,
    ),
    case(
        "bad url inside a companion extension",
        r#"{"resourceType":"Patient","_birthDate":{"extension":[{"url":5}]}}"#,
        r#"expected "url" (uri) to be a JSON string, found a number 5"#,
        "Patient.birthDate.extension[0].url",
        "5}",
    ),
    // Nested resources.
    case(
        "contained without resourceType",
        r#"{"resourceType":"Patient","contained":[{"id":"o"}]}"#,
        r#"expected a "resourceType" element, found none"#,
        "Patient.contained[0]",
        r#"{"id""#,
    ),
    case(
        "contained string",
        r#"{"resourceType":"Patient","contained":["Organization"]}"#,
        "expected a FHIR resource (a JSON object), found a string",
        "Patient.contained[0]",
        r#""Organization""#,
    ),
    case(
        "contained unknown type",
        r#"{"resourceType":"Patient","contained":[{"resourceType":"Org"}]}"#,
        r#"expected a FHIR R4 resource type, found "Org""#,
        "Patient.contained[0]",
        r#""Org""#,
    ),
    case(
        "unknown element in a contained resource",
        r#"{"resourceType":"Patient","contained":[{"resourceType":"Organization","nom":"x"}]}"#,
        r#"unknown element "nom""#,
        "Patient.contained[0].nom",
        r#""nom""#,
    ),
    case(
        "bad value in a Bundle entry",
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","name":[{"given":[1]}]}}]}"#,
        r#"expected "given" (string) to be a JSON string, found a number 1"#,
        "Bundle.entry[0].resource.name[0].given[0]",
        "1]",
    ),
    case(
        "contained not an array",
        r#"{"resourceType":"Patient","contained":{"resourceType":"Organization"}}"#,
        r#"expected an array for "contained" (it repeats), found an object"#,
        "Patient.contained",
        r#"{"resourceType":"O"#,
    ),
    // Extensions.
    case(
        "extension not an array",
        r#"{"resourceType":"Patient","extension":{"url":"http://x"}}"#,
        r#"expected an array for "extension" (it repeats), found an object"#,
        "Patient.extension",
        r#"{"url""#,
    ),
    case(
        "extension with two values",
        r#"{"resourceType":"Patient","extension":[{"url":"http://x","valueString":"a","valueCode":"b"}]}"#,
        r#"expected one type for "value[x]", found "valueString" and "valueCode""#,
        "Patient.extension[0].value.ofType(code)",
        r#""valueCode""#,
    ),
    case(
        "null modifierExtension",
        r#"{"resourceType":"Patient","modifierExtension":[null]}"#,
        r#"expected a value for "modifierExtension", found null"#,
        "Patient.modifierExtension[0]",
        "null",
    ),
    case(
        "unknown element in an extension",
        r#"{"resourceType":"Patient","extension":[{"url":"http://x","valueStrin":"a"}]}"#,
        r#"unknown element "valueStrin""#,
        "Patient.extension[0].valueStrin",
        r#""valueStrin""#,
    ),
    // JSON itself.
    case(
        "duplicate key",
        r#"{"resourceType":"Patient","id":"a","id":"b"}"#,
        r#"duplicate key "id""#,
        "",
        r#""id":"b""#,
    ),
    case(
        "trailing comma",
        r#"{"resourceType":"Patient","id":"a",}"#,
        "expected a string key, found '}'",
        "",
        "}",
    ),
    case(
        "invalid escape",
        r#"{"resourceType":"Patient","id":"a\q"}"#,
        "expected an escape character after '\\', found 'q'",
        "",
        "q",
    ),
    case(
        "lone surrogate",
        r#"{"resourceType":"Patient","id":"\ud800"}"#,
        "expected a low surrogate '\\uDC00'..'\\uDFFF' after a high surrogate",
        "",
        r#"\ud800"#,
    ),
    case(
        "single quotes",
        r#"{'resourceType':'Patient'}"#,
        "expected a string key, found '\\''",
        "",
        "'",
    ),
    case(
        "unquoted literal",
        r#"{"resourceType":"Patient","active":True}"#,
        "expected a JSON value, found 'T'",
        "",
        "True",
    ),
];

#[test]
fn every_malformed_resource_is_refused_where_it_breaks_a_rule() {
    let mut failures = Vec::new();
    for case in CASES {
        let column = case
            .input
            .find(case.at)
            .map(|byte| case.input[..byte].chars().count() + 1);
        let got = issues(case.input);
        let first = &got[0];
        let want = (case.message, case.path, 1, column);
        let found = (
            first.message.as_str(),
            first.path.as_deref(),
            first.line,
            Some(first.column),
        );
        if want != found {
            failures.push(format!(
                "{}:\n    expected {want:?}\n    found    {found:?}",
                case.name
            ));
        }
    }
    println!(
        "{} malformed resources, {} refused as expected",
        CASES.len(),
        CASES.len() - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(CASES.len() >= 60);
}

#[test]
fn every_violation_in_a_resource_is_reported() {
    let got = issues(
        r#"{"resourceType":"Patient","foo":1,"name":[{"given":[1]}],"active":"yes","bar":2}"#,
    );
    let summary: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|err| (err.message.as_str(), err.path.as_deref()))
        .collect();
    // In document order.
    assert_eq!(
        summary,
        [
            (r#"unknown element "foo""#, Some("Patient.foo")),
            (
                r#"expected "given" (string) to be a JSON string, found a number 1"#,
                Some("Patient.name[0].given[0]")
            ),
            (
                r#"expected "active" (boolean) to be true or false, found a string "yes""#,
                Some("Patient.active")
            ),
            (r#"unknown element "bar""#, Some("Patient.bar")),
        ]
    );
}

#[test]
fn issues_stop_at_a_hundred() {
    let mut input = String::from(r#"{"resourceType":"Patient""#);
    for idx in 0..5000 {
        input.push_str(&format!(r#","x{idx}":0"#));
    }
    input.push('}');
    let got = issues(&input);
    assert_eq!(got.len(), 101);
    assert_eq!(got[99].message, r#"unknown element "x99""#);
    assert_eq!(got[100].message, "stopped after 100 issues; there are more");
}

#[test]
fn many_keys_in_an_unknown_element_read_in_linear_time() {
    let mut input = String::from(r#"{"resourceType":"Patient","foo":{"#);
    for idx in 0..100_000 {
        if idx > 0 {
            input.push(',');
        }
        input.push_str(&format!(r#""k{idx}":0"#));
    }
    input.push_str("}}");
    let start = std::time::Instant::now();
    let got = issues(&input);
    assert_eq!(got.len(), 1);
    // Quadratic duplicate checks took minutes here; linear ones take milliseconds.
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

#[test]
fn positions_count_lines_and_columns() {
    let got =
        issues("{\n  \"resourceType\": \"Patient\",\n  \"name\": [\n    {\"family\": 5}\n  ]\n}");
    assert_eq!((got[0].line, got[0].column), (4, 16));
}

#[test]
fn extension_nested_beyond_the_depth_limit_is_refused_not_a_crash() {
    let mut input = String::from(r#"{"resourceType":"Patient","extension":"#);
    for _ in 0..5000 {
        input.push_str(r#"[{"url":"http://x","extension":"#);
    }
    let got = issues(&input);
    assert_eq!(
        got[0].message,
        "expected at most 100 levels of nested arrays and objects, found more"
    );
}

#[test]
fn valid_edge_cases_are_accepted() {
    for input in [
        r#"{"resourceType":"Patient"}"#,
        r#"{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://x","valueCode":"unknown"}]}}"#,
        r#"{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"g2"}]}]}"#,
        r#"{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":1.50e0}}"#,
        r#"{"resourceType":"Patient","multipleBirthInteger":-2147483648}"#,
        "\u{feff}{\"resourceType\":\"Patient\"}",
        r#"{"resourceType":"Patient","name":[{"given":[null,null,"c"],"_given":[{"id":"a"},{"id":"b"},null]}]}"#,
    ] {
        if let Err(err) = parse_resource(input.as_bytes()) {
            panic!("refused {input}: {err}");
        }
    }
}
