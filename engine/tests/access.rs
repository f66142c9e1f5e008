//! The access layer: every path a resource can leave or be probed by, tried with tokens of
//! patient A (v1, v2, read-only, cruds, granular), a user with a role held to their own
//! compartment, and a type-limited system token, on patient B's data and on types out of
//! scope. Nothing of B may show: no resource, id, count or existence signal.

mod common;

use hearth_engine::access::{Access, Claims, Roles, Scopes};
use hearth_engine::rest::{Response, Service};
use hearth_engine::store::{block_on, MemoryStore};

use common::{request, Counter, FixedClock};

const BASE: &str = "http://localhost:8787/fhir";

/// Every text that would show patient B's data or its existence.
const B_MARKS: [&str; 7] = [
    "pat-b",
    "obs-b-lab",
    "obs-b-vital",
    "enc-b",
    "cond-b",
    "Bravo",
    "ident-b",
];

fn service() -> Service<MemoryStore> {
    let service = Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<Counter>::default(),
        BASE,
    );
    let put = |path: &str, body: String| {
        let response = block_on(service.handle(&request("PUT", path, &[], &body)));
        assert!(
            response.status == 201 || response.status == 200,
            "{path}: {} {}",
            response.status,
            response.body
        );
    };
    put(
        "Practitioner/gp-1",
        r#"{"resourceType":"Practitioner","id":"gp-1","name":[{"family":"Gray"}]}"#.into(),
    );
    put(
        "Medication/med-1",
        r#"{"resourceType":"Medication","id":"med-1","code":{"text":"aspirin"}}"#.into(),
    );
    for (who, name, gp) in [("a", "Alpha", true), ("b", "Bravo", false)] {
        let gp = if gp {
            r#","generalPractitioner":[{"reference":"Practitioner/gp-1"}]"#
        } else {
            ""
        };
        put(
            &format!("Patient/pat-{who}"),
            format!(
                r#"{{"resourceType":"Patient","id":"pat-{who}","identifier":[{{"system":"urn:test","value":"ident-{who}"}}],"name":[{{"family":"{name}"}}]{gp}}}"#
            ),
        );
        put(
            &format!("Encounter/enc-{who}"),
            format!(
                r#"{{"resourceType":"Encounter","id":"enc-{who}","status":"finished","class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}},"subject":{{"reference":"Patient/pat-{who}"}}}}"#
            ),
        );
        for (kind, category) in [("lab", "laboratory"), ("vital", "vital-signs")] {
            let performer = if who == "a" && kind == "lab" {
                r#","performer":[{"reference":"Practitioner/gp-1"}]"#
            } else {
                ""
            };
            put(
                &format!("Observation/obs-{who}-{kind}"),
                format!(
                    r#"{{"resourceType":"Observation","id":"obs-{who}-{kind}","identifier":[{{"system":"urn:test","value":"ident-{who}-{kind}"}}],"status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"{category}"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"1234-5"}}]}},"subject":{{"reference":"Patient/pat-{who}"}},"encounter":{{"reference":"Encounter/enc-{who}"}}{performer}}}"#
                ),
            );
        }
        put(
            &format!("Condition/cond-{who}"),
            format!(
                r#"{{"resourceType":"Condition","id":"cond-{who}","subject":{{"reference":"Patient/pat-{who}"}}}}"#
            ),
        );
    }
    // A's laboratory result was derived from one of B's, which lists A's among its members:
    // links across the compartments, for includes, chains and _has to follow.
    put(
        "Observation/linked-1",
        r#"{"resourceType":"Observation","id":"linked-1","identifier":[{"system":"urn:test","value":"ident-b-linked"}],"status":"final","code":{"text":"panel"},"subject":{"reference":"Patient/pat-b"},"hasMember":[{"reference":"Observation/obs-a-lab"}]}"#.into(),
    );
    {
        let read = block_on(service.handle(&request("GET", "Observation/obs-a-lab", &[], "")));
        let linked = read.body.replace(
            r#""subject":"#,
            r#""derivedFrom":[{"reference":"Observation/linked-1"}],"subject":"#,
        );
        let linked = linked.replacen(
            r#","meta":{"versionId":"1","lastUpdated":"2026-11-27T10:20:30.000Z"}"#,
            "",
            1,
        );
        put("Observation/obs-a-lab", linked);
    }
    // B's observation has a deleted sibling, so that a deleted resource is probed too.
    put(
        "Observation/obs-b-gone",
        r#"{"resourceType":"Observation","id":"obs-b-gone","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat-b"}}"#.into(),
    );
    let gone = block_on(service.handle(&request("DELETE", "Observation/obs-b-gone", &[], "")));
    assert_eq!(gone.status, 204);
    service
}

/// The probe with B's ids and names turned into ones nothing has.
fn to_absent(text: &str) -> String {
    text.replace("pat-b", "pat-z")
        .replace("obs-b-", "obs-z-")
        .replace("enc-b", "enc-z")
        .replace("cond-b", "cond-z")
        .replace("ident-b", "ident-z")
        .replace("Bravo", "Zulu")
}

/// What an answer tells beyond the ids asked for: its statuses, totals and entry counts, with
/// the ids of the absent twin mapped back.
fn shape(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(body) else {
        return String::from("not JSON");
    };
    let mut out = format!("{} total={}", json["resourceType"], json["total"]);
    if let Some(entries) = json["entry"].as_array() {
        out.push_str(&format!(" entries={}", entries.len()));
        for entry in entries {
            out.push_str(&format!(
                " [{} {}]",
                entry["response"]["status"], entry["resource"]["resourceType"]
            ));
        }
    }
    if let Some(issues) = json["issue"].as_array() {
        for issue in issues {
            out.push_str(&format!(
                " {}:{}",
                issue["code"],
                to_absent(issue["diagnostics"].as_str().unwrap_or_default())
            ));
        }
    }
    out
}

fn patient_claims(scope: &str) -> Claims {
    Claims {
        scopes: Scopes::parse(scope),
        patient: Some("pat-a".into()),
        ..Claims::default()
    }
}

fn roles() -> Roles {
    Roles::from_json(
        r#"{"roles":{"gp":{"allow":["*.cruds"],"compartment":"Practitioner"},"desk":{"allow":["Patient.rs"]}}}"#,
    )
    .expect("roles")
}

struct Probe {
    method: &'static str,
    url: String,
    body: String,
}

fn get(url: &str) -> Probe {
    Probe {
        method: "GET",
        url: url.into(),
        body: String::new(),
    }
}

fn with_body(method: &'static str, url: &str, body: &str) -> Probe {
    Probe {
        method,
        url: url.into(),
        body: body.into(),
    }
}

/// Every way to reach or probe B's data (and the types out of scope).
fn probes() -> Vec<Probe> {
    let obs_b = r#"{"resourceType":"Observation","id":"obs-b-lab","status":"final","code":{"text":"changed"},"subject":{"reference":"Patient/pat-b"}}"#;
    let obs_new_b = r#"{"resourceType":"Observation","status":"final","code":{"text":"new"},"subject":{"reference":"Patient/pat-b"}}"#;
    let mut probes = vec![
        get("Patient/pat-b"),
        get("Patient/pat-b/_history/1"),
        get("Patient/pat-b/_history"),
        get("Observation/obs-b-lab"),
        get("Observation/obs-b-lab/_history/1"),
        get("Observation/obs-b-gone"),
        get("Observation/obs-b-gone/_history"),
        get("Encounter/enc-b"),
        get("Condition/cond-b"),
        get("Observation"),
        get("Observation?subject=Patient/pat-b"),
        get("Observation?_id=obs-b-lab"),
        get("Observation?identifier=ident-b-lab"),
        get("Observation?_summary=count"),
        get("Observation?_total=accurate&_count=1"),
        get("Observation?_include=Observation:subject"),
        get("Observation?_include=Observation:encounter&_include:iterate=Encounter:subject"),
        get("Observation?_include=*"),
        get("Patient?_revinclude=Observation:subject"),
        get("Patient?_revinclude=*"),
        get("Practitioner?_revinclude=Observation:performer"),
        get("Practitioner?_revinclude=Patient:general-practitioner"),
        get("Patient"),
        get("Observation?_include=Observation:derived-from"),
        get("Observation?_revinclude=Observation:has-member"),
        get("Observation?_revinclude:iterate=Observation:has-member&_include=Observation:derived-from"),
        get("Observation?derived-from.identifier=ident-b-linked"),
        get("Observation?derived-from:Observation.subject.name=Bravo"),
        get("Observation?_has:Observation:has-member:identifier=ident-b-linked"),
        get("Observation/linked-1"),
        get("Observation?_id=linked-1"),
        get("Patient?name=Bravo"),
        get("Patient?identifier=ident-b"),
        get("Observation?subject.name=Bravo"),
        get("Observation?subject:Patient.name=Bravo"),
        get("Patient?_has:Observation:subject:code=1234-5"),
        get("Patient?_has:Observation:subject:_has:Condition:subject:_id=cond-b"),
        get("Encounter?_has:Observation:encounter:identifier=ident-b-lab"),
        get("Patient/pat-b/Observation"),
        get("Patient/pat-b/*"),
        get("Patient/pat-b/$everything"),
        get("Encounter/enc-b/Observation"),
        get("Observation/_history"),
        get("_history"),
        get("Patient/_history"),
        get("?_type=Observation,Patient"),
        get("?_type=Observation&identifier=ident-b-lab"),
        get(""),
        with_body("POST", "Observation/_search", "subject=Patient/pat-b"),
        with_body("POST", "_search", "_type=Patient&name=Bravo"),
        with_body("PUT", "Observation/obs-b-lab", obs_b),
        with_body(
            "PATCH",
            "Observation/obs-b-lab",
            r#"[{"op":"replace","path":"/status","value":"amended"}]"#,
        ),
        with_body("DELETE", "Observation/obs-b-lab", ""),
        with_body("DELETE", "Patient/pat-b", ""),
        with_body("POST", "Observation", obs_new_b),
        with_body("PUT", "Observation/obs-new-b", obs_new_b),
        with_body("PUT", "Observation?identifier=ident-b-lab", obs_b),
        with_body("DELETE", "Observation?identifier=ident-b-lab", ""),
        with_body(
            "PATCH",
            "Observation?identifier=ident-b-lab",
            r#"[{"op":"replace","path":"/status","value":"amended"}]"#,
        ),
        with_body("POST", "Observation/obs-b-lab/$validate", obs_b),
        with_body(
            "POST",
            "",
            r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Observation/obs-b-lab"}},{"request":{"method":"GET","url":"Observation?subject=Patient/pat-b"}},{"request":{"method":"GET","url":"Patient/pat-b/$everything"}}]}"#,
        ),
        with_body(
            "POST",
            "",
            r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Observation/obs-b-vital"}}]}"#,
        ),
        with_body(
            "POST",
            "",
            &format!(
                r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{obs_b},"request":{{"method":"PUT","url":"Observation/obs-b-lab"}}}}]}}"#
            ),
        ),
        with_body(
            "POST",
            "",
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Observation?identifier=ident-b-lab"}}]}"#,
        ),
        with_body(
            "POST",
            "",
            r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation/obs-b-vital"}}]}"#,
        ),
    ];
    // Conditional create on B's identifier: creates A's resource (or is refused); it may
    // not answer 200 with B's match.
    probes.push(Probe {
        method: "POST",
        url: "Observation".into(),
        body: r#"{"resourceType":"Observation","status":"final","code":{"text":"mine"},"subject":{"reference":"Patient/pat-a"}}"#.into(),
    });
    probes
}

fn call(
    access: &Access,
    service: &Service<MemoryStore>,
    claims: &Claims,
    probe: &Probe,
    headers: &[(&str, &str)],
) -> Response {
    block_on(access.handle(
        service,
        &request(probe.method, &probe.url, headers, &probe.body),
        claims,
    ))
}

/// B's data as stored, to compare after every write probe.
fn b_state(service: &Service<MemoryStore>) -> Vec<String> {
    [
        "Patient/pat-b",
        "Observation/obs-b-lab",
        "Observation/obs-b-vital",
        "Encounter/enc-b",
        "Condition/cond-b",
        "Observation/obs-b-gone",
        "Observation/linked-1",
    ]
    .iter()
    .map(|path| {
        let response = block_on(service.handle(&request("GET", path, &[], "")));
        format!("{} {}", response.status, response.body)
    })
    .collect()
}

#[test]
fn nothing_of_patient_b_leaks_on_any_path() {
    let tokens: Vec<(&str, Access, Claims)> = vec![
        (
            "patient v1 read",
            Access::new(),
            patient_claims("patient/*.read"),
        ),
        (
            "patient v1 read+write",
            Access::new(),
            patient_claims("patient/*.read patient/*.write"),
        ),
        (
            "patient v2 rs",
            Access::new(),
            patient_claims("patient/*.rs"),
        ),
        (
            "patient v2 cruds",
            Access::new(),
            patient_claims("patient/*.cruds"),
        ),
        (
            "patient v2 granular",
            Access::new(),
            patient_claims("patient/Observation.rs?category=laboratory patient/Patient.r"),
        ),
        (
            "user gp role",
            Access::with_roles(roles()),
            Claims {
                scopes: Scopes::parse("user/*.cruds"),
                fhir_user: Some(format!("{BASE}/Practitioner/gp-1")),
                roles: vec!["gp".into()],
                ..Claims::default()
            },
        ),
        (
            "system Observation only",
            Access::new(),
            Claims {
                scopes: Scopes::parse("system/Patient.rs?identifier=ident-a"),
                ..Claims::default()
            },
        ),
    ];
    let probes = probes();
    let mut tried = 0;
    let mut compared = 0;
    for (name, access, claims) in &tokens {
        let service = service();
        let before = b_state(&service);
        for probe in &probes {
            let conditional =
                probe.method == "POST" && probe.url == "Observation" && probe.body.contains("mine");
            let headers: Vec<(&str, &str)> = if conditional {
                vec![("if-none-exist", "identifier=ident-b-lab")]
            } else {
                Vec::new()
            };
            let response = call(access, &service, claims, probe, &headers);
            tried += 1;
            // The request's own text may come back (an id in a 404's message); anything
            // else of B may not.
            let echoed = |mark: &str| probe.url.contains(mark) || probe.body.contains(mark);
            for mark in B_MARKS.iter().filter(|mark| !echoed(mark)) {
                assert!(
                    !response.body.contains(mark),
                    "{name}: {} {} shows \"{mark}\": {} {}",
                    probe.method,
                    probe.url,
                    response.status,
                    response.body
                );
            }
            for (header, value) in &response.headers {
                assert!(
                    !B_MARKS
                        .iter()
                        .any(|mark| !echoed(mark) && value.contains(mark)),
                    "{name}: {} {} shows B in {header}: {value}",
                    probe.method,
                    probe.url
                );
            }
            assert!(
                response.status != 410 && response.status != 500,
                "{name}: {} {} answered {} (a deleted resource of B must look absent): {}",
                probe.method,
                probe.url,
                response.status,
                response.body
            );
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&response.body) {
                if let Some(total) = json.get("total").and_then(serde_json::Value::as_u64) {
                    let shown = json["entry"].as_array().map_or(0, Vec::len) as u64;
                    // A total counts only what A may see: never more than A's own data.
                    assert!(
                        total <= 6,
                        "{name}: {} {} counts {total} (shown {shown}): {}",
                        probe.method,
                        probe.url,
                        response.body
                    );
                }
            }
            // A read gives the same answer for B's data as for data that does not exist.
            // Reads, and writes to what exists (PATCH, DELETE; a PUT to a new id creates).
            let reads = probe.method == "GET"
                || probe.method == "PATCH"
                || probe.method == "DELETE"
                || probe.url.ends_with("_search")
                || probe.body.contains(r#""type":"batch""#)
                || (probe.body.contains(r#""type":"transaction""#)
                    && probe.body.contains(r#""method":"DELETE""#));
            if reads && !conditional {
                let absent = Probe {
                    method: probe.method,
                    url: to_absent(&probe.url),
                    body: to_absent(&probe.body),
                };
                let other = call(access, &service, claims, &absent, &headers);
                assert_eq!(
                    (response.status, shape(&response.body)),
                    (other.status, shape(&other.body)),
                    "{name}: {} {} answers otherwise for B's data than for none: {} / {}",
                    probe.method,
                    probe.url,
                    response.body,
                    other.body
                );
                compared += 1;
            }
            assert_eq!(
                b_state(&service),
                before,
                "{name}: {} {} changed B's data",
                probe.method,
                probe.url
            );
        }
    }
    println!(
        "access leak matrix: {} tokens × {} paths = {tried} requests, none showed patient B's data; {compared} reads answered as for data that does not exist",
        tokens.len(),
        probes.len()
    );
    assert!(compared > 200, "{compared}");
}

fn status(
    access: &Access,
    service: &Service<MemoryStore>,
    claims: &Claims,
    method: &'static str,
    url: &str,
    body: &str,
) -> (u16, String) {
    let response = call(access, service, claims, &with_body(method, url, body), &[]);
    (response.status, response.body)
}

#[test]
fn patient_a_reaches_its_own_data() {
    let service = service();
    let access = Access::new();
    let claims = patient_claims("patient/*.cruds");
    let (code, body) = status(&access, &service, &claims, "GET", "Patient/pat-a", "");
    assert_eq!(code, 200, "{body}");
    let (code, body) = status(&access, &service, &claims, "GET", "Observation", "");
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["total"], 2, "{body}");
    let (code, body) = status(
        &access,
        &service,
        &claims,
        "GET",
        "Observation?_include=Observation:subject&_include=Observation:performer",
        "",
    );
    assert_eq!(code, 200);
    assert!(body.contains("pat-a") && body.contains("gp-1"), "{body}");
    let (code, body) = status(
        &access,
        &service,
        &claims,
        "GET",
        "Patient/pat-a/$everything",
        "",
    );
    assert_eq!(code, 200);
    assert!(
        body.contains("obs-a-lab") && body.contains("cond-a"),
        "{body}"
    );
    // Writes in the compartment work; out of it, 403.
    let mine = r#"{"resourceType":"Observation","status":"final","code":{"text":"bp"},"subject":{"reference":"Patient/pat-a"}}"#;
    assert_eq!(
        status(&access, &service, &claims, "POST", "Observation", mine).0,
        201
    );
    let theirs = mine.replace("pat-a", "pat-b");
    let (code, body) = status(&access, &service, &claims, "POST", "Observation", &theirs);
    assert_eq!(code, 403, "{body}");
    // Moving one's own resource into B's compartment is refused, and nothing is written.
    let moved = r#"{"resourceType":"Observation","id":"obs-a-vital","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat-b"}}"#;
    assert_eq!(
        status(
            &access,
            &service,
            &claims,
            "PUT",
            "Observation/obs-a-vital",
            moved
        )
        .0,
        403
    );
    let patch = r#"[{"op":"replace","path":"/subject/reference","value":"Patient/pat-b"}]"#;
    assert_eq!(
        status(
            &access,
            &service,
            &claims,
            "PATCH",
            "Observation/obs-a-vital",
            patch
        )
        .0,
        403
    );
    let (_, body) = status(
        &access,
        &service,
        &claims,
        "GET",
        "Observation/obs-a-vital",
        "",
    );
    assert!(body.contains("Patient/pat-a"), "{body}");
    // A transaction with one entry out of reach writes nothing.
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{mine},"request":{{"method":"POST","url":"Observation"}}}},{{"resource":{theirs},"request":{{"method":"POST","url":"Observation"}}}}]}}"#
    );
    assert_eq!(
        status(&access, &service, &claims, "POST", "", &bundle).0,
        403
    );
    let (_, body) = status(
        &access,
        &service,
        &claims,
        "GET",
        "Observation?_summary=count",
        "",
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["total"], 3, "{body}");
    // Deleting one's own works.
    assert_eq!(
        status(
            &access,
            &service,
            &claims,
            "DELETE",
            "Observation/obs-a-vital",
            ""
        )
        .0,
        204
    );
}

#[test]
fn scopes_limit_types_and_interactions() {
    let service = service();
    let access = Access::new();
    let read_only = patient_claims("patient/*.rs");
    let mine = r#"{"resourceType":"Observation","status":"final","code":{"text":"bp"},"subject":{"reference":"Patient/pat-a"}}"#;
    let response = call(
        &access,
        &service,
        &read_only,
        &with_body("POST", "Observation", mine),
        &[],
    );
    assert_eq!(response.status, 403);
    assert_eq!(
        response.header("WWW-Authenticate"),
        Some("Bearer error=\"insufficient_scope\"")
    );
    let obs_only = patient_claims("patient/Observation.rs");
    assert_eq!(
        status(&access, &service, &obs_only, "GET", "Condition", "").0,
        403
    );
    assert_eq!(
        status(&access, &service, &obs_only, "GET", "Observation", "").0,
        200
    );
    // Granular: only laboratory results.
    let lab = patient_claims("patient/Observation.rs?category=laboratory");
    let (_, body) = status(&access, &service, &lab, "GET", "Observation", "");
    assert!(
        body.contains("obs-a-lab") && !body.contains("obs-a-vital"),
        "{body}"
    );
    assert_eq!(
        status(
            &access,
            &service,
            &lab,
            "GET",
            "Observation/obs-a-vital",
            ""
        )
        .0,
        404
    );
    assert_eq!(
        status(&access, &service, &lab, "GET", "Observation/obs-a-lab", "").0,
        200
    );
    // Two granular scopes on one parameter: either category.
    let both = patient_claims(
        "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs",
    );
    let (_, body) = status(&access, &service, &both, "GET", "Observation", "");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["total"], 2, "{body}");
    // A patient token without a patient claim reaches nothing.
    let no_patient = Claims {
        scopes: Scopes::parse("patient/*.rs"),
        ..Claims::default()
    };
    assert_eq!(
        status(&access, &service, &no_patient, "GET", "Observation", "").0,
        403
    );
    // A token in the query string is refused.
    let response = call(
        &access,
        &service,
        &both,
        &get("Observation?access_token=abc"),
        &[],
    );
    assert_eq!(response.status, 401);
    // system/*.* reaches everything, as the service alone.
    let system = Claims {
        scopes: Scopes::parse("system/*.*"),
        ..Claims::default()
    };
    let (_, body) = status(
        &access,
        &service,
        &system,
        "GET",
        "Observation?_summary=count",
        "",
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["total"], 5, "{body}");
}

#[test]
fn roles_hold_users_to_what_they_allow() {
    let service = service();
    let access = Access::with_roles(roles());
    let gp = Claims {
        scopes: Scopes::parse("user/*.cruds"),
        fhir_user: Some("Practitioner/gp-1".into()),
        roles: vec!["gp".into()],
        ..Claims::default()
    };
    assert_eq!(
        status(&access, &service, &gp, "GET", "Patient/pat-a", "").0,
        200
    );
    assert_eq!(
        status(&access, &service, &gp, "GET", "Patient/pat-b", "").0,
        404
    );
    assert_eq!(
        status(&access, &service, &gp, "GET", "Observation/obs-a-lab", "").0,
        200
    );
    // The desk role reads patients, nothing else; without a role, nothing.
    let desk = Claims {
        scopes: Scopes::parse("user/*.cruds"),
        roles: vec!["desk".into()],
        ..Claims::default()
    };
    assert_eq!(
        status(&access, &service, &desk, "GET", "Patient/pat-b", "").0,
        200
    );
    assert_eq!(
        status(&access, &service, &desk, "GET", "Observation", "").0,
        403
    );
    let none = Claims {
        scopes: Scopes::parse("user/*.cruds"),
        ..Claims::default()
    };
    assert_eq!(
        status(&access, &service, &none, "GET", "Patient", "").0,
        403
    );
    // The token's scope still bounds the role.
    let read_only = Claims {
        scopes: Scopes::parse("user/Patient.rs"),
        roles: vec!["desk".into()],
        ..Claims::default()
    };
    let new_patient = r#"{"resourceType":"Patient","name":[{"family":"New"}]}"#;
    assert_eq!(
        status(
            &access,
            &service,
            &read_only,
            "POST",
            "Patient",
            new_patient
        )
        .0,
        403
    );
    assert!(Roles::from_json(r#"{"roles":{"x":{"allow":["Observation.xyz"]}}}"#).is_err());
    assert!(
        Roles::from_json(r#"{"roles":{"x":{"allow":["*.rs"],"compartment":"Nowhere"}}}"#).is_err()
    );
}

/// The AuditEvents stored, oldest first (read past the access layer).
fn audit_events(service: &Service<MemoryStore>) -> Vec<serde_json::Value> {
    let response = block_on(service.handle(&request("GET", "AuditEvent?_count=1000", &[], "")));
    let bundle: serde_json::Value = serde_json::from_str(&response.body).unwrap();
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| entry["resource"].clone())
                .collect()
        })
        .unwrap_or_default()
}

fn decode_base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value = ALPHABET.iter().position(|c| *c == byte).unwrap() as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The one AuditEvent `action` added, checked for what every record has.
fn one_new(service: &Service<MemoryStore>, before: usize, what: &str) -> serde_json::Value {
    let events = audit_events(service);
    assert_eq!(
        events.len(),
        before + 1,
        "{what}: {:#?}",
        &events[before.min(events.len())..]
    );
    let event = events[before].clone();
    assert_eq!(event["type"]["code"], "rest", "{what}");
    assert_eq!(event["source"]["observer"]["display"], BASE, "{what}");
    assert!(event["recorded"].is_string(), "{what}");
    event
}

fn entity_refs(event: &serde_json::Value) -> Vec<String> {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entity| entity["what"]["reference"].as_str().map(String::from))
        .collect()
}

#[test]
fn every_interaction_is_recorded_once() {
    let service = service();
    let access = Access::new();
    let claims = Claims {
        client_id: Some("app-1".into()),
        fhir_user: Some("Patient/pat-a".into()),
        ..patient_claims("patient/*.cruds")
    };
    let run = |method: &'static str, url: &str, body: &str| {
        call(
            &access,
            &service,
            &claims,
            &with_body(method, url, body),
            &[],
        )
    };
    let mut count = audit_events(&service).len();
    assert_eq!(count, 0);

    // A read: R, the resource and its patient, the user and the client as agents.
    assert_eq!(run("GET", "Observation/obs-a-lab", "").status, 200);
    let event = one_new(&service, count, "read");
    count += 1;
    assert_eq!(
        (
            event["action"].as_str(),
            event["subtype"][0]["code"].as_str(),
            event["outcome"].as_str()
        ),
        (Some("R"), Some("read"), Some("0"))
    );
    assert_eq!(
        entity_refs(&event),
        ["Observation/obs-a-lab", "Patient/pat-a"]
    );
    assert_eq!(event["agent"][0]["who"]["reference"], "Patient/pat-a");
    assert_eq!(event["agent"][0]["requestor"], true);
    assert_eq!(event["agent"][1]["who"]["identifier"]["value"], "app-1");

    // A search: E, the query (base64) and the patients of what was found.
    assert_eq!(
        run("GET", "Observation?category=laboratory", "").status,
        200
    );
    let event = one_new(&service, count, "search");
    count += 1;
    assert_eq!(
        (
            event["action"].as_str(),
            event["subtype"][0]["code"].as_str()
        ),
        (Some("E"), Some("search-type"))
    );
    let query = event["entity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entity| entity["query"].is_string())
        .unwrap();
    assert_eq!(
        decode_base64(query["query"].as_str().unwrap()),
        format!("{BASE}/Observation?category=laboratory")
    );
    assert!(entity_refs(&event).contains(&"Patient/pat-a".to_string()));

    // A create: C, recorded with the write (same transaction), the version written.
    let mine = r#"{"resourceType":"Observation","status":"final","code":{"text":"bp"},"subject":{"reference":"Patient/pat-a"}}"#;
    let created = run("POST", "Observation", mine);
    assert_eq!(created.status, 201);
    let id = created
        .header("Location")
        .unwrap()
        .split('/')
        .rev()
        .nth(2)
        .unwrap()
        .to_string();
    let event = one_new(&service, count, "create");
    count += 1;
    assert_eq!(
        (
            event["action"].as_str(),
            event["subtype"][0]["code"].as_str()
        ),
        (Some("C"), Some("create"))
    );
    assert_eq!(
        entity_refs(&event),
        [
            format!("Observation/{id}/_history/1"),
            "Patient/pat-a".to_string()
        ]
    );

    // Update, patch, delete: U, U, D.
    let update = mine.replace("\"bp\"", "\"blood pressure\"").replacen(
        '{',
        &format!(r#"{{"id":"{id}","#),
        1,
    );
    assert_eq!(
        run("PUT", &format!("Observation/{id}"), &update).status,
        200
    );
    let event = one_new(&service, count, "update");
    count += 1;
    assert_eq!(
        (
            event["action"].as_str(),
            event["subtype"][0]["code"].as_str()
        ),
        (Some("U"), Some("update"))
    );
    let patch = r#"[{"op":"replace","path":"/status","value":"amended"}]"#;
    assert_eq!(
        run("PATCH", &format!("Observation/{id}"), patch).status,
        200
    );
    let event = one_new(&service, count, "patch");
    count += 1;
    assert_eq!(
        (
            event["action"].as_str(),
            event["subtype"][0]["code"].as_str()
        ),
        (Some("U"), Some("patch"))
    );
    assert_eq!(
        entity_refs(&event)[0],
        format!("Observation/{id}/_history/3")
    );
    assert_eq!(run("DELETE", &format!("Observation/{id}"), "").status, 204);
    let event = one_new(&service, count, "delete");
    count += 1;
    assert_eq!(
        (
            event["action"].as_str(),
            event["subtype"][0]["code"].as_str()
        ),
        (Some("D"), Some("delete"))
    );

    // A refused read is recorded as refused: outcome 4, and the answer says nothing more.
    assert_eq!(run("GET", "Observation/obs-b-lab", "").status, 404);
    let event = one_new(&service, count, "refused read");
    count += 1;
    assert_eq!(event["outcome"], "4");
    assert!(event["outcomeDesc"].as_str().unwrap().starts_with("404"));

    // A refused write: outcome 4, and no record claiming it was written.
    let theirs = mine.replace("pat-a", "pat-b");
    assert_eq!(run("POST", "Observation", &theirs).status, 403);
    let event = one_new(&service, count, "refused write");
    count += 1;
    assert_eq!(
        (event["action"].as_str(), event["outcome"].as_str()),
        (Some("C"), Some("4"))
    );

    // A failed write (invalid): one record of the failure, none of success.
    let invalid = r#"{"resourceType":"Observation","status":"nonsense","code":{"text":"x"},"subject":{"reference":"Patient/pat-a"}}"#;
    assert_eq!(run("POST", "Observation", invalid).status, 422);
    let event = one_new(&service, count, "failed write");
    count += 1;
    assert_eq!(event["outcome"], "4");
    assert!(entity_refs(&event).is_empty(), "{event}");

    // A transaction: each write recorded with it, and the transaction itself.
    let bundle = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{mine},"request":{{"method":"POST","url":"Observation"}}}},{{"resource":{mine},"request":{{"method":"POST","url":"Observation"}}}}]}}"#
    );
    assert_eq!(run("POST", "", &bundle).status, 200);
    let events = audit_events(&service);
    assert_eq!(events.len(), count + 3, "{:#?}", &events[count..]);
    let subtypes: Vec<&str> = events[count..]
        .iter()
        .map(|event| event["subtype"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(subtypes, ["create", "create", "transaction"]);
    count += 3;

    // A transaction that fails writes nothing and records only its failure.
    let failing = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{mine},"request":{{"method":"POST","url":"Observation"}}}},{{"resource":{invalid},"request":{{"method":"POST","url":"Observation"}}}}]}}"#
    );
    assert_eq!(run("POST", "", &failing).status, 422);
    let event = one_new(&service, count, "failed transaction");
    count += 1;
    assert_eq!(
        (
            event["subtype"][0]["code"].as_str(),
            event["outcome"].as_str()
        ),
        (Some("transaction"), Some("4"))
    );

    // The patient reads its own trail; AuditEvents can not be changed, not even by a system.
    let (status_code, body) = status(
        &access,
        &service,
        &claims,
        "GET",
        "AuditEvent?patient=Patient/pat-a&_count=1000",
        "",
    );
    assert_eq!(status_code, 200, "{body}");
    let trail: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(trail["total"].as_u64().unwrap() >= 8, "{body}");
    count += 1;
    let system = Claims {
        scopes: Scopes::parse("system/*.*"),
        client_id: Some("backend".into()),
        ..Claims::default()
    };
    let first = &audit_events(&service)[0];
    let audit_id = first["id"].as_str().unwrap();
    let mut changed = first.clone();
    changed["outcome"] = serde_json::json!("8");
    let response = call(
        &access,
        &service,
        &system,
        &with_body(
            "PUT",
            &format!("AuditEvent/{audit_id}"),
            &changed.to_string(),
        ),
        &[],
    );
    assert_eq!(response.status, 403, "{}", response.body);
    let response = call(
        &access,
        &service,
        &system,
        &with_body("DELETE", &format!("AuditEvent/{audit_id}"), ""),
        &[],
    );
    assert_eq!(response.status, 403, "{}", response.body);
    count += 2;
    // A system token's writes are recorded too, with the client as requestor.
    assert_eq!(
        call(
            &access,
            &service,
            &system,
            &with_body("POST", "Observation", mine),
            &[]
        )
        .status,
        201
    );
    let event = one_new(&service, count, "system create");
    assert_eq!(event["agent"][0]["who"]["identifier"]["value"], "backend");
    assert_eq!(event["agent"][0]["requestor"], true);
    // A token that may not read AuditEvents does not see them.
    let obs_only = patient_claims("patient/Observation.rs");
    assert_eq!(
        status(&access, &service, &obs_only, "GET", "AuditEvent", "").0,
        403
    );
}

/// Ids that are valid for resources and invalid for every second one (the audit record's).
#[derive(Default)]
struct EveryOtherBroken(std::cell::Cell<u32>);
impl hearth_engine::rest::IdSource for EveryOtherBroken {
    fn next_id(&self) -> String {
        self.0.set(self.0.get() + 1);
        if self.0.get() % 2 == 0 {
            String::from("not a valid id!")
        } else {
            format!("ok{}", self.0.get())
        }
    }
}

#[test]
fn no_write_is_kept_without_its_record() {
    let service = Service::new(
        MemoryStore::new(),
        Box::new(FixedClock),
        Box::<EveryOtherBroken>::default(),
        BASE,
    );
    let access = Access::new();
    let system = Claims {
        scopes: Scopes::parse("system/*.*"),
        ..Claims::default()
    };
    let patient = r#"{"resourceType":"Patient","name":[{"family":"Lost"}]}"#;
    let response = call(
        &access,
        &service,
        &system,
        &with_body("POST", "Patient", patient),
        &[],
    );
    // The record could not be made, so the write was not made either.
    assert_eq!(response.status, 500, "{}", response.body);
    let listed = block_on(service.handle(&request("GET", "Patient?_summary=count", &[], "")));
    let json: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(json["total"], 0, "{}", listed.body);
}

/// Attacks found in review, each refused.
#[test]
fn review_attacks_are_refused() {
    let service = service();
    let access = Access::new();
    let cruds = patient_claims("patient/*.cruds");
    let system = Claims {
        scopes: Scopes::parse("system/*.*"),
        ..Claims::default()
    };
    // A patient's token may not redefine a compartment with a SearchParameter.
    let parameter = r#"{"resourceType":"SearchParameter","url":"http://example.org/sp","name":"performer","status":"active","description":"x","code":"performer","base":["Observation"],"type":"reference","expression":"'Patient/pat-a'"}"#;
    assert_eq!(
        status(
            &access,
            &service,
            &cruds,
            "POST",
            "SearchParameter",
            parameter
        )
        .0,
        403
    );
    // Even one stored by a system does not change what a patient's token reaches.
    assert_eq!(
        status(
            &access,
            &service,
            &system,
            "POST",
            "SearchParameter",
            parameter
        )
        .0,
        201
    );
    assert_eq!(
        status(
            &access,
            &service,
            &cruds,
            "GET",
            "Observation/obs-b-lab",
            ""
        )
        .0,
        404
    );

    // Conditional references in a transaction would search the whole store.
    let bundle = r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat-a"},"derivedFrom":[{"reference":"Observation?subject.name=Bravo&category=laboratory"}]},"request":{"method":"POST","url":"Observation"}}]}"#;
    let (code, body) = status(&access, &service, &cruds, "POST", "", bundle);
    assert_eq!(code, 403, "{body}");
    assert!(!body.contains("obs-b-lab"));

    // A patch of B's resource can not read it (copy into a typed element, test).
    for patch in [
        r#"[{"op":"copy","from":"/name/0/family","path":"/birthDate"}]"#,
        r#"[{"op":"test","path":"/id","value":"pat-b"}]"#,
    ] {
        let (code, body) = status(&access, &service, &cruds, "PATCH", "Patient/pat-b", patch);
        assert_eq!(code, 404, "{body}");
        assert!(!body.contains("Bravo"), "{body}");
    }
    // Writes tell nothing of what exists out of reach, not even its version.
    let obs = |id: &str| {
        format!(
            r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"text":"x"}},"subject":{{"reference":"Patient/pat-a"}}}}"#
        )
    };
    for (b_id, absent) in [("obs-b-lab", "obs-z-lab"), ("obs-b-gone", "obs-z-gone")] {
        for (method, body) in [
            ("DELETE", String::new()),
            (
                "PATCH",
                String::from(r#"[{"op":"replace","path":"/status","value":"amended"}]"#),
            ),
        ] {
            let theirs = call(
                &access,
                &service,
                &cruds,
                &with_body(method, &format!("Observation/{b_id}"), &body),
                &[("if-match", "W/\"1\"")],
            );
            let none = call(
                &access,
                &service,
                &cruds,
                &with_body(method, &format!("Observation/{absent}"), &body),
                &[("if-match", "W/\"1\"")],
            );
            assert_eq!(
                (theirs.status, none.status),
                (404, 404),
                "{method} {b_id}: {} / {}",
                theirs.body,
                none.body
            );
        }
        let put = call(
            &access,
            &service,
            &cruds,
            &with_body("PUT", &format!("Observation/{b_id}"), &obs(b_id)),
            &[("if-match", "W/\"1\"")],
        );
        assert_eq!(put.status, 404, "PUT {b_id}: {}", put.body);
    }

    // Types outside the compartment that hold patient data are out of reach.
    let history = r#"{"resourceType":"FamilyMemberHistory","id":"fmh-b","status":"completed","patient":{"reference":"Patient/pat-b"},"relationship":{"text":"mother"},"note":[{"text":"Bravo secret"}]}"#;
    assert_eq!(
        status(
            &access,
            &service,
            &system,
            "PUT",
            "FamilyMemberHistory/fmh-b",
            history
        )
        .0,
        201
    );
    let task = r#"{"resourceType":"Task","id":"t-b","status":"requested","intent":"order","for":{"reference":"Patient/pat-b"},"owner":{"reference":"Practitioner/gp-1"}}"#;
    assert_eq!(
        status(&access, &service, &system, "PUT", "Task/t-b", task).0,
        201
    );
    let gp = Claims {
        scopes: Scopes::parse("user/*.cruds"),
        fhir_user: Some("Practitioner/gp-1".into()),
        roles: vec!["gp".into()],
        ..Claims::default()
    };
    let with_roles = Access::with_roles(roles());
    let (_, body) = status(
        &with_roles,
        &service,
        &gp,
        "GET",
        "FamilyMemberHistory?patient=Patient/pat-b",
        "",
    );
    assert!(!body.contains("Bravo secret"), "{body}");
    let reader = patient_claims("patient/*.rs");
    let (_, body) = status(
        &access,
        &service,
        &reader,
        "GET",
        "Task?patient=Patient/pat-b",
        "",
    );
    assert!(!body.contains("t-b"), "{body}");
    // Shared types stay readable: a practitioner's name.
    assert_eq!(
        status(&access, &service, &reader, "GET", "Practitioner/gp-1", "").0,
        200
    );

    // A chain inside _has is judged like any chain, even when the _has type is reached freely.
    let task_reader = patient_claims("patient/*.rs system/Task.rs");
    for name in ["Bravo", "Zulu"] {
        let (code, _) = status(
            &access,
            &service,
            &task_reader,
            "GET",
            &format!("Practitioner?_has:Task:owner:patient.name={name}&_summary=count"),
            "",
        );
        assert_eq!(code, 403);
    }

    // AuditEvents are made by the service only.
    let forged = r#"{"resourceType":"AuditEvent","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110110"},"recorded":"2020-01-01T00:00:00Z","agent":[{"who":{"reference":"Practitioner/gp-1"},"requestor":true}],"source":{"observer":{"display":"Hearth"}},"entity":[{"what":{"reference":"Patient/pat-a"}}]}"#;
    assert_eq!(
        status(&access, &service, &cruds, "POST", "AuditEvent", forged).0,
        403
    );
    assert_eq!(
        status(&access, &service, &system, "POST", "AuditEvent", forged).0,
        403
    );

    // $everything counts nothing it does not show.
    let lab = patient_claims("patient/Observation.rs?category=laboratory patient/Patient.r");
    assert_eq!(
        status(
            &access,
            &service,
            &lab,
            "GET",
            "Patient/pat-a/$everything?_summary=count",
            ""
        )
        .0,
        403
    );
    let (_, body) = status(
        &access,
        &service,
        &lab,
        "GET",
        "Patient/pat-a/$everything",
        "",
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        json.get("total").is_none()
            || json["total"] == json["entry"].as_array().map_or(0, Vec::len),
        "{body}"
    );
    assert!(
        !body.contains("Condition") && !body.contains("obs-a-vital"),
        "{body}"
    );

    // Lenient handling keeps granular criteria.
    let granular = patient_claims("patient/*.rs?category=laboratory");
    let response = call(
        &access,
        &service,
        &granular,
        &get("Encounter"),
        &[("prefer", "handling=lenient")],
    );
    assert!(!response.body.contains("enc-a"), "{}", response.body);

    // A clinician's look at two patients is not in either patient's trail.
    let clinician = Claims {
        scopes: Scopes::parse("system/*.*"),
        fhir_user: Some("Practitioner/gp-1".into()),
        ..Claims::default()
    };
    assert_eq!(
        status(
            &access,
            &service,
            &clinician,
            "GET",
            "Patient?_id=pat-a,pat-b",
            ""
        )
        .0,
        200
    );
    let batch = r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/pat-a"}},{"request":{"method":"GET","url":"Observation/obs-b-lab"}}]}"#;
    assert_eq!(
        status(&access, &service, &clinician, "POST", "", batch).0,
        200
    );
    let (code, body) = status(
        &access,
        &service,
        &reader,
        "GET",
        "AuditEvent?_count=100",
        "",
    );
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("pat-b"), "{body}");
}

/// Attacks found in the second review, each refused.
#[test]
fn second_review_attacks_are_refused() {
    let service = service();
    let access = Access::new();
    let system = Claims {
        scopes: Scopes::parse("system/*.*"),
        ..Claims::default()
    };
    let secret = r#"{"resourceType":"Observation","id":"obs-b-hiv","status":"final","code":{"text":"hiv"},"subject":{"reference":"Patient/pat-b"},"performer":[{"reference":"Practitioner/gp-1"}]}"#;
    assert_eq!(
        status(
            &access,
            &service,
            &system,
            "PUT",
            "Observation/obs-b-hiv",
            secret
        )
        .0,
        201
    );

    // Searches inside a transaction (a conditional reference on a shared type with _has, an
    // ifNoneExist with _has) answer alike whatever B's record holds: they are refused.
    let cruds = patient_claims("patient/*.cruds");
    let reference = |query: &str| {
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{{"resourceType":"Observation","status":"final","code":{{"text":"x"}},"subject":{{"reference":"Patient/pat-a"}},"performer":[{{"reference":"Practitioner?{query}"}}]}},"request":{{"method":"POST","url":"Observation"}}}}]}}"#
        );
        status(&access, &service, &cruds, "POST", "", &bundle).0
    };
    for query in [
        "_has:Observation:performer:code:text=hiv",
        "_has:Observation:performer:code:text=flu",
        "_has:Observation:performer:subject:Patient.name=Bravo",
    ] {
        assert_eq!(reference(query), 403, "{query}");
    }
    // A plain conditional reference to a shared type is still allowed.
    assert_eq!(reference("name=Gray"), 200);
    let practitioners = patient_claims("patient/*.cruds system/Practitioner.cruds");
    for condition in [
        "_has:Observation:performer:code:text=hiv",
        "_has:Observation:performer:code:text=flu",
    ] {
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"transaction","entry":[{{"resource":{{"resourceType":"Practitioner","gender":"bogus"}},"request":{{"method":"POST","url":"Practitioner","ifNoneExist":"{condition}"}}}}]}}"#
        );
        assert_eq!(
            status(&access, &service, &practitioners, "POST", "", &bundle).0,
            403,
            "{condition}"
        );
    }

    // $everything counts nothing a role held to another compartment can not see.
    let with_roles = Access::with_roles(roles());
    let gp = Claims {
        scopes: Scopes::parse("user/*.cruds"),
        fhir_user: Some("Practitioner/gp-1".into()),
        roles: vec!["gp".into()],
        ..Claims::default()
    };
    assert_eq!(
        status(&with_roles, &service, &gp, "GET", "Condition/cond-a", "").0,
        404
    );
    assert_eq!(
        status(
            &with_roles,
            &service,
            &gp,
            "GET",
            "Patient/pat-a/$everything?_type=Condition&_summary=count",
            ""
        )
        .0,
        403
    );
    let (_, body) = status(
        &with_roles,
        &service,
        &gp,
        "GET",
        "Patient/pat-a/$everything?_count=1",
        "",
    );
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(page.get("total").is_none(), "{body}");
    assert!(!body.contains("AuditEvent"), "{body}");

    // A PUT of B's resource id answers as for an absent id when the body is out of reach.
    let b_subject = |id: &str| {
        format!(
            r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"text":"x"}},"subject":{{"reference":"Patient/pat-b"}}}}"#
        )
    };
    let theirs = status(
        &access,
        &service,
        &cruds,
        "PUT",
        "Observation/obs-b-lab",
        &b_subject("obs-b-lab"),
    )
    .0;
    let none = status(
        &access,
        &service,
        &cruds,
        "PUT",
        "Observation/obs-z-lab",
        &b_subject("obs-z-lab"),
    )
    .0;
    assert_eq!((theirs, none), (403, 403));

    // A batch writing two patients is in neither patient's trail, even answered minimally.
    let clinician = Claims {
        scopes: Scopes::parse("system/*.*"),
        fhir_user: Some("Practitioner/gp-1".into()),
        ..Claims::default()
    };
    for kind in ["batch", "transaction"] {
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"{kind}","entry":[{{"resource":{{"resourceType":"Patient","id":"pat-a","name":[{{"family":"Alpha"}}]}},"request":{{"method":"PUT","url":"Patient/pat-a"}}}},{{"resource":{{"resourceType":"Patient","id":"pat-c-{kind}","name":[{{"family":"Charlie"}}]}},"request":{{"method":"PUT","url":"Patient/pat-c-{kind}"}}}}]}}"#
        );
        let answer = call(
            &access,
            &service,
            &clinician,
            &with_body("POST", "", &bundle),
            &[("prefer", "return=minimal")],
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let reader = patient_claims("patient/*.rs");
    let (code, body) = status(
        &access,
        &service,
        &reader,
        "GET",
        "AuditEvent?_count=100",
        "",
    );
    assert_eq!(code, 200);
    assert!(!body.contains("pat-c"), "{body}");
}

/// Found on reading the change again: a role that allows some types only, under a `user/*`
/// scope, reaches those types only; a version of a resource that was out of reach before it
/// came into reach stays out of its history.
#[test]
fn partial_roles_and_old_versions_stay_out_of_reach() {
    let service = service();
    let partial = Access::with_roles(
        Roles::from_json(r#"{"roles":{"front":{"allow":["Patient.cruds","Observation.cruds"]}}}"#)
            .expect("roles"),
    );
    let front = Claims {
        scopes: Scopes::parse("user/*.cruds"),
        roles: vec!["front".into()],
        ..Claims::default()
    };
    assert_eq!(
        status(&partial, &service, &front, "GET", "Patient/pat-b", "").0,
        200
    );
    assert_eq!(
        status(&partial, &service, &front, "GET", "Condition/cond-b", "").0,
        403
    );
    assert_eq!(
        status(&partial, &service, &front, "GET", "Condition", "").0,
        403
    );

    // B's observation is moved to A by someone allowed to; A's token sees its history from then.
    let access = Access::new();
    let system = Claims {
        scopes: Scopes::parse("system/*.*"),
        ..Claims::default()
    };
    let moved = r#"{"resourceType":"Observation","id":"obs-b-vital","status":"final","code":{"text":"moved"},"subject":{"reference":"Patient/pat-a"}}"#;
    assert_eq!(
        status(
            &access,
            &service,
            &system,
            "PUT",
            "Observation/obs-b-vital",
            moved
        )
        .0,
        200
    );
    let cruds = patient_claims("patient/*.cruds");
    let (code, body) = status(
        &access,
        &service,
        &cruds,
        "GET",
        "Observation/obs-b-vital/_history",
        "",
    );
    assert_eq!(code, 200, "{body}");
    let history: serde_json::Value = serde_json::from_str(&body).unwrap();
    let versions: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2"], "{body}");
    assert!(!body.contains("pat-b"), "{body}");
}

/// An entry of a batch Bundle that may read AuditEvents without naming them (the history of
/// every type) sees the records of every interaction before it, as the same request sent
/// alone does. Before, only a Bundle's text was looked at for AuditEvents and wildcards.
#[test]
fn bundle_entries_that_may_read_audit_events_see_every_record_before_them() {
    let service = service();
    let access = Access::new();
    let clinician = Claims {
        scopes: Scopes::parse("user/*.read"),
        ..Claims::default()
    };
    let audits = |body: &str| body.matches(r#""resourceType":"AuditEvent""#).count();
    for url in ["_history?_count=1000", "_history?_count=500"] {
        assert_eq!(
            status(&access, &service, &clinician, "GET", "Patient/pat-a", "").0,
            200
        );
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"batch","entry":[{{"request":{{"method":"GET","url":"{url}"}}}}]}}"#
        );
        let response = block_on(service.handle(&request("POST", "", &[], &bundle)));
        assert_eq!(response.status, 200, "{url}: {}", response.body);
        let in_batch = audits(&response.body);
        let (path, query) = url.split_once('?').unwrap();
        let query: Vec<(&str, &str)> = query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap())
            .collect();
        let alone = block_on(service.handle(&request("GET", path, &query, "")));
        assert!(in_batch > 0, "{url}: {}", response.body);
        assert_eq!(in_batch, audits(&alone.body), "{url}");
    }
}
