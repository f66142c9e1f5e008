//! The REST handler over the in-memory store: each interaction, its headers and its errors.

use hearth_engine::rest::{Response, Service};
use hearth_engine::store::{block_on, MemoryStore};

mod common;
use common::request;
use common::{Counter, FixedClock};

fn service() -> Service<MemoryStore> {
    Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        "http://localhost:8787/fhir/",
    )
}

fn call(
    service: &Service<MemoryStore>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    block_on(service.handle(&request(method, path, headers, body)))
}

const NARRATIVE: &str =
    r#""text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}"#;

fn patient(extra: &str) -> String {
    format!(r#"{{"resourceType":"Patient",{NARRATIVE}{extra}}}"#)
}

fn issue_code(response: &Response) -> String {
    let json: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
    json["issue"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn create_read_update_delete_and_history() {
    let s = service();
    let created = call(
        &s,
        "POST",
        "Patient",
        &[],
        &patient(r#","name":[{"family":"Ng"}]"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("Location"),
        Some("http://localhost:8787/fhir/Patient/id1/_history/1")
    );
    assert_eq!(created.header("ETag"), Some("W/\"1\""));
    assert_eq!(
        created.header("Last-Modified"),
        Some("Fri, 27 Nov 2026 10:20:30 GMT")
    );
    let body: serde_json::Value = serde_json::from_str(&created.body).unwrap_or_default();
    assert_eq!(body["id"], "id1");
    assert_eq!(body["meta"]["versionId"], "1");
    assert_eq!(body["meta"]["lastUpdated"], "2026-11-27T10:20:30.000Z");

    let read = call(&s, "GET", "Patient/id1", &[], "");
    assert_eq!(
        (read.status, read.body.clone()),
        (200, created.body.clone())
    );
    assert_eq!(
        call(
            &s,
            "GET",
            "Patient/id1",
            &[("If-None-Match", "W/\"1\"")],
            ""
        )
        .status,
        304
    );

    let update = patient(r#","id":"id1","name":[{"family":"Li"}]"#);
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/id1",
            &[("If-Match", "W/\"7\"")],
            &update
        )
        .status,
        412
    );
    let updated = call(
        &s,
        "PUT",
        "Patient/id1",
        &[("If-Match", "W/\"1\"")],
        &update,
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.header("ETag"), Some("W/\"2\""));
    let v1 = call(&s, "GET", "Patient/id1/_history/1", &[], "");
    assert!(v1.body.contains("Ng"));
    assert!(call(&s, "GET", "Patient/id1", &[], "").body.contains("Li"));

    let deleted = call(&s, "DELETE", "Patient/id1", &[], "");
    assert_eq!(deleted.status, 204);
    let gone = call(&s, "GET", "Patient/id1", &[], "");
    assert_eq!(
        (gone.status, issue_code(&gone)),
        (410, String::from("deleted"))
    );
    // Older versions stay readable.
    assert_eq!(
        call(&s, "GET", "Patient/id1/_history/2", &[], "").status,
        200
    );
    assert_eq!(
        call(&s, "GET", "Patient/id1/_history/9", &[], "").status,
        404
    );

    let history = call(&s, "GET", "Patient/id1/_history", &[], "");
    let bundle: serde_json::Value = serde_json::from_str(&history.body).unwrap_or_default();
    assert_eq!(bundle["type"], "history");
    let methods: Vec<&str> = bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["request"]["method"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(methods, ["DELETE", "PUT", "POST"]);

    // An update of a deleted resource brings it back as a new version.
    let revived = call(&s, "PUT", "Patient/id1", &[], &update);
    assert_eq!(
        (revived.status, revived.header("ETag")),
        (201, Some("W/\"4\""))
    );
    // PUT to a new id creates it.
    let put_new = call(
        &s,
        "PUT",
        "Patient/chosen-id",
        &[],
        &patient(r#","id":"chosen-id""#),
    );
    assert_eq!(put_new.status, 201);
    let listed = call(&s, "GET", "Patient?_count=1", &[], "");
    let bundle: serde_json::Value = serde_json::from_str(&listed.body).unwrap_or_default();
    assert_eq!(
        (
            bundle["total"].as_u64(),
            bundle["entry"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
}

#[test]
fn prefer_return_shapes_the_answer() {
    let s = service();
    let minimal = call(
        &s,
        "POST",
        "Patient",
        &[("Prefer", "return=minimal")],
        &patient(""),
    );
    assert_eq!((minimal.status, minimal.body.as_str()), (201, ""));
    assert!(minimal.header("Location").is_some());
    let outcome = call(
        &s,
        "POST",
        "Patient",
        &[("Prefer", "return=OperationOutcome")],
        &patient(""),
    );
    assert!(outcome
        .body
        .starts_with(r#"{"resourceType":"OperationOutcome""#));
}

#[test]
fn errors_are_operation_outcomes_with_the_right_status() {
    let s = service();
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        u16,
        &'a str,
    );
    let cases: &[Case<'_>] = &[
        ("malformed JSON", "POST", "Patient", &[], 400, "structure"),
        (
            "unknown type",
            "GET",
            "Patientt/1",
            &[],
            404,
            "not-supported",
        ),
        ("missing", "GET", "Patient/nope", &[], 404, "not-found"),
        (
            "wrong type in body",
            "POST",
            "Observation",
            &[],
            400,
            "invalid",
        ),
        (
            "invalid resource",
            "POST",
            "Patient",
            &[],
            422,
            "code-invalid",
        ),
        ("id mismatch", "PUT", "Patient/a", &[], 400, "invalid"),
        ("bad id", "PUT", "Patient/a$b", &[], 400, "invalid"),
        (
            "method not allowed",
            "POST",
            "Patient/a",
            &[],
            405,
            "not-supported",
        ),
        (
            "no such endpoint",
            "GET",
            "Patient/a/b/c/d",
            &[],
            404,
            "not-found",
        ),
        (
            "xml asked for",
            "GET",
            "metadata?_format=xml",
            &[],
            406,
            "not-supported",
        ),
        (
            "unsupported search parameter",
            "GET",
            "Patient?_filter=name eq x",
            &[],
            400,
            "invalid",
        ),
    ];
    for (name, method, path, headers, status, code) in cases {
        let body = match *name {
            "malformed JSON" => String::from("{\"resourceType\":"),
            "wrong type in body" => patient(""),
            "invalid resource" => patient(r#","gender":"unknown-gender""#),
            "id mismatch" | "bad id" => patient(r#","id":"b""#),
            _ => String::new(),
        };
        let response = call(&s, method, path, headers, &body);
        assert_eq!(
            (response.status, issue_code(&response)),
            (*status, code.to_string()),
            "{name}: {}",
            response.body
        );
    }
    // Write validation can be turned off per request; reading the JSON cannot.
    let lenient = call(
        &s,
        "POST",
        "Patient",
        &[("X-Validation", "off")],
        &patient(r#","gender":"unknown-gender""#),
    );
    assert_eq!(lenient.status, 201);
}

#[test]
fn validate_operation_and_metadata() {
    let s = service();
    let ok = call(&s, "POST", "Patient/$validate", &[], &patient(""));
    assert_eq!(
        (ok.status, issue_code(&ok)),
        (200, String::from("informational"))
    );
    let bad = call(
        &s,
        "POST",
        "Patient/$validate",
        &[],
        "{\n\"resourceType\":\"Patient\",\n\"gender\":\"x\"}",
    );
    let outcome: serde_json::Value = serde_json::from_str(&bad.body).unwrap_or_default();
    assert_eq!(bad.status, 200);
    let error = outcome["issue"]
        .as_array()
        .and_then(|issues| issues.iter().find(|i| i["severity"] == "error"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(error["expression"][0], "Patient.gender");
    assert_eq!(error["extension"][0]["valueInteger"], 3);
    let wrapped = format!(
        r#"{{"resourceType":"Parameters","parameter":[{{"name":"resource","resource":{}}}]}}"#,
        patient(r#","gender":"x""#)
    );
    let via_parameters = call(&s, "POST", "Patient/$validate", &[], &wrapped);
    assert!(via_parameters.body.contains("Patient.gender"));
    let metadata = call(&s, "GET", "metadata", &[], "");
    let statement: serde_json::Value = serde_json::from_str(&metadata.body).unwrap_or_default();
    assert_eq!(
        (metadata.status, statement["fhirVersion"].as_str()),
        (200, Some("4.0.1"))
    );
    assert_eq!(
        statement["rest"][0]["resource"].as_array().map(Vec::len),
        Some(146)
    );
}

fn entry(full_url: &str, method: &str, url: &str, resource: &str) -> String {
    let resource = if resource.is_empty() {
        String::new()
    } else {
        format!(r#""resource":{resource},"#)
    };
    format!(
        r#"{{"fullUrl":"{full_url}",{resource}"request":{{"method":"{method}","url":"{url}"}}}}"#
    )
}

fn bundle(kind: &str, entries: &[String]) -> String {
    format!(
        r#"{{"resourceType":"Bundle","type":"{kind}","entry":[{}]}}"#,
        entries.join(",")
    )
}

#[test]
fn transactions_are_atomic_and_rewrite_references() {
    let s = service();
    let observation = format!(
        r#"{{"resourceType":"Observation",{NARRATIVE},"status":"final","code":{{"text":"weight"}},"subject":{{"reference":"urn:uuid:0b6f3c52-2f7e-4d3f-9b9e-6d1f2a3b4c5d"}}}}"#
    );
    let ok = bundle(
        "transaction",
        &[
            entry(
                "urn:uuid:7c1e2d3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
                "POST",
                "Observation",
                &observation,
            ),
            entry(
                "urn:uuid:0b6f3c52-2f7e-4d3f-9b9e-6d1f2a3b4c5d",
                "POST",
                "Patient",
                &patient(""),
            ),
        ],
    );
    let response = call(&s, "POST", "", &[], &ok);
    assert_eq!(response.status, 200, "{}", response.body);
    let result: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
    assert_eq!(result["type"], "transaction-response");
    // Entries answer in the request's order; the Patient was stored first (POST order aside,
    // both are POSTs) and the Observation points at its new id.
    let patient_location = result["entry"][1]["response"]["location"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        patient_location.starts_with("Patient/"),
        "{patient_location}"
    );
    let patient_ref = patient_location
        .split("/_history")
        .next()
        .unwrap_or_default();
    assert_eq!(result["entry"][1]["response"]["status"], "201 Created");
    assert_eq!(
        result["entry"][0]["resource"]["subject"]["reference"],
        patient_ref
    );
    assert_eq!(call(&s, "GET", patient_ref, &[], "").status, 200);

    // One invalid entry: nothing of the transaction is stored.
    let before = s.store().len();
    let failing = bundle(
        "transaction",
        &[
            entry("urn:uuid:1", "POST", "Patient", &patient("")),
            entry(
                "urn:uuid:2",
                "POST",
                "Patient",
                &patient(r#","gender":"nope""#),
            ),
        ],
    );
    let response = call(&s, "POST", "", &[], &failing);
    assert_eq!(response.status, 422, "{}", response.body);
    assert!(
        response.body.contains("Bundle.entry[1].resource.gender"),
        "{}",
        response.body
    );
    assert_eq!(s.store().len(), before);
    // A version conflict in the middle: nothing stored either.
    let conflict = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{},{{"resource":{},"request":{{"method":"PUT","url":"{patient_ref}","ifMatch":"W/\"5\""}}}}]}}"#,
        entry("urn:uuid:3", "POST", "Patient", &patient("")),
        patient(&format!(
            r#","id":"{}""#,
            patient_ref.trim_start_matches("Patient/")
        ))
    );
    let response = call(&s, "POST", "", &[], &conflict);
    assert_eq!(response.status, 412, "{}", response.body);
    assert_eq!(s.store().len(), before);
    // Two entries for one resource.
    let twice = bundle(
        "transaction",
        &[
            entry("urn:uuid:4", "DELETE", patient_ref, ""),
            entry("urn:uuid:5", "DELETE", patient_ref, ""),
        ],
    );
    assert_eq!(call(&s, "POST", "", &[], &twice).status, 400);
}

#[test]
fn batches_answer_each_entry_on_its_own() {
    let s = service();
    let batch = bundle(
        "batch",
        &[
            entry("urn:uuid:1", "POST", "Patient", &patient("")),
            entry(
                "urn:uuid:2",
                "POST",
                "Patient",
                &patient(r#","gender":"nope""#),
            ),
            entry("urn:uuid:3", "GET", "Patient/missing", ""),
        ],
    );
    let response = call(&s, "POST", "", &[], &batch);
    assert_eq!(response.status, 200, "{}", response.body);
    let result: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
    let statuses: Vec<&str> = result["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["response"]["status"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        statuses,
        ["201 Created", "422 Unprocessable Entity", "404 Not Found"]
    );
    assert_eq!(
        result["entry"][1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    // Conditional create: created once, then found.
    let conditional = r#"{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","identifier":[{"system":"x","value":"1"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=x|1"}}]}"#;
    let response = call(&s, "POST", "", &[], conditional);
    assert!(response.body.contains("201 Created"), "{}", response.body);
    let response = call(&s, "POST", "", &[], conditional);
    assert!(response.body.contains("200 OK"), "{}", response.body);
}

#[test]
fn synthea_transactions_load() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/synthea");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let s = service();
    let mut loaded = 0;
    for path in names.iter().take(5) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if !text.contains(r#""type": "transaction""#) && !text.contains(r#""type":"transaction""#) {
            continue;
        }
        let response = call(&s, "POST", "", &[], &text);
        assert_eq!(
            response.status,
            200,
            "{}: {}",
            path.display(),
            &response.body[..response.body.len().min(500)]
        );
        loaded += 1;
    }
    assert!(
        loaded >= 3,
        "only {loaded} transaction bundles among the first five"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&call(&s, "GET", "Patient", &[], "").body).unwrap_or_default();
    assert_eq!(listed["total"].as_u64(), Some(loaded));
}

#[test]
fn type_and_system_history_list_writes_newest_first() {
    let s = service();
    assert_eq!(call(&s, "POST", "Patient", &[], &patient("")).status, 201);
    let observation = format!(
        r#"{{"resourceType":"Observation",{NARRATIVE},"status":"final","code":{{"text":"x"}}}}"#
    );
    assert_eq!(
        call(&s, "POST", "Observation", &[], &observation).status,
        201
    );
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/id1",
            &[],
            &patient(r#","id":"id1","active":true"#)
        )
        .status,
        200
    );
    assert_eq!(call(&s, "DELETE", "Patient/id1", &[], "").status, 204);
    let methods = |response: &Response| -> Vec<String> {
        let bundle: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
        bundle["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["request"]["method"].as_str().unwrap_or(""),
                            e["request"]["url"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let system = call(&s, "GET", "_history", &[], "");
    assert_eq!(
        methods(&system),
        [
            "DELETE Patient/id1",
            "PUT Patient/id1",
            "POST Observation",
            "POST Patient"
        ]
    );
    assert_eq!(
        methods(&call(&s, "GET", "Patient/_history", &[], "")),
        ["DELETE Patient/id1", "PUT Patient/id1", "POST Patient"]
    );
    assert_eq!(
        methods(&call(&s, "GET", "_history?_count=2", &[], "")).len(),
        2
    );
    assert_eq!(
        methods(&call(
            &s,
            "GET",
            "_history?_since=2026-11-27T10:00:00Z",
            &[],
            ""
        ))
        .len(),
        4
    );
    assert_eq!(
        methods(&call(
            &s,
            "GET",
            "_history?_since=2026-11-28T00:00:00Z",
            &[],
            ""
        ))
        .len(),
        0
    );
    assert_eq!(
        call(&s, "GET", "_history?_since=yesterday", &[], "").status,
        400
    );
    // A transaction's writes are in the log too.
    let tx = bundle(
        "transaction",
        &[entry("urn:uuid:9", "POST", "Patient", &patient(""))],
    );
    assert_eq!(call(&s, "POST", "", &[], &tx).status, 200);
    assert_eq!(
        methods(&call(&s, "GET", "Patient/_history?_count=1", &[], "")),
        ["POST Patient"]
    );
}

#[test]
fn review_cases_of_transactions_and_preconditions() {
    let s = service();
    assert_eq!(
        call(&s, "PUT", "Patient/p1", &[], &patient(r#","id":"p1""#)).status,
        201
    );
    // Extra path segments are not a plain delete or read.
    let vread_delete = bundle(
        "transaction",
        &[entry("urn:uuid:1", "DELETE", "Patient/p1/_history/1", "")],
    );
    assert_eq!(call(&s, "POST", "", &[], &vread_delete).status, 400);
    assert_eq!(call(&s, "GET", "Patient/p1", &[], "").status, 200);
    // A read and an update of the same resource may share a transaction.
    let read_then_update = bundle(
        "transaction",
        &[
            entry("urn:uuid:2", "GET", "Patient/p1", ""),
            entry(
                "http://localhost:8787/fhir/Patient/p1",
                "PUT",
                "Patient/p1",
                &patient(r#","id":"p1","active":true"#),
            ),
        ],
    );
    assert_eq!(call(&s, "POST", "", &[], &read_then_update).status, 200);
    // Two entries with one fullUrl (bdl-7), a conditional reference: refused.
    let same_full_url = bundle(
        "transaction",
        &[
            entry("urn:uuid:3", "POST", "Patient", &patient("")),
            entry("urn:uuid:3", "POST", "Patient", &patient("")),
        ],
    );
    assert_eq!(call(&s, "POST", "", &[], &same_full_url).status, 400);
    let conditional = format!(
        r#"{{"resourceType":"Observation",{NARRATIVE},"status":"final","code":{{"text":"x"}},"subject":{{"reference":"Patient?identifier=a|1"}}}}"#
    );
    let response = call(
        &s,
        "POST",
        "",
        &[],
        &bundle(
            "transaction",
            &[entry("urn:uuid:4", "POST", "Observation", &conditional)],
        ),
    );
    // A conditional reference that matches nothing fails the transaction.
    assert_eq!(response.status, 412, "{}", response.body);
    // A base URL prefix without a segment boundary is not the base.
    let lookalike = bundle(
        "transaction",
        &[entry(
            "urn:uuid:5",
            "POST",
            "http://localhost:8787/fhirPatient",
            &patient(""),
        )],
    );
    assert_eq!(call(&s, "POST", "", &[], &lookalike).status, 400);
    // An If-Match that names no version fails, even for a resource that does not exist.
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/new1",
            &[("If-Match", "*")],
            &patient(r#","id":"new1""#)
        )
        .status,
        412
    );
    // _since needs a time zone to compare with stored instants.
    assert_eq!(
        call(&s, "GET", "_history?_since=2026-11-27T10:00:00", &[], "").status,
        400
    );
}

#[test]
fn history_tells_how_each_version_came_and_uri_links_are_rewritten() {
    let s = service();
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/made-by-put",
            &[],
            &patient(r#","id":"made-by-put""#)
        )
        .status,
        201
    );
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/made-by-put",
            &[],
            &patient(r#","id":"made-by-put","active":true"#)
        )
        .status,
        200
    );
    let history: serde_json::Value =
        serde_json::from_str(&call(&s, "GET", "Patient/made-by-put/_history", &[], "").body)
            .unwrap_or_default();
    let how: Vec<(String, String)> = history["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["request"]["method"].as_str().unwrap_or("").to_string(),
                        e["response"]["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        how,
        [
            ("PUT".to_string(), "200".to_string()),
            ("PUT".to_string(), "201".to_string())
        ]
    );
    // A uri element holding a bundle's full URL is rewritten like a reference.
    let document = format!(
        r#"{{"resourceType":"DocumentReference",{NARRATIVE},"status":"current","content":[{{"attachment":{{"url":"urn:uuid:5e0c2f7a-1b2c-4d3e-8f90-a1b2c3d4e5f6"}}}}]}}"#
    );
    let binary = r#"{"resourceType":"Binary","contentType":"text/plain","data":"aGk="}"#;
    let tx = bundle(
        "transaction",
        &[
            entry(
                "urn:uuid:5e0c2f7a-1b2c-4d3e-8f90-a1b2c3d4e5f6",
                "POST",
                "Binary",
                binary,
            ),
            entry(
                "urn:uuid:6f1d3a8b-2c3d-4e5f-9a01-b2c3d4e5f6a7",
                "POST",
                "DocumentReference",
                &document,
            ),
        ],
    );
    let response = call(&s, "POST", "", &[], &tx);
    let result: serde_json::Value = serde_json::from_str(&response.body).unwrap_or_default();
    let url = result["entry"][1]["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(url.starts_with("Binary/"), "{url}: {}", response.body);
}

#[test]
fn batch_queries_are_percent_decoded() {
    let s = service();
    let batch = bundle(
        "batch",
        &[entry("urn:uuid:1", "GET", "Patient?_count=%31", "")],
    );
    let response = call(&s, "POST", "", &[], &batch);
    assert!(response.body.contains("200 OK"), "{}", response.body);
}

#[test]
fn type_and_system_history_page_with_next_links() {
    let service = service();
    for n in 0..7 {
        let created = call(
            &service,
            "POST",
            "Patient",
            &[],
            &patient(&format!(r#","birthDate":"19{n}0""#)),
        );
        assert_eq!(created.status, 201);
    }
    call(&service, "DELETE", "Patient/id3", &[], "");
    for path in ["Patient/_history", "_history"] {
        let mut url = format!("{path}?_count=3");
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let response = call(&service, "GET", &url, &[], "");
            assert_eq!(response.status, 200, "{}", response.body);
            let page: serde_json::Value = serde_json::from_str(&response.body).unwrap();
            let entries = page["entry"].as_array().cloned().unwrap_or_default();
            assert!(entries.len() <= 3);
            for entry in &entries {
                let etag = entry["response"]["etag"].as_str().unwrap().to_string();
                seen.push(format!("{}@{etag}", entry["fullUrl"].as_str().unwrap()));
            }
            pages += 1;
            let next = page["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|link| link["relation"] == "next")
                .map(|link| link["url"].as_str().unwrap().to_string());
            match next {
                Some(next) => {
                    url = next
                        .strip_prefix("http://localhost:8787/fhir/")
                        .expect("the next link is on the server")
                        .to_string()
                }
                None => break,
            }
        }
        // 8 writes, newest first, each once: the deletion, then the creations.
        assert_eq!(seen.len(), 8, "{seen:?}");
        assert_eq!(pages, 3);
        assert!(seen[0].ends_with("Patient/id3@W/\"2\""), "{seen:?}");
        let mut distinct = seen.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 8, "{seen:?}");
    }
    let refused = call(&service, "GET", "_history?_cursor=abc", &[], "");
    assert_eq!(refused.status, 400);
}

#[test]
fn a_transaction_answers_its_writes_as_prefer_return_asks() {
    let s = service();
    assert_eq!(
        call(
            &s,
            "PUT",
            "Patient/read-me",
            &[],
            &patient(r#","id":"read-me""#)
        )
        .status,
        201
    );
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{},"request":{{"method":"PUT","url":"Patient/p1"}}}},{{"request":{{"method":"GET","url":"Patient/read-me"}}}}]}}"#,
        patient(r#","id":"p1""#)
    );
    let answer = |prefer: Option<&str>| -> serde_json::Value {
        let headers: Vec<(&str, &str)> =
            prefer.map(|value| ("Prefer", value)).into_iter().collect();
        let response = call(&s, "POST", "", &headers, &bundle);
        assert_eq!(response.status, 200, "{}", response.body);
        serde_json::from_str(&response.body).unwrap()
    };
    let full = answer(None);
    assert_eq!(full["entry"][0]["resource"]["id"], "p1");
    assert!(full["entry"][0]["response"]["outcome"].is_null());
    let minimal = answer(Some("return=minimal"));
    assert!(minimal["entry"][0]["resource"].is_null(), "{minimal}");
    assert_eq!(minimal["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(
        minimal["entry"][0]["response"]["location"],
        "Patient/p1/_history/2"
    );
    assert_eq!(minimal["entry"][0]["response"]["etag"], "W/\"2\"");
    // A read in the transaction still answers with what it read.
    assert_eq!(minimal["entry"][1]["resource"]["id"], "read-me");
    let outcome = answer(Some("return=OperationOutcome"));
    assert!(outcome["entry"][0]["resource"].is_null());
    assert_eq!(
        outcome["entry"][0]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert_eq!(
        outcome["entry"][0]["response"]["outcome"]["issue"][0]["severity"],
        "information"
    );
    assert_eq!(outcome["entry"][1]["resource"]["id"], "read-me");
    assert!(outcome["entry"][1]["response"]["outcome"].is_null());
}
