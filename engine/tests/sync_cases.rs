//! Sync cases, each a scenario a review of the sync engine found (a push that repeated
//! forever after a 412, a garbled or refused reply, a checkpoint past data not applied, a
//! paging loop, a lost create meeting a remote deletion, a push without a known base version,
//! a server without history), run against the engine's own service as the remote with the
//! network scripted request by request.

use std::cell::Cell;
use std::rc::Rc;

use hearth_engine::store::block_on;
use hearth_engine::sync::{
    HttpReply, HttpRequest, Options, Resolution, Scope, Step, Summary, Sync,
};
use serde_json::{json, Value};

mod sync_common;
use sync_common::*;

/// Answers a request itself (or acts on the remote first), or leaves it to the remote.
type Hook<'a> = dyn FnMut(&Local, &HttpRequest) -> Option<Result<HttpReply, String>> + 'a;

fn serve(remote: &Local, request: &HttpRequest) -> HttpReply {
    let path = request
        .url
        .strip_prefix(REMOTE)
        .expect("on remote")
        .trim_start_matches('/');
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let body = String::from_utf8(request.body.clone()).unwrap();
    let (status, value, headers) = call(remote, &request.method, path, &headers, &body);
    HttpReply {
        status,
        headers,
        body: if value.is_null() {
            Vec::new()
        } else {
            value.to_string().into_bytes()
        },
    }
}

fn new_sync(scope: Scope) -> Sync {
    let mut o = Options::new(scope);
    o.page_size = 2;
    o.push_size = 3;
    Sync::new(REMOTE, o)
}

/// Runs a sync; `hook` may answer a request itself (or act on the remote first). Steps capped.
fn run(
    device: &Local,
    remote: &Local,
    scope: Scope,
    max: usize,
    hook: &mut Hook,
) -> (Option<Summary>, usize, Vec<String>) {
    drive(new_sync(scope), device, remote, max, hook)
}

/// Runs `sync` to its end, as [`run`].
fn drive(
    mut sync: Sync,
    device: &Local,
    remote: &Local,
    max: usize,
    hook: &mut Hook,
) -> (Option<Summary>, usize, Vec<String>) {
    let mut log = Vec::new();
    for i in 0..max {
        match block_on(sync.next(device)) {
            Step::Send(req) => {
                log.push(format!("{} {}", req.method, req.url));
                let reply = match hook(remote, &req) {
                    Some(r) => r,
                    None => Ok(serve(remote, &req)),
                };
                block_on(sync.receive(device, reply));
            }
            Step::Wait { .. } => {}
            Step::Done => return (Some(sync.summary().clone()), i, log),
        }
    }
    (None, max, log)
}

fn put(service: &Local, id: &str, token: &str) {
    let (s, v, _) = call(
        service,
        "PUT",
        &format!("Patient/{id}"),
        &[],
        &patient(Some(id), token).to_string(),
    );
    assert!(s == 200 || s == 201, "{v}");
}

fn set_field(service: &Local, id: &str, name: &str, value: &str) {
    let mut r = read(service, id).unwrap();
    *field(&mut r, name) = json!(value);
    let (s, v, _) = call(
        service,
        "PUT",
        &format!("Patient/{id}"),
        &[],
        &r.to_string(),
    );
    assert!(s == 200, "{v}");
}

fn types() -> Scope {
    Scope::Types(vec!["Patient".into()])
}

#[test]
fn a_push_meeting_a_newer_remote_version_pulls_merges_and_ends() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p", "1");
    let (s, _, _) = run(&dev, &remote, types(), 1000, &mut |_, _| None);
    assert!(s.unwrap().complete);
    set_field(&dev, "p", "family", "LOCAL");
    let mut edited = false;
    let (s, n, log) = run(&dev, &remote, types(), 500, &mut |remote, req| {
        if req.method == "POST" && !edited {
            edited = true;
            set_field(remote, "p", "city", "REMOTE");
        }
        None
    });
    eprintln!(
        "r1: done={:?} steps={n} last={:?}",
        s.as_ref().map(|s| s.complete),
        &log[log.len().saturating_sub(4)..]
    );
    assert!(s.is_some(), "sync never ended after {n} steps");
}

#[test]
fn a_garbled_push_reply_is_retried_after_a_pull_and_the_sync_ends() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p", "1");
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    set_field(&dev, "p", "family", "LOCAL");
    let (s, n, log) = run(&dev, &remote, types(), 500, &mut |remote, req| {
        if req.method == "POST" {
            serve(remote, req);
            return Some(Ok(HttpReply {
                status: 200,
                headers: vec![],
                body: b"{}".to_vec(),
            }));
        }
        None
    });
    let posts = log.iter().filter(|l| l.starts_with("POST")).count();
    eprintln!(
        "r2: done={:?} steps={n} posts={posts}",
        s.as_ref().map(|s| s.complete)
    );
    assert!(
        s.is_some(),
        "sync never ended after {n} steps ({posts} POSTs)"
    );
}

#[test]
fn a_push_refused_whole_keeps_every_edit_for_the_next_sync() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p", "1");
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    set_field(&dev, "p", "family", "LOCAL");
    let (s, _, _) = run(&dev, &remote, types(), 500, &mut |_, req| {
        if req.method == "POST" {
            return Some(Ok(HttpReply {
                status: 401,
                headers: vec![],
                body: vec![],
            }));
        }
        None
    });
    assert!(
        !s.unwrap().complete,
        "a refused push is not a complete sync"
    );
    // token refreshed: sync again, normal network
    let (s, _, _) = run(&dev, &remote, types(), 500, &mut |_, _| None);
    assert!(s.unwrap().complete);
    let r = read(&remote, "p").unwrap();
    assert_eq!(
        field_value(&r, "family").as_deref(),
        Some("LOCAL"),
        "local edit never pushed after a transient 401"
    );
}

#[test]
fn a_write_between_two_queries_of_a_pull_is_pulled_later() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    let scope = || Scope::Searches(vec!["Patient".into()]);
    let (s, _, _) = run(&dev, &remote, scope(), 1000, &mut |_, _| None);
    assert!(s.unwrap().complete);
    set_field(&remote, "p1", "city", "x");
    let mut done = false;
    let (s, _, log) = run(&dev, &remote, scope(), 1000, &mut |remote, req| {
        if req.url.contains("/Patient/_history") && !done {
            done = true;
            put(remote, "p2", "2"); // new match, after the search ran
            set_field(remote, "p1", "city", "later"); // a later write to a known one
        }
        None
    });
    eprintln!("r4 {:?} {log:?}", s);
    for _ in 0..3 {
        run(&dev, &remote, scope(), 1000, &mut |_, _| None);
    }
    assert!(read(&dev, "p2").is_some(), "p2 never pulled");
}

#[test]
fn next_links_going_round_in_circles_end_the_pull() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    let (s, n, _) = run(&dev, &remote, types(), 2000, &mut |remote, req| {
        if req.method == "GET" && req.url.contains("/Patient?") {
            let mut r = serve(remote, req);
            let mut v: Value = serde_json::from_slice(&r.body).unwrap();
            v["link"] = json!([{"relation":"next","url": req.url.clone()}]);
            r.body = v.to_string().into_bytes();
            return Some(Ok(r));
        }
        None
    });
    assert!(s.is_some(), "pull never ended after {n} steps");
}

#[test]
fn a_change_waiting_for_retry_is_pushed_whatever_else_waits() {
    // push_size 3; conflicts resolved with "remote" leave q entries forever.
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    for id in ["a1", "a2", "a3", "z9"] {
        put(&remote, id, "0");
    }
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    for id in ["a1", "a2", "a3"] {
        set_field(&dev, id, "family", "L");
    }
    // remote edits the same element after the pull, before the push: 412 -> q; abort sync after the first POST
    let mut n = 0;
    let mut sync = new_sync(types());
    loop {
        match block_on(sync.next(&dev)) {
            Step::Send(req) => {
                if req.method == "POST" {
                    if n == 0 {
                        for id in ["a1", "a2", "a3"] {
                            set_field(&remote, id, "family", "R");
                        }
                    }
                    n += 1;
                }
                let reply = serve(&remote, &req);
                block_on(sync.receive(&dev, Ok(reply)));
                if n >= 2 {
                    break;
                }
            }
            Step::Wait { .. } => {}
            Step::Done => break,
        }
    }
    // next sync: pull makes conflicts; resolve with remote.
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    let conflicts = block_on(Sync::conflicts(&dev, REMOTE)).unwrap();
    eprintln!("r6 conflicts {}", conflicts.len());
    for c in conflicts {
        block_on(Sync::resolve(
            &dev,
            REMOTE,
            &c.type_name,
            &c.id,
            &Resolution::Remote,
        ))
        .unwrap()
        .unwrap();
    }
    // now z9: local edit; its push gets a per-entry 503 in a batch (answer crafted), leaving it in q only
    set_field(&dev, "z9", "family", "LOCALZ");
    let (s, _, _) = run(&dev, &remote, types(), 1000, &mut |_, req| {
        if req.method == "POST" {
            eprintln!(
                "r6 crafted POST body {}",
                String::from_utf8_lossy(&req.body)
            );
            return Some(Ok(HttpReply { status: 200, headers: vec![], body: br#"{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"503"}}]}"#.to_vec() }));
        }
        None
    });
    eprintln!("r6 crafted: {:?}", s);
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut |_, _| None);
    eprintln!("r6 after: {:?} {log:?}", s);
    let r = read(&remote, "z9").unwrap();
    assert_eq!(
        field_value(&r, "family").as_deref(),
        Some("LOCALZ"),
        "z9 never pushed"
    );
}

#[test]
fn a_deletion_after_a_search_found_the_resource_is_applied() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    put(&remote, "p3", "3");
    let scope = || Scope::Searches(vec!["Patient".into()]);
    run(&dev, &remote, scope(), 1000, &mut |_, _| None);
    set_field(&remote, "p1", "city", "x");
    let mut done = false;
    run(&dev, &remote, scope(), 1000, &mut |remote, req| {
        if req.url.contains("/Patient/_history") && !done {
            done = true;
            let (s, _, _) = call(remote, "DELETE", "Patient/p1", &[], "");
            assert!(s == 204 || s == 200);
            set_field(remote, "p3", "city", "later");
        }
        None
    });
    for _ in 0..3 {
        run(&dev, &remote, scope(), 1000, &mut |_, _| None);
    }
    assert!(read(&remote, "p1").is_none());
    assert!(
        read(&dev, "p1").is_none(),
        "remote deletion of p1 never applied locally"
    );
}

#[test]
fn a_lost_create_reply_then_a_remote_deletion_is_a_conflict() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    put(&dev, "n1", "9");
    let mut lost = false;
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut |remote, req| {
        if req.method == "POST" && !lost {
            lost = true;
            serve(remote, req);
            let (s, _, _) = call(remote, "DELETE", "Patient/n1", &[], "");
            assert!(s == 204 || s == 200);
            return Some(Err("reset".into()));
        }
        None
    });
    eprintln!("r8 {:?} {:?}", s, log);
    assert!(
        read(&remote, "n1").is_none(),
        "the remote deletion of n1 was undone without a conflict"
    );
    let conflicts = block_on(Sync::conflicts(&dev, REMOTE)).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (conflicts[0].id.as_str(), conflicts[0].remote.is_none()),
        ("n1", true)
    );
}

#[test]
fn a_push_reply_without_versions_never_leads_to_an_update_without_if_match() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    set_field(&dev, "p1", "family", "L1");
    let mut first = true;
    let devref = &dev;
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut |remote, req| {
        if req.method == "POST" {
            eprintln!("r9 POST {}", String::from_utf8_lossy(&req.body));
            let mut r = serve(remote, req);
            if first {
                first = false;
                let mut v: Value = serde_json::from_slice(&r.body).unwrap();
                for e in v["entry"].as_array_mut().unwrap() {
                    e["response"].as_object_mut().unwrap().remove("etag");
                    e["response"].as_object_mut().unwrap().remove("location");
                    e.as_object_mut().unwrap().remove("resource");
                }
                r.body = v.to_string().into_bytes();
                // while the reply travels: another client edits on the remote, the user edits here
                set_field(remote, "p1", "city", "REMOTE-CITY");
                set_field(devref, "p1", "phone", "L2");
            }
            return Some(Ok(r));
        }
        None
    });
    eprintln!("r9 {:?} {:?}", s, log);
    let r = read(&remote, "p1").unwrap();
    eprintln!("r9 remote {r}");
    assert_eq!(
        field_value(&r, "city").as_deref(),
        Some("REMOTE-CITY"),
        "remote edit overwritten"
    );
}

#[test]
fn a_redirected_push_ends_the_sync() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p", "1");
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    set_field(&dev, "p", "family", "LOCAL");
    let (s, n, log) = run(&dev, &remote, types(), 300, &mut |_, req| {
        if req.method == "POST" {
            return Some(Ok(HttpReply {
                status: 302,
                headers: vec![],
                body: vec![],
            }));
        }
        None
    });
    let posts = log.iter().filter(|l| l.starts_with("POST")).count();
    assert!(
        s.is_some(),
        "sync never ended after {n} steps ({posts} POSTs)"
    );
}

#[test]
fn without_history_changes_are_pulled_by_last_updated() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    put(&remote, "p2", "2");
    // A server that offers no history, and dates its replies.
    let mut hook = |remote: &Local, req: &HttpRequest| -> Option<Result<HttpReply, String>> {
        let mut reply = serve(remote, req);
        if req.url.ends_with("/metadata") {
            let text = String::from_utf8(reply.body.clone())
                .unwrap()
                .replace("history-system", "nope")
                .replace("history-type", "nope");
            reply.body = text.into_bytes();
        }
        reply
            .headers
            .push(("Date".into(), String::from("Thu, 01 Jan 2026 00:00:00 GMT")));
        Some(Ok(reply))
    };
    let (first, _, _) = run(&dev, &remote, types(), 1000, &mut hook);
    assert_eq!(first.unwrap().pulled, 2);
    set_field(&remote, "p2", "city", "later");
    let (second, _, log) = run(&dev, &remote, types(), 1000, &mut hook);
    assert!(
        log.iter().any(|line| line.contains("_lastUpdated=ge")),
        "{log:?}"
    );
    assert!(!log.iter().any(|line| line.contains("_history")), "{log:?}");
    assert_eq!(second.unwrap().pulled, 1);
    assert_eq!(
        field_value(&read(&dev, "p2").unwrap(), "city").as_deref(),
        Some("later")
    );
}

fn obs(id: &str, v: &str) -> String {
    json!({"resourceType":"Observation","id":id,"status":"final","code":{"text":v}}).to_string()
}

#[test]
fn a_change_outside_the_scope_waits_for_a_sync_whose_scope_has_it() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    let (s, _, _) = run(&dev, &remote, types(), 1000, &mut |_, _| None);
    assert!(s.unwrap().complete);
    let (st, v, _) = call(&dev, "PUT", "Observation/o1", &[], &obs("o1", "x"));
    assert!(st == 200 || st == 201, "{v}");
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut |_, _| None);
    assert!(s.unwrap().complete, "{log:?}");
    assert!(!log.iter().any(|l| l.starts_with("POST")), "{log:?}");
    let (s, _, log) = run(
        &dev,
        &remote,
        Scope::Types(vec!["Patient".into(), "Observation".into()]),
        1000,
        &mut |_, _| None,
    );
    assert!(s.unwrap().complete, "{log:?}");
    let (st, _, _) = call(&remote, "GET", "Observation/o1", &[], "");
    assert_eq!(st, 200, "Observation/o1 never pushed");
}

#[test]
fn a_conflict_status_that_stays_after_a_read_back_is_a_refusal() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    let (st, _, _) = call(&dev, "DELETE", "Patient/p1", &[], "");
    assert!(st == 200 || st == 204);
    for round in 0..3 {
        let (s, _, log) = run(&dev, &remote, types(), 1000, &mut |_, req| {
            if req.method == "POST" {
                return Some(Ok(HttpReply { status: 200, headers: vec![], body: br#"{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"409 Conflict","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"conflict","diagnostics":"referenced by Encounter/e1"}]}}}]}"#.to_vec() }));
            }
            None
        });
        let s = s.unwrap();
        let posts = log.iter().filter(|l| l.starts_with("POST")).count();
        if round == 0 {
            // Stale once: read back, pushed again, the same answer: refused, with its reason.
            assert!(posts <= 4, "{log:?}");
            assert!(
                s.issues
                    .iter()
                    .any(|i| i.resource.as_deref() == Some("Patient/p1")
                        && i.message.contains("referenced by Encounter/e1")),
                "{:?}",
                s.issues
            );
        } else {
            // Held until edited again: not sent at every sync.
            assert_eq!(posts, 0, "{log:?}");
            assert!(s.complete);
        }
    }
}

#[test]
fn a_create_refused_with_404_is_a_refusal_not_a_conflict() {
    // A server without update-create answers 404 to PUT of an unknown id.
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    run(&dev, &remote, types(), 1000, &mut |_, _| None);
    put(&dev, "n1", "9");
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut |_, req| {
        if req.method == "POST" {
            return Some(Ok(HttpReply { status: 200, headers: vec![], body: br#"{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"404 Not Found"}}]}"#.to_vec() }));
        }
        None
    });
    let s = s.unwrap();
    assert!(
        block_on(Sync::conflicts(&dev, REMOTE)).unwrap().is_empty(),
        "{log:?}"
    );
    assert!(
        s.issues
            .iter()
            .any(|i| i.resource.as_deref() == Some("Patient/n1")),
        "{:?}",
        s.issues
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("POST")).count(),
        1,
        "{log:?}"
    );
    // Held: the next sync does not send it again.
    let (_, _, log) = run(&dev, &remote, types(), 1000, &mut |_, _| None);
    assert_eq!(
        log.iter().filter(|l| l.starts_with("POST")).count(),
        0,
        "{log:?}"
    );
}

#[test]
fn a_write_stamped_before_the_reply_date_is_still_pulled() {
    // The Date of a reply is ahead of the instant the server stamps a write that commits
    // just after the reply (a transaction that began before, or a proxy's clock): missed.
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    let c2 = clock.clone();
    let date = move || {
        let ms = c2.0.get() + 2000; // 2 s ahead
        let s = ms / 1000;
        format!(
            "Thu, 01 Jan 2026 {:02}:{:02}:{:02} GMT",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    };
    let mut hook = |remote: &Local, req: &HttpRequest| -> Option<Result<HttpReply, String>> {
        let mut reply = serve(remote, req);
        reply.headers.push(("Date".into(), date()));
        Some(Ok(reply))
    };
    run(&dev, &remote, types(), 1000, &mut hook);
    let mut first = true;
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut |remote, req| {
        let r = hook(remote, req);
        if req.method == "GET" && first && !req.url.ends_with("metadata") {
            first = false;
            set_field(remote, "p1", "city", "LATE");
        }
        r
    });
    assert!(s.unwrap().complete, "{log:?}");
    for _ in 0..2 {
        run(&dev, &remote, types(), 1000, &mut hook);
    }
    assert_eq!(
        field_value(&read(&dev, "p1").unwrap(), "city").as_deref(),
        Some("LATE"),
        "write missed"
    );
}

#[test]
fn a_change_waiting_for_its_remote_version_is_read_by_id() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p1", "1");
    put(&remote, "p2", "2");
    let c2 = clock.clone();
    let date = move || {
        let s = c2.0.get() / 1000;
        format!(
            "Thu, 01 Jan 2026 {:02}:{:02}:{:02} GMT",
            s / 3600,
            (s / 60) % 60,
            s % 60
        )
    };
    let strip = Cell::new(false);
    let mut hook = |remote: &Local, req: &HttpRequest| -> Option<Result<HttpReply, String>> {
        let mut reply = serve(remote, req);
        if req.url.ends_with("/metadata") {
            let text = String::from_utf8(reply.body.clone())
                .unwrap()
                .replace("history-system", "nope")
                .replace("history-type", "nope");
            reply.body = text.into_bytes();
        }
        if req.method == "POST" && strip.get() {
            let mut v: Value = serde_json::from_slice(&reply.body).unwrap();
            for e in v["entry"].as_array_mut().unwrap() {
                e["response"].as_object_mut().unwrap().remove("etag");
                e["response"].as_object_mut().unwrap().remove("location");
                e.as_object_mut().unwrap().remove("resource");
            }
            reply.body = v.to_string().into_bytes();
        }
        reply.headers.push(("Date".into(), date()));
        Some(Ok(reply))
    };
    run(&dev, &remote, types(), 1000, &mut hook);
    set_field(&dev, "p1", "family", "L1");
    strip.set(true);
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut hook);
    strip.set(false);
    assert_eq!(s.unwrap().pushed, 1, "{log:?}");
    // another client deletes p1; the user edits p1 again
    let (st, _, _) = call(&remote, "DELETE", "Patient/p1", &[], "");
    assert!(st == 200 || st == 204);
    set_field(&dev, "p1", "family", "L2");
    for _ in 0..2 {
        run(&dev, &remote, types(), 1000, &mut hook);
    }
    // Read by id, the deletion meets the edit: a conflict, not a wait without end.
    let conflicts = block_on(Sync::conflicts(&dev, REMOTE)).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (conflicts[0].id.as_str(), conflicts[0].remote.is_none()),
        ("p1", true)
    );
}

/// A remote that assigns every id itself (no update-as-create).
fn assigning_remote(clock: &SimClock) -> Local {
    let mut remote = service(clock, "r", REMOTE);
    remote.set_update_create(false);
    remote
}

fn create(service: &Local, path: &str, body: Value) -> String {
    let (s, v, _) = call(service, "POST", path, &[], &body.to_string());
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn get(service: &Local, path: &str) -> (u16, Value) {
    let (s, v, _) = call(service, "GET", path, &[], "");
    (s, v)
}

fn all_types() -> Scope {
    Scope::Types(vec![
        "Patient".into(),
        "Observation".into(),
        "Linkage".into(),
    ])
}

#[test]
fn new_resources_on_a_server_that_assigns_ids_move_to_its_ids_with_their_references() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = assigning_remote(&clock);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    // A PUT under a client's id is refused by this server.
    let (s, v, _) = call(
        &remote,
        "PUT",
        "Patient/mine",
        &[],
        &patient(Some("mine"), "1").to_string(),
    );
    assert_eq!(s, 405, "{v}");
    let (_, caps) = get(&remote, "metadata");
    assert_eq!(caps["rest"][0]["resource"][0]["updateCreate"], json!(false));

    let patient_id = create(&dev, "Patient", patient(None, "1"));
    let observation = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"text": "weight"},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "performer": [{"reference": format!("https://hearth.local/fhir/Patient/{patient_id}")}],
        "valueQuantity": {"value": 70, "unit": "kg"}
    });
    let observation_id = create(&dev, "Observation", observation);
    let (s, _, log) = run(&dev, &remote, all_types(), 200, &mut |_, _| None);
    let s = s.expect("the sync ends");
    assert!(s.complete && s.issues.is_empty(), "{s:?} {log:?}");

    // On the server: both, under its ids, the Observation pointing at the server's Patient.
    let (_, patients) = get(&remote, "Patient");
    let (_, observations) = get(&remote, "Observation");
    assert_eq!(patients["total"], 1);
    assert_eq!(observations["total"], 1);
    let server_patient = patients["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let server_observation = &observations["entry"][0]["resource"];
    assert_ne!(server_patient, patient_id);
    assert_eq!(
        server_observation["subject"]["reference"],
        json!(format!("Patient/{server_patient}"))
    );
    assert_eq!(
        server_observation["performer"][0]["reference"],
        json!(format!("Patient/{server_patient}"))
    );
    // The mark that made the POSTs safe to repeat.
    assert_eq!(
        patients["entry"][0]["resource"]["identifier"][0]["value"],
        json!(patient_id)
    );
    // Here: the same resources under the same ids; the local ids are gone.
    let server_observation_id = server_observation["id"].as_str().unwrap();
    assert_eq!(get(&dev, &format!("Patient/{patient_id}")).0, 410);
    assert_eq!(get(&dev, &format!("Observation/{observation_id}")).0, 410);
    let (s, here) = get(&dev, &format!("Observation/{server_observation_id}"));
    assert_eq!(s, 200);
    assert_eq!(
        here["subject"]["reference"],
        json!(format!("Patient/{server_patient}"))
    );
    let (_, live) = get(&dev, "Patient");
    assert_eq!(live["total"], 1);
    // Nothing is left to push, and another sync changes nothing.
    let (s, n, _) = run(&dev, &remote, all_types(), 200, &mut |_, _| None);
    let s = s.unwrap();
    assert_eq!((s.pushed, s.pulled, s.complete), (0, 0, true), "{n}");
}

#[test]
fn a_post_whose_reply_was_lost_is_not_made_twice() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = assigning_remote(&clock);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    let id = create(&dev, "Patient", patient(None, "1"));
    // The server stores the first push; its reply never arrives.
    let mut lost = 0;
    let (s, _, log) = run(&dev, &remote, types(), 200, &mut |remote, req| {
        if req.method == "POST" && lost == 0 {
            lost += 1;
            serve(remote, req);
            return Some(Err("connection reset after the request was sent".into()));
        }
        None
    });
    assert!(s.unwrap().complete, "{log:?}");
    let (_, patients) = get(&remote, "Patient");
    assert_eq!(patients["total"], 1, "{patients}");
    let server_id = patients["entry"][0]["resource"]["id"].as_str().unwrap();
    assert_eq!(get(&dev, &format!("Patient/{server_id}")).0, 200);
    assert_eq!(get(&dev, &format!("Patient/{id}")).0, 410);
    // Edited here after the lost reply and by another client there: both edits are kept.
    set_field(&dev, server_id, "family", "LOCAL");
    let mut theirs = read(&remote, server_id).unwrap();
    *field(&mut theirs, "city") = json!("THEIRS");
    let (s, v, _) = call(
        &remote,
        "PUT",
        &format!("Patient/{server_id}"),
        &[],
        &theirs.to_string(),
    );
    assert_eq!(s, 200, "{v}");
    let (s, _, _) = run(&dev, &remote, types(), 200, &mut |_, _| None);
    assert!(s.unwrap().complete);
    let there = read(&remote, server_id).unwrap();
    assert_eq!(field_value(&there, "family").as_deref(), Some("LOCAL"));
    assert_eq!(field_value(&there, "city").as_deref(), Some("THEIRS"));
}

#[test]
fn a_new_resource_deleted_here_after_an_unanswered_post_is_deleted_there() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = assigning_remote(&clock);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    // A type without an identifier is marked by a tag.
    let id = create(
        &dev,
        "Linkage",
        json!({"resourceType": "Linkage", "item": [{"type": "source", "resource": {"display": "a"}}, {"type": "alternate", "resource": {"display": "b"}}]}),
    );
    let mut posted = false;
    let (s, _, _) = run(&dev, &remote, all_types(), 200, &mut |remote, req| {
        if req.method == "POST" {
            posted = true;
            serve(remote, req);
            return Some(Err("connection reset after the request was sent".into()));
        }
        // After the POST nothing gets through: the sync ends with it unanswered.
        posted.then(|| Err("connection refused".into()))
    });
    assert!(!s.is_some_and(|s| s.complete));
    let (_, made) = get(&remote, "Linkage");
    assert_eq!(made["total"], 1);
    assert_eq!(
        made["entry"][0]["resource"]["meta"]["tag"][0]["code"],
        json!(id),
        "{made}"
    );
    let (s, _, _) = call(&dev, "DELETE", &format!("Linkage/{id}"), &[], "");
    assert!(s == 200 || s == 204);
    let (s, _, log) = run(&dev, &remote, all_types(), 200, &mut |_, _| None);
    assert!(s.unwrap().complete, "{log:?}");
    let (_, left) = get(&remote, "Linkage");
    assert_eq!(left["total"], 0, "{left} {log:?}");
}

#[test]
fn a_patient_scope_without_history_for_its_token_syncs_by_everything_since() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    put(&remote, "p", "1");
    let observation = |id: &str, value: u32| {
        json!({"resourceType": "Observation", "id": id, "status": "final", "code": {"text": "weight"},
               "subject": {"reference": "Patient/p"}, "valueQuantity": {"value": value, "unit": "kg"}})
    };
    let (s, _, _) = call(
        &remote,
        "PUT",
        "Observation/o1",
        &[],
        &observation("o1", 70).to_string(),
    );
    assert_eq!(s, 201);
    // As a server refuses the history of the whole server to a patient's token.
    let mut refused = 0;
    // Its replies are dated, as HTTP servers' are: the checkpoints come from their dates.
    let mut refuse = |remote: &Local, req: &HttpRequest| {
        if req.url.contains("/_history") {
            refused += 1;
            return Some(Ok(HttpReply { status: 403, headers: Vec::new(), body: br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"forbidden","diagnostics":"no"}]}"#.to_vec() }));
        }
        let mut reply = serve(remote, req);
        reply
            .headers
            .push(("date".into(), "Thu, 01 Jan 2026 00:00:00 GMT".into()));
        Some(Ok(reply))
    };
    let scope = || Scope::Patient("p".into());
    let (s, _, log) = run(&dev, &remote, scope(), 200, &mut refuse);
    assert!(s.unwrap().complete, "{log:?}");
    assert_eq!(get(&dev, "Observation/o1").0, 200);
    // Later changes come by `$everything?_since=`, with no history asked again.
    let (s, _, _) = call(
        &remote,
        "PUT",
        "Observation/o1",
        &[],
        &observation("o1", 71).to_string(),
    );
    assert_eq!(s, 200);
    let (s, _, log) = run(&dev, &remote, scope(), 200, &mut refuse);
    assert!(s.unwrap().complete, "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("$everything?_since=")),
        "{log:?}"
    );
    assert_eq!(refused, 1, "{log:?}");
    assert_eq!(
        get(&dev, "Observation/o1").1["valueQuantity"]["value"],
        json!(71)
    );
}

#[test]
fn a_post_answered_with_another_resource_is_refused_and_nothing_is_overwritten() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = assigning_remote(&clock);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    let existing = create(&remote, "Patient", patient(None, "1"));
    let (s, _, _) = run(&dev, &remote, types(), 200, &mut |_, _| None);
    assert!(s.unwrap().complete);
    set_field(&dev, &existing, "family", "MY-EDIT");
    let new = create(&dev, "Patient", patient(None, "2"));
    // A server that ignores the mark in If-None-Exist "matches" the patient it already has.
    let (s, _, log) = run(&dev, &remote, types(), 200, &mut |remote, req| {
        if req.method != "POST" {
            return None;
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let entries = body["entry"].as_array().unwrap();
        if !entries.iter().any(|e| e["request"]["method"] == "POST") {
            return None;
        }
        let mut reply = json!({"resourceType": "Bundle", "type": "batch-response", "entry": []});
        for entry in entries {
            let answer = if entry["request"]["method"] == "POST" {
                json!({"response": {"status": "200 OK", "location": format!("Patient/{existing}/_history/1")}})
            } else {
                let one = json!({"resourceType": "Bundle", "type": "batch", "entry": [entry]});
                let done = serve(
                    remote,
                    &HttpRequest {
                        body: one.to_string().into_bytes(),
                        ..req.clone()
                    },
                );
                serde_json::from_slice::<Value>(&done.body).unwrap()["entry"][0].clone()
            };
            reply["entry"].as_array_mut().unwrap().push(answer);
        }
        Some(Ok(HttpReply {
            status: 200,
            headers: Vec::new(),
            body: reply.to_string().into_bytes(),
        }))
    });
    let s = s.expect("the sync ends");
    assert!(
        s.issues.iter().any(|i| i.message.contains("not it")),
        "{s:?} {log:?}"
    );
    // The new patient is still here, the other one is as it was edited here.
    assert_eq!(get(&dev, &format!("Patient/{new}")).0, 200);
    let kept = read(&dev, &existing).unwrap();
    assert_eq!(field_value(&kept, "family").as_deref(), Some("MY-EDIT"));
}

/// Adds an element R4 does not have to the Patient `p1` wherever a reply holds it.
fn with_unknown_element(reply: HttpReply) -> HttpReply {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.get("resourceType") == Some(&json!("Patient"))
                    && map.get("id") == Some(&json!("p1"))
                {
                    map.insert("favouriteColour".into(), json!("green"));
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&reply.body) else {
        return reply;
    };
    walk(&mut value);
    HttpReply {
        body: value.to_string().into_bytes(),
        ..reply
    }
}

#[test]
fn a_lenient_sync_stores_what_reads_with_a_warning_and_holds_its_edits_from_push() {
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    put(&remote, "p1", "1");
    put(&remote, "p2", "2");
    let mut hook = |remote: &Local, req: &HttpRequest| {
        (req.method == "GET").then(|| Ok(with_unknown_element(serve(remote, req))))
    };

    // Strict (the default): the resource is reported and kept out; the rest is stored.
    let strict = service(&clock, "a", "https://hearth.local/fhir");
    let (s, _, _) = run(&strict, &remote, types(), 1000, &mut hook);
    let s = s.expect("the strict sync ends");
    assert!(read(&strict, "p1").is_none());
    assert!(read(&strict, "p2").is_some());
    assert!(
        s.issues
            .iter()
            .any(|issue| issue.resource.as_deref() == Some("Patient/p1")
                && issue.message.contains("favouriteColour")),
        "{:?}",
        s.issues
    );
    assert!(s.warnings.is_empty());

    // Lenient: stored without the element, with a warning naming it.
    let dev = service(&clock, "b", "https://hearth.local/fhir");
    let lenient = || {
        let mut o = Options::new(types());
        o.page_size = 2;
        o.strict = false;
        Sync::new(REMOTE, o)
    };
    let (s, _, _) = drive(lenient(), &dev, &remote, 1000, &mut hook);
    let s = s.expect("the lenient sync ends");
    assert!(s.issues.is_empty(), "{:?}", s.issues);
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert_eq!(s.warnings[0].resource.as_deref(), Some("Patient/p1"));
    assert!(s.warnings[0].message.contains("favouriteColour"));
    let p1 = read(&dev, "p1").expect("stored");
    assert!(p1.get("favouriteColour").is_none());
    assert_eq!(field_value(&p1, "family").as_deref(), Some("f1"));

    // An edit of it is held (a PUT would remove the element on the server); others go.
    set_field(&dev, "p1", "family", "LOCAL1");
    set_field(&dev, "p2", "family", "LOCAL2");
    let (s, _, _) = drive(lenient(), &dev, &remote, 1000, &mut hook);
    let s = s.expect("the second sync ends");
    assert_eq!(s.pushed, 1);
    assert!(
        s.issues
            .iter()
            .any(|issue| issue.resource.as_deref() == Some("Patient/p1")
                && issue.message.starts_with("not pushed")),
        "{:?}",
        s.issues
    );
    assert_eq!(
        field_value(&read(&remote, "p1").unwrap(), "family").as_deref(),
        Some("f1")
    );
    assert_eq!(
        field_value(&read(&remote, "p2").unwrap(), "family").as_deref(),
        Some("LOCAL2")
    );
    // Held, not dropped: asked again at every sync, and pushed once the server's version
    // reads in full.
    let (s, _, _) = drive(lenient(), &dev, &remote, 1000, &mut hook);
    assert!(s
        .unwrap()
        .issues
        .iter()
        .any(|issue| issue.message.starts_with("not pushed")));
    set_field(&remote, "p1", "city", "REMOTE");
    let (s, _, _) = drive(lenient(), &dev, &remote, 1000, &mut |_, _| None);
    let s = s.expect("the sync after the server's edit ends");
    assert!(s.issues.is_empty(), "{:?}", s.issues);
    let there = read(&remote, "p1").unwrap();
    assert_eq!(field_value(&there, "family").as_deref(), Some("LOCAL1"));
    assert_eq!(field_value(&there, "city").as_deref(), Some("REMOTE"));
}

#[test]
fn a_conflict_on_a_resource_read_leniently_is_not_pushed_whichever_side_is_kept() {
    for resolution in [Resolution::Local, Resolution::Remote] {
        let clock = SimClock(Rc::new(Cell::new(0)));
        let remote = service(&clock, "r", REMOTE);
        put(&remote, "p1", "1");
        let mut hook = |remote: &Local, req: &HttpRequest| {
            (req.method == "GET").then(|| Ok(with_unknown_element(serve(remote, req))))
        };
        let lenient = || {
            let mut o = Options::new(types());
            o.page_size = 2;
            o.strict = false;
            Sync::new(REMOTE, o)
        };
        let dev = service(&clock, "b", "https://hearth.local/fhir");
        assert!(drive(lenient(), &dev, &remote, 1000, &mut hook).0.is_some());
        // Both sides change the family name: a conflict.
        set_field(&dev, "p1", "family", "LOCAL");
        set_field(&remote, "p1", "family", "REMOTE");
        let (s, _, _) = drive(lenient(), &dev, &remote, 1000, &mut hook);
        let s = s.expect("the conflicting sync ends");
        assert_eq!(s.conflicts, 1, "{:?}", s.issues);
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        let conflicts = block_on(Sync::conflicts(&dev, REMOTE)).unwrap();
        assert!(conflicts[0].lossy);
        // Later, another change on the server moves the checkpoint past p1's last version,
        // so that the next pull does not read p1 again; then the conflict is resolved.
        clock.0.set(clock.0.get() + 3_600_000);
        put(&remote, "p2", "2");
        assert!(drive(lenient(), &dev, &remote, 1000, &mut hook).0.is_some());
        clock.0.set(clock.0.get() + 3_600_000);
        assert!(
            block_on(Sync::resolve(&dev, REMOTE, "Patient", "p1", &resolution))
                .unwrap()
                .unwrap()
        );
        set_field(&dev, "p1", "city", "LOCAL-CITY");
        let mut sent = Vec::new();
        let (s, _, _) = drive(lenient(), &dev, &remote, 1000, &mut |remote, req| {
            if req.method != "GET" {
                sent.push(String::from_utf8_lossy(&req.body).to_string());
            }
            hook(remote, req)
        });
        let s = s.expect("the sync after the resolution ends");
        assert!(
            sent.iter().all(|body| !body.contains("LOCAL-CITY")),
            "{resolution:?}: pushed {sent:?}"
        );
        assert!(
            s.issues
                .iter()
                .any(|issue| issue.message.starts_with("not pushed")),
            "{:?}",
            s.issues
        );
        assert_eq!(
            s.issues
                .iter()
                .filter(|issue| issue.message.starts_with("not pushed"))
                .count(),
            1,
            "reported once"
        );
        let there = read(&remote, "p1").unwrap();
        assert_eq!(field_value(&there, "family").as_deref(), Some("REMOTE"));
    }
}

#[test]
fn an_incremental_sync_after_downloading_data_older_than_the_margin_is_one_request() {
    // The checkpoint of a download that began in this attempt is the earliest `Date` of its
    // queries (less the margin), not the server's newest write before it: writes older than
    // the margin are not read again by the next sync.
    let clock = SimClock(Rc::new(Cell::new(0)));
    let remote = service(&clock, "r", REMOTE);
    let dev = service(&clock, "a", "https://hearth.local/fhir");
    for n in 0..6 {
        put(&remote, &format!("p{n}"), "1");
    }
    clock.0.set(clock.0.get() + 600_000);
    let c2 = clock.clone();
    let mut hook = move |remote: &Local, req: &HttpRequest| -> Option<Result<HttpReply, String>> {
        let mut reply = serve(remote, req);
        let s = c2.0.get() / 1000;
        reply.headers.push((
            "Date".into(),
            format!(
                "Thu, 01 Jan 2026 {:02}:{:02}:{:02} GMT",
                s / 3600,
                (s / 60) % 60,
                s % 60
            ),
        ));
        Some(Ok(reply))
    };
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut hook);
    assert!(s.is_some_and(|s| s.complete), "{log:?}");
    let (s, _, log) = run(&dev, &remote, types(), 1000, &mut hook);
    assert!(s.is_some_and(|s| s.complete), "{log:?}");
    let reads: Vec<&String> = log
        .iter()
        .filter(|line| line.starts_with("GET") && !line.ends_with("metadata"))
        .collect();
    assert_eq!(reads.len(), 1, "{log:?}");
}
