//! Hostile requests against the REST handler: each is refused with a 4xx naming what it broke,
//! costs what its limit allows and no more, stores nothing, and leaves the service answering.

use hearth_engine::rest::{Limits, Policy, Request, Response, Service};
use hearth_engine::store::{block_on, MemoryStore};

mod common;
use common::{request, Counter, FixedClock};

const BASE: &str = "http://127.0.0.1:8080/fhir";

fn service() -> Service<MemoryStore> {
    Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        BASE,
    )
}

fn call(service: &Service<MemoryStore>, method: &str, url: &str, body: &str) -> Response {
    block_on(service.handle(&request(method, url, &[], body)))
}

fn call_with(
    service: &Service<MemoryStore>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    block_on(service.handle(&request(method, url, headers, body)))
}

fn json(response: &Response) -> serde_json::Value {
    serde_json::from_str(&response.body).unwrap_or_default()
}

fn issue(response: &Response) -> (String, String) {
    let body = json(response);
    (
        body["issue"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The service still answers: metadata, a search and a read.
#[track_caller]
fn still_answers(service: &Service<MemoryStore>) {
    assert_eq!(call(service, "GET", "metadata", "").status, 200);
    assert_eq!(call(service, "GET", "Patient?_count=1", "").status, 200);
}

fn total(service: &Service<MemoryStore>, url: &str) -> u64 {
    json(&call(service, "GET", url, ""))["total"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// `n` Observations of about `size` bytes each.
fn observations(service: &Service<MemoryStore>, n: usize, size: usize) {
    let note = "x".repeat(size);
    let entries: Vec<String> = (0..n)
        .map(|idx| {
            format!(
                r#"{{"resource":{{"resourceType":"Observation","status":"final","code":{{"text":"c{idx}"}},"valueString":"{note}"}},"request":{{"method":"POST","url":"Observation"}}}}"#
            )
        })
        .collect();
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{}]}}"#,
        entries.join(",")
    );
    let response = call(service, "POST", "", &bundle);
    assert_eq!(response.status, 200, "{}", response.body);
}

#[test]
fn batch_of_large_searches_stops_at_the_response_limit() {
    let mut s = service();
    observations(&s, 50, 1000);
    s.set_limits(Limits {
        max_response_bytes: 200_000,
        ..Limits::default()
    });
    let entries: Vec<String> = (0..1000)
        .map(|_| r#"{"request":{"method":"GET","url":"Observation?_count=1000"}}"#.to_string())
        .collect();
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"batch","entry":[{}]}}"#,
        entries.join(",")
    );
    let response = call(&s, "POST", "", &bundle);
    assert_eq!(response.status, 200);
    // The answers that ran, then a short OperationOutcome for each entry not run.
    assert!(
        response.body.len() < 200_000 + 1000 * 400,
        "{} bytes",
        response.body.len()
    );
    let body = json(&response);
    let answers = body["entry"].as_array().cloned().unwrap_or_default();
    assert_eq!(answers.len(), 1000, "every entry is answered");
    let statuses: Vec<&str> = answers
        .iter()
        .map(|entry| entry["response"]["status"].as_str().unwrap_or_default())
        .collect();
    assert!(statuses[0].starts_with("200"));
    assert!(statuses[999].starts_with("413"), "{}", statuses[999]);
    let over = &answers[999]["response"]["outcome"]["issue"][0];
    assert_eq!(over["code"], "too-costly");
    assert!(over["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .contains("maxResponseBytes"));
    still_answers(&s);
}

#[test]
fn a_search_page_over_the_response_limit_is_refused() {
    let mut s = service();
    observations(&s, 30, 2000);
    s.set_limits(Limits {
        max_response_bytes: 20_000,
        ..Limits::default()
    });
    let response = call(&s, "GET", "Observation?_count=100", "");
    assert_eq!(response.status, 413);
    assert_eq!(issue(&response).0, "too-costly");
    assert!(issue(&response).1.contains("_count"));
    assert_eq!(call(&s, "GET", "Observation?_count=5", "").status, 200);
    let history = call(&s, "GET", "Observation/_history?_count=100", "");
    assert_eq!(history.status, 413, "{}", history.body);
    still_answers(&s);
}

#[test]
fn too_many_parameters_are_refused_before_any_work() {
    let s = service();
    let query: Vec<String> = (0..40_000).map(|_| String::from("name=a")).collect();
    let url = format!("Patient?{}", query.join("&"));
    let response = call(&s, "GET", &url, "");
    assert_eq!(response.status, 413);
    assert!(
        issue(&response).1.contains("maxParameters"),
        "{}",
        response.body
    );
    assert_eq!(s.last_work(), 0, "refused before reading the store");
    // The same through a POST _search form.
    let form = query.join("&");
    let response = call(&s, "POST", "Patient/_search", &form);
    assert_eq!(response.status, 413);
    still_answers(&s);
}

#[test]
fn values_sort_keys_and_element_names_have_limits() {
    let s = service();
    let ids: Vec<String> = (0..1001).map(|idx| format!("p{idx}")).collect();
    let response = call(&s, "GET", &format!("Patient?_id={}", ids.join(",")), "");
    assert_eq!(response.status, 413);
    assert!(issue(&response).1.contains("maxValues"));
    let keys: Vec<&str> = ["name", "birthdate"]
        .iter()
        .cycle()
        .take(500)
        .copied()
        .collect();
    let response = call(&s, "GET", &format!("Patient?_sort={}", keys.join(",")), "");
    assert_eq!(response.status, 413);
    assert!(issue(&response).1.contains("maxSortKeys"));
    let names: Vec<String> = (0..10_000).map(|idx| format!("e{idx}")).collect();
    let response = call(
        &s,
        "GET",
        &format!("Patient?_elements={}", names.join(",")),
        "",
    );
    assert_eq!(response.status, 413);
    assert!(issue(&response).1.contains("maxElements"));
    // Within the limits they run.
    assert_eq!(
        call(&s, "GET", "Patient?_sort=name,-birthdate", "").status,
        200
    );
    still_answers(&s);
}

#[test]
fn batch_entries_have_a_limit() {
    let mut s = service();
    s.set_limits(Limits {
        max_entries: 10,
        ..Limits::default()
    });
    let entries: Vec<&str> =
        std::iter::repeat_n(r#"{"request":{"method":"GET","url":"Patient"}}"#, 11).collect();
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"batch","entry":[{}]}}"#,
        entries.join(",")
    );
    let response = call(&s, "POST", "", &bundle);
    assert_eq!(response.status, 413);
    assert!(issue(&response).1.contains("maxEntries"));
}

#[test]
fn work_grows_linearly_with_parameters() {
    let mut s = service();
    s.set_limits(Limits {
        max_parameters: 100_000,
        max_work: u64::MAX,
        ..Limits::default()
    });
    for idx in 0..20 {
        let body = format!(r#"{{"resourceType":"Patient","name":[{{"family":"f{idx}"}}]}}"#);
        assert_eq!(call(&s, "POST", "Patient", &body).status, 201);
    }
    let work = |query: &str| {
        let response = call(&s, "GET", &format!("Patient?{query}"), "");
        assert_eq!(response.status, 200);
        s.last_work()
    };
    let once = work("name=f1");
    let repeated: Vec<&str> = std::iter::repeat_n("name=f1", 5000).collect();
    assert_eq!(
        work(&repeated.join("&")),
        once,
        "a repeated criterion costs nothing more"
    );
    let distinct = |n: usize| {
        let query: Vec<String> = (0..n).map(|idx| format!("family=g{idx}")).collect();
        let response = call(&s, "GET", &format!("Patient?{}", query.join("&")), "");
        assert_eq!(response.status, 200);
        s.last_work()
    };
    let (w100, w400) = (distinct(100), distinct(400));
    assert!(w100 > 0);
    assert!(
        w400 <= w100 * 5,
        "work for 100 parameters {w100}, for 400 {w400}"
    );
}

#[test]
fn the_work_budget_bounds_a_search() {
    let mut s = service();
    observations(&s, 200, 10);
    s.set_limits(Limits {
        max_work: 50,
        ..Limits::default()
    });
    let response = call(&s, "GET", "Observation?_sort=code&_count=1000", "");
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(issue(&response).1.contains("maxWork"));
    assert!(s.last_work() <= 51 + 1000, "{}", s.last_work());
    s.set_limits(Limits::default());
    assert_eq!(total(&s, "Observation?_summary=count"), 200);
}

#[test]
fn bodies_that_a_browser_sends_across_sites_are_refused() {
    let s = service();
    let patient = r#"{"resourceType":"Patient"}"#;
    let bundle = r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}"#;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/fhir+xml",
    ] {
        let response = call_with(
            &s,
            "POST",
            "Patient",
            &[("content-type", content_type)],
            patient,
        );
        assert_eq!(response.status, 415, "{content_type}");
        let response = call_with(&s, "POST", "", &[("content-type", content_type)], bundle);
        assert_eq!(response.status, 415, "{content_type}");
    }
    // No Content-Type at all.
    let bare = Request {
        method: "POST".into(),
        path: "Patient".into(),
        body: patient.as_bytes().to_vec(),
        ..Request::default()
    };
    assert_eq!(block_on(s.handle(&bare)).status, 415);
    assert_eq!(total(&s, "Patient?_summary=count"), 0, "nothing was stored");
    // A form is a search body.
    let response = call_with(
        &s,
        "POST",
        "Patient/_search",
        &[("content-type", "application/x-www-form-urlencoded")],
        "name=a",
    );
    assert_eq!(response.status, 200);
    let response = call_with(
        &s,
        "POST",
        "Patient",
        &[("content-type", "application/json; charset=utf-8")],
        patient,
    );
    assert_eq!(response.status, 201);
}

#[test]
fn other_hosts_and_origins_are_refused() {
    let mut s = service();
    let patient = r#"{"resourceType":"Patient"}"#;
    let response = call_with(
        &s,
        "POST",
        "Patient",
        &[("origin", "http://evil.example")],
        patient,
    );
    assert_eq!(response.status, 403);
    assert_eq!(issue(&response).0, "forbidden");
    let response = call_with(
        &s,
        "DELETE",
        "Patient/x",
        &[("origin", "http://evil.example")],
        "",
    );
    assert_eq!(response.status, 403);
    let response = call_with(&s, "GET", "metadata", &[("host", "attacker.example")], "");
    assert_eq!(response.status, 421);
    let response = call_with(
        &s,
        "GET",
        "metadata",
        &[("host", "attacker.example:8080")],
        "",
    );
    assert_eq!(response.status, 421);
    assert_eq!(total(&s, "Patient?_summary=count"), 0, "nothing was stored");
    // The service's own host and origin, and the other loopback names, are answered.
    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        let response = call_with(&s, "GET", "metadata", &[("host", host)], "");
        assert_eq!(response.status, 200, "{host}");
    }
    let response = call_with(
        &s,
        "POST",
        "Patient",
        &[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ],
        patient,
    );
    assert_eq!(response.status, 201);
    assert_eq!(response.header("Access-Control-Allow-Origin"), None);
    // An allowed origin gets CORS headers and a preflight answer.
    s.set_policy(Policy {
        allowed_origins: vec![String::from("https://app.example")],
        ..Policy::for_base_url(BASE)
    });
    let preflight = call_with(
        &s,
        "OPTIONS",
        "Patient",
        &[("origin", "https://app.example")],
        "",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert!(preflight
        .header("Access-Control-Allow-Headers")
        .unwrap_or_default()
        .contains("Authorization"));
    let response = call_with(
        &s,
        "GET",
        "Patient",
        &[("origin", "https://app.example")],
        "",
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    let preflight = call_with(
        &s,
        "OPTIONS",
        "Patient",
        &[("origin", "http://evil.example")],
        "",
    );
    assert_eq!(preflight.status, 403);
}

#[test]
fn every_answer_says_nosniff_and_no_store() {
    let s = service();
    for (method, url) in [
        ("GET", "metadata"),
        ("GET", "Patient/missing"),
        ("GET", "Nope"),
    ] {
        let response = call(&s, method, url, "");
        assert_eq!(
            response.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{url}"
        );
        assert_eq!(response.header("Cache-Control"), Some("no-store"), "{url}");
    }
    let refused = call_with(&s, "GET", "metadata", &[("host", "attacker.example")], "");
    assert_eq!(refused.header("X-Content-Type-Options"), Some("nosniff"));
}

#[test]
fn escaped_control_characters_are_refused() {
    let s = service();
    for escape in ["\\u0000", "\\u0001", "\\u001f", "\\u000b"] {
        let body = format!(r#"{{"resourceType":"Patient","name":[{{"family":"a{escape}b"}}]}}"#);
        let response = call(&s, "POST", "Patient", &body);
        assert_eq!(response.status, 400, "{escape}: {}", response.body);
        assert!(
            issue(&response).1.contains("control character"),
            "{}",
            response.body
        );
    }
    // Tab, carriage return and line feed are allowed.
    let body = r#"{"resourceType":"Patient","name":[{"family":"a\tb\r\nc"}]}"#;
    assert_eq!(call(&s, "POST", "Patient", body).status, 201);
    assert_eq!(total(&s, "Patient?_summary=count"), 1);
}

#[test]
fn a_transaction_reference_to_no_entry_is_refused() {
    let s = service();
    let bundle = r#"{"resourceType":"Bundle","type":"transaction","entry":[
      {"fullUrl":"urn:uuid:11111111-1111-1111-1111-111111111111","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
      {"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:22222222-2222-2222-2222-222222222222"}},"request":{"method":"POST","url":"Observation"}}]}"#;
    let response = call(&s, "POST", "", bundle);
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        issue(&response).1.contains("urn:uuid:22222222"),
        "{}",
        response.body
    );
    assert_eq!(total(&s, "Patient?_summary=count"), 0, "nothing was stored");
    // A reference to an entry of the Bundle is rewritten as before.
    let good = bundle.replace(
        "urn:uuid:22222222-2222-2222-2222-222222222222",
        "urn:uuid:11111111-1111-1111-1111-111111111111",
    );
    assert_eq!(call(&s, "POST", "", &good).status, 200);
    assert_eq!(
        total(
            &s,
            "Observation?subject:Patient._id:missing=false&_summary=count"
        ),
        1
    );
}

#[test]
fn dot_segments_name_no_endpoint() {
    let s = service();
    let created = call(
        &s,
        "PUT",
        "Observation/x",
        r#"{"resourceType":"Observation","id":"x","status":"final","code":{"text":"c"}}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    for path in [
        "Patient/..",
        "Patient/../Observation/x",
        "Patient/.",
        "./Observation/x",
    ] {
        let response = call(&s, "GET", path, "");
        assert_eq!(response.status, 400, "{path}: {}", response.body);
    }
    let bundle = r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/../Observation/x"}}]}"#;
    let response = call(&s, "POST", "", bundle);
    assert!(json(&response)["entry"][0]["response"]["status"]
        .as_str()
        .unwrap_or_default()
        .starts_with("400"));
}

#[test]
fn very_large_and_small_decimals_can_be_found() {
    let s = service();
    for (id, value) in [("big", "1e308"), ("small", "1.5e-300"), ("neg", "-2E+200")] {
        let body = format!(
            r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"text":"c"}},"valueQuantity":{{"value":{value}}}}}"#
        );
        assert_eq!(
            call(&s, "PUT", &format!("Observation/{id}"), &body).status,
            201
        );
    }
    let ids = |url: &str| -> Vec<String> {
        let body = json(&call(&s, "GET", url, ""));
        let mut ids: Vec<String> = body["entry"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                entry["resource"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids("Observation?value-quantity=1e308"), vec!["big"]);
    assert_eq!(ids("Observation?value-quantity=gt1e300"), vec!["big"]);
    assert_eq!(ids("Observation?value-quantity=lt0"), vec!["neg"]);
    assert_eq!(
        ids("Observation?value-quantity=gt0&value-quantity=lt1"),
        vec!["small"]
    );
}

#[test]
fn a_transaction_of_many_reads_is_bounded_like_a_response() {
    let mut s = service();
    let note = "z".repeat(5000);
    let body = format!(
        r#"{{"resourceType":"Observation","id":"big","status":"final","code":{{"text":"c"}},"valueString":"{note}"}}"#
    );
    assert_eq!(call(&s, "PUT", "Observation/big", &body).status, 201);
    s.set_limits(Limits {
        max_response_bytes: 10_000,
        ..Limits::default()
    });
    let entries: Vec<&str> = std::iter::repeat_n(
        r#"{"request":{"method":"GET","url":"Observation/big"}}"#,
        200,
    )
    .collect();
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{}]}}"#,
        entries.join(",")
    );
    let response = call(&s, "POST", "", &bundle);
    assert_eq!(
        response.status,
        413,
        "{}",
        &response.body[..200.min(response.body.len())]
    );
    assert!(issue(&response).1.contains("maxResponseBytes"));
}

#[test]
fn conditional_writes_and_conditions_count_against_the_limits() {
    let mut s = service();
    observations(&s, 300, 10);
    s.set_limits(Limits {
        max_work: 50,
        ..Limits::default()
    });
    let response = call(&s, "DELETE", "Observation?status=final", "");
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(issue(&response).1.contains("maxWork"));
    s.set_limits(Limits {
        max_parameters: 3,
        ..Limits::default()
    });
    let response = call_with(
        &s,
        "POST",
        "Patient",
        &[("if-none-exist", "name=a&name=b&name=c&name=d")],
        r#"{"resourceType":"Patient"}"#,
    );
    assert_eq!(response.status, 413, "{}", response.body);
    s.set_limits(Limits::default());
    assert_eq!(
        total(&s, "Observation?_summary=count"),
        300,
        "nothing was deleted"
    );
}

#[test]
fn reindex_is_not_a_batch_entry_and_keeps_the_budget_of_what_follows() {
    let mut s = service();
    observations(&s, 100, 10);
    s.set_limits(Limits {
        max_work: 50,
        ..Limits::default()
    });
    let bundle = r#"{"resourceType":"Bundle","type":"batch","entry":[
      {"request":{"method":"POST","url":"Observation/$reindex"}},
      {"request":{"method":"GET","url":"Observation?_count=1000&_sort=code"}}]}"#;
    let body = json(&call(&s, "POST", "", bundle));
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| entry["response"]["status"].as_str().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(statuses[0].starts_with("400"), "{statuses:?}");
    assert!(statuses[1].starts_with("413"), "{statuses:?}");
    // On its own, $reindex runs, and the request after it has its whole budget.
    assert_eq!(call(&s, "POST", "Observation/$reindex", "").status, 200);
    assert_eq!(
        call(&s, "GET", "Observation?_count=1000&_sort=code", "").status,
        413
    );
}

#[test]
fn a_document_bundle_in_a_transaction_keeps_its_own_references() {
    let s = service();
    let document = r#"{"resourceType":"Bundle","type":"collection","entry":[
      {"fullUrl":"urn:uuid:0c3a7d2e-9b1f-4e0a-8f36-7c1d2b3a4e5f","resource":{"resourceType":"Patient"}},
      {"fullUrl":"urn:uuid:1d4b8e3f-0c2a-4f1b-9a47-8d2e3c4b5f60","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0c3a7d2e-9b1f-4e0a-8f36-7c1d2b3a4e5f"}}}]}"#;
    assert_eq!(call(&s, "POST", "Bundle", document).status, 201);
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{document},"request":{{"method":"POST","url":"Bundle"}}}}]}}"#
    );
    let response = call(&s, "POST", "", &bundle);
    assert_eq!(response.status, 200, "{}", response.body);
}

#[test]
fn the_default_port_may_be_left_out_of_the_host() {
    let on_80 = Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        "http://127.0.0.1:80/fhir",
    );
    for host in ["127.0.0.1", "127.0.0.1:80", "localhost", "localhost:80"] {
        let response = call_with(&on_80, "GET", "metadata", &[("host", host)], "");
        assert_eq!(response.status, 200, "{host}");
    }
    let https = Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        "https://fhir.example.org/r4",
    );
    for (host, status) in [
        ("fhir.example.org", 200),
        ("fhir.example.org:443", 200),
        ("FHIR.example.org", 200),
        ("fhir.example.org:8443", 421),
        ("example.org", 421),
    ] {
        let response = call_with(&https, "GET", "metadata", &[("host", host)], "");
        assert_eq!(response.status, status, "{host}");
    }
}

#[test]
fn very_large_number_parameters_can_be_found() {
    let s = service();
    let body = r#"{"resourceType":"RiskAssessment","id":"r","status":"final","subject":{"reference":"Patient/p"},"prediction":[{"probabilityDecimal":1e308}]}"#;
    assert_eq!(call(&s, "PUT", "RiskAssessment/r", body).status, 201);
    assert_eq!(
        total(&s, "RiskAssessment?probability=1e308&_summary=count"),
        1
    );
    assert_eq!(
        total(&s, "RiskAssessment?probability=gt1&_summary=count"),
        1
    );
    assert_eq!(
        total(&s, "RiskAssessment?probability=lt1&_summary=count"),
        0
    );
}
