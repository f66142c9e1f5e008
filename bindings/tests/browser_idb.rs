//! The engine's store on IndexedDB, in headless Chromium: ordered scans both ways, atomic
//! commits, reopening, and a transaction that stays active while the engine awaits only its
//! own requests (and fails loudly when something else is awaited).
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use hearth_engine::store::paged::PagedConfig;
use hearth_engine::store::{KeyRange, Store, Transaction};
use hearth_wasm::idb::IdbStore;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::wasm_bindgen_test;

fn name(test: &str) -> String {
    format!("hearth-test-{test}-{}", js_sys::Date::now())
}

async fn open(name: &str) -> IdbStore {
    match IdbStore::open(name).await {
        Ok(store) => store,
        Err(err) => panic!("open failed: {err:?}"),
    }
}

/// Resolves after `ms` milliseconds: a wait on something other than IndexedDB.
async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global: web_sys_free::Global = js_sys::global().unchecked_into();
        global.set_timeout(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// `setTimeout` without web-sys: the one call these tests need.
mod web_sys_free {
    use wasm_bindgen::prelude::*;
    #[wasm_bindgen]
    extern "C" {
        pub type Global;
        #[wasm_bindgen(method, js_name = setTimeout)]
        pub fn set_timeout(this: &Global, handler: &js_sys::Function, ms: i32) -> JsValue;
    }
}

#[wasm_bindgen_test]
async fn entries_commit_atomically_scan_in_order_and_survive_a_reopen() {
    let name = name("scan");
    let store = open(&name).await;
    let mut tx = store.begin(true).await.expect("begin");
    for i in 0u8..50 {
        tx.put(vec![b'k', i], vec![i; 3]);
    }
    tx.put(b"other".to_vec(), b"x".to_vec());
    // Own writes are visible before the commit, merged into scans.
    assert_eq!(tx.get(&[b'k', 7]).await.expect("get"), Some(vec![7; 3]));
    tx.commit().await.expect("commit");

    let mut tx = store.begin(false).await.expect("begin");
    let forward = tx
        .scan(&KeyRange::prefix(b"k"), 2000, false)
        .await
        .expect("scan");
    assert_eq!(forward.len(), 50);
    assert!(forward.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let backward = tx
        .scan(&KeyRange::prefix(b"k"), 5, true)
        .await
        .expect("scan");
    let keys: Vec<u8> = backward.iter().map(|(key, _)| key[1]).collect();
    assert_eq!(keys, vec![49, 48, 47, 46, 45]);
    drop(tx);

    // A transaction that fails is not written at all.
    let mut tx = store.begin(true).await.expect("begin");
    tx.delete(vec![b'k', 0]);
    tx.put(b"never".to_vec(), b"y".to_vec());
    drop(tx);
    store.close("test");

    let store = open(&name).await;
    let mut tx = store.begin(false).await.expect("begin");
    assert_eq!(tx.get(&[b'k', 0]).await.expect("get"), Some(vec![0; 3]));
    assert_eq!(tx.get(b"never").await.expect("get"), None);
    assert_eq!(tx.get(b"other").await.expect("get"), Some(b"x".to_vec()));
    drop(tx);
    store.close("test");
    IdbStore::destroy(&name).await.expect("destroy");
}

#[wasm_bindgen_test]
async fn scans_larger_than_a_batch_merge_own_writes() {
    let name = name("batches");
    let store = open(&name).await;
    let mut tx = store.begin(true).await.expect("begin");
    for i in 0u16..3000 {
        tx.put(i.to_be_bytes().to_vec(), vec![1]);
    }
    tx.commit().await.expect("commit");
    let mut tx = store.begin(true).await.expect("begin");
    tx.delete(5u16.to_be_bytes().to_vec());
    tx.put(vec![0, 5, 0], vec![2]);
    let all = tx
        .scan(&KeyRange::prefix(&[]), usize::MAX, false)
        .await
        .expect("scan");
    assert_eq!(all.len(), 3000);
    assert!(all.windows(2).all(|pair| pair[0].0 < pair[1].0));
    assert!(all.iter().any(|(key, _)| key == &vec![0, 5, 0]));
    let last = tx
        .scan(&KeyRange::prefix(&[]), 3, true)
        .await
        .expect("scan");
    assert_eq!(last[0].0, 2999u16.to_be_bytes().to_vec());
    drop(tx);
    store.close("test");
    IdbStore::destroy(&name).await.expect("destroy");
}

/// The engine's reads and CPU work between them keep the IndexedDB transaction active, so a
/// long writing transaction commits whole. The same transaction that awaits a timer instead
/// loses it (the browser auto-commits an idle transaction), which is what the first part would
/// show if the store ever awaited anything but its own requests.
#[wasm_bindgen_test]
async fn a_transaction_stays_active_while_only_its_own_requests_are_awaited() {
    let name = name("active");
    // Small sizes: commits compact into pages (reading pages inside the commit), and reads
    // go to IndexedDB for pages and chunks rather than to memory.
    let small = PagedConfig {
        page_bytes: 256,
        chunk_bytes: 512,
        recent_limit: 64,
        recent_bytes: 4096,
        run_growth: 2,
        merge_bytes: 8192,
        cache_bytes: 1024,
        ..PagedConfig::default()
    };
    let store = match IdbStore::open_with(&name, small).await {
        Ok(store) => store,
        Err(err) => panic!("open failed: {err:?}"),
    };
    let mut tx = store.begin(true).await.expect("begin");
    let mut checksum = 0u64;
    for i in 0u32..400 {
        let key = i.to_be_bytes().to_vec();
        let _ = tx.get(&key).await.expect("get while active");
        // CPU work between reads, as the engine's validation and indexing do.
        for j in 0..2000u64 {
            checksum = checksum.wrapping_mul(31).wrapping_add(j ^ u64::from(i));
        }
        tx.put(key, checksum.to_le_bytes().to_vec());
    }
    tx.commit()
        .await
        .expect("a transaction that awaited only its own requests commits");
    let mut tx = store.begin(false).await.expect("begin");
    let all = tx
        .scan(&KeyRange::prefix(&[]), usize::MAX, false)
        .await
        .expect("scan");
    assert_eq!(all.len(), 400);
    drop(tx);

    // A second round over pages on disk: every read a request of the transaction's own,
    // CPU work between them, values of 100 bytes (kept in chunks), and a commit that compacts.
    let mut tx = store.begin(true).await.expect("begin");
    for i in 0u32..400 {
        let key = i.to_be_bytes().to_vec();
        assert!(tx.get(&key).await.expect("get while active").is_some());
        for j in 0..2000u64 {
            checksum = checksum.wrapping_mul(31).wrapping_add(j ^ u64::from(i));
        }
        tx.put(key, vec![(checksum & 0xff) as u8; 100]);
    }
    tx.commit().await.expect("a commit that compacts");
    let mut tx = store.begin(false).await.expect("begin");
    let all = tx
        .scan(&KeyRange::prefix(&[]), usize::MAX, true)
        .await
        .expect("scan");
    assert_eq!(all.len(), 400);
    assert!(all.iter().all(|(_, value)| value.len() == 100));
    assert_eq!(tx.count(&KeyRange::prefix(&[])).await.expect("count"), 400);
    drop(tx);

    // Awaiting something else (a timer) lets IndexedDB commit the transaction under the
    // engine: its writes then fail loudly at commit, and none of them is stored.
    let mut tx = store.begin(true).await.expect("begin");
    let _ = tx.get(&[0, 0, 0, 1]).await.expect("get");
    sleep(50).await;
    tx.put(vec![0, 0, 0, 1], b"late".to_vec());
    tx.put(vec![9, 9, 9, 9], b"late".to_vec());
    assert!(
        tx.commit().await.is_err(),
        "a commit after awaiting a timer must fail: the transaction has ended"
    );
    let mut tx = store.begin(false).await.expect("begin");
    assert_eq!(tx.get(&[9, 9, 9, 9]).await.expect("get"), None);
    assert_ne!(
        tx.get(&[0, 0, 0, 1]).await.expect("get"),
        Some(b"late".to_vec())
    );
    drop(tx);
    store.close("test");
    IdbStore::destroy(&name).await.expect("destroy");
}

#[wasm_bindgen_test]
async fn reads_ahead_answer_as_reads_and_own_writes_win() {
    let name = name("prefetch");
    let store = open(&name).await;
    let mut tx = store.begin(true).await.expect("begin");
    for i in 0u8..20 {
        tx.put(vec![b'p', i], vec![i]);
    }
    tx.commit().await.expect("commit");
    let mut tx = store.begin(true).await.expect("begin");
    tx.put(vec![b'p', 3], vec![99]);
    let keys: Vec<Vec<u8>> = (0u8..25).map(|i| vec![b'p', i]).collect();
    tx.prefetch(&keys).await.expect("prefetch");
    tx.delete(vec![b'p', 4]);
    assert_eq!(tx.get(&[b'p', 2]).await.expect("get"), Some(vec![2]));
    assert_eq!(tx.get(&[b'p', 3]).await.expect("get"), Some(vec![99]));
    assert_eq!(tx.get(&[b'p', 4]).await.expect("get"), None);
    assert_eq!(tx.get(&[b'p', 22]).await.expect("get"), None);
    tx.commit().await.expect("commit");
    let mut tx = store.begin(false).await.expect("begin");
    assert_eq!(tx.get(&[b'p', 3]).await.expect("get"), Some(vec![99]));
    assert_eq!(tx.get(&[b'p', 4]).await.expect("get"), None);
    drop(tx);
    store.close("test");
    IdbStore::destroy(&name).await.expect("destroy");
}

#[wasm_bindgen_test]
async fn a_closed_store_says_why() {
    let name = name("closed");
    let store = open(&name).await;
    store.close("closed by the test");
    let failed = store.begin(false).await.err().map(|err| err.message);
    assert_eq!(failed.as_deref(), Some("closed by the test"));
    IdbStore::destroy(&name).await.expect("destroy");
}

/// A database of schema 1 (one record per key in `kv`) opens with every entry, moved into
/// the paged layout, and `kv` emptied.
#[wasm_bindgen_test]
async fn a_database_of_the_first_schema_opens_with_its_entries() {
    use indexed_db_futures::database::Database;
    use indexed_db_futures::prelude::*;
    use indexed_db_futures::transaction::TransactionMode;
    use js_sys::Uint8Array;
    use wasm_bindgen::JsValue;

    let name = name("schema1");
    let db = Database::open(&name)
        .with_version(1u32)
        .with_on_upgrade_needed(|_, db| {
            db.create_object_store("kv").build()?;
            Ok(())
        })
        .await
        .expect("open at schema 1");
    let tx = db
        .transaction("kv")
        .with_mode(TransactionMode::Readwrite)
        .build()
        .expect("transaction");
    let kv = tx.object_store("kv").expect("kv");
    for i in 0u32..30_000 {
        let key = JsValue::from(Uint8Array::from(
            &[b'm', (i >> 16) as u8, (i >> 8) as u8, i as u8][..],
        ));
        let value = if i % 2 == 0 {
            vec![7u8; 200]
        } else {
            vec![i as u8]
        };
        kv.put(JsValue::from(Uint8Array::from(value.as_slice())))
            .with_key(key)
            .primitive()
            .expect("put");
    }
    tx.commit().await.expect("commit");
    db.close();

    let store = open(&name).await;
    let mut tx = store.begin(false).await.expect("begin");
    let all = tx
        .scan(&KeyRange::prefix(b"m"), usize::MAX, false)
        .await
        .expect("scan");
    assert_eq!(all.len(), 30_000);
    assert_eq!(all[4].1, vec![7u8; 200]);
    assert_eq!(all[5].1, vec![5u8]);
    assert_eq!(
        tx.count(&KeyRange::prefix(b"m")).await.expect("count"),
        30_000
    );
    drop(tx);
    store.close("test");
    // Opened again: nothing is left in `kv` to move, and everything is still there.
    let store = open(&name).await;
    let mut tx = store.begin(false).await.expect("begin");
    assert_eq!(
        tx.count(&KeyRange::prefix(b"m")).await.expect("count"),
        30_000
    );
    drop(tx);
    store.close("test");
    let db = Database::open(&name).await.expect("open");
    let tx = db.transaction("kv").build().expect("transaction");
    let left: u32 = tx
        .object_store("kv")
        .expect("kv")
        .count()
        .primitive()
        .expect("count")
        .await
        .expect("count");
    assert_eq!(left, 0);
    drop(tx);
    db.close();
    IdbStore::destroy(&name).await.expect("destroy");
}

#[wasm_bindgen_test]
fn inspect_runs_in_the_browser() {
    let got = hearth_wasm::inspect(br#"{"resourceType":"Patient","id":"b"}"#).ok();
    assert!(got.is_some());
}
