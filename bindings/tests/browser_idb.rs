//! IndexedDB through `indexed_db_futures`, in headless Chromium: a record written by one
//! transaction is read back by another, and by a fresh connection.
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use hearth_wasm::idb::IdbKv;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
async fn record_written_to_indexeddb_reads_back() {
    let name = format!("hearth-test-{}", js_sys::Date::now());
    let store = match IdbKv::open(&name).await {
        Ok(store) => store,
        Err(err) => panic!("open failed: {err:?}"),
    };
    let resource = br#"{"resourceType":"Patient","id":"p1"}"#;
    if let Err(err) = store.put("Patient/p1", resource).await {
        panic!("put failed: {err:?}");
    }
    let missing = store.get("Patient/none").await.ok().flatten();
    assert_eq!(missing, None);
    store.close();

    let reopened = match IdbKv::open(&name).await {
        Ok(store) => store,
        Err(err) => panic!("reopen failed: {err:?}"),
    };
    let got = reopened.get("Patient/p1").await.ok().flatten();
    assert_eq!(got.as_deref(), Some(&resource[..]));
    // The stored bytes are a resource the engine can read.
    let summary = hearth_engine::json::inspect(got.as_deref().unwrap_or_default()).ok();
    assert_eq!(summary.map(|summary| summary.id), Some(Some("p1".into())));
}

#[wasm_bindgen_test]
fn inspect_runs_in_the_browser() {
    let got = hearth_wasm::inspect(br#"{"resourceType":"Patient","id":"b"}"#).ok();
    assert!(got.is_some());
}
