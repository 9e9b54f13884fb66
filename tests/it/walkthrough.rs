//! The README walkthrough, end to end over HTTP.

use serde_json::json;

use super::harness::{docs, Server};

#[tokio::test(flavor = "multi_thread")]
async fn readme_walkthrough_restores_identical_documents_with_and_without_rename() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let root = s.ok("GET", "/", None).await;
    assert_eq!(root["version"]["number"], snapvault::ES_COMPAT_VERSION);
    assert_eq!(root["tagline"], "You Know, for Search");

    s.create_index("library", 3).await;
    let books = docs("book", 500);
    s.bulk("library", &books).await;
    assert_eq!(s.ok("GET", "/library/_count", None).await["count"], 500);
    let before = s.all_docs("library").await;
    assert_eq!(before.len(), 500);

    s.put_fs_repository("my_backup", "my_backup").await;
    let snap = s
        .create_snapshot("my_backup", "snapshot_1", "library")
        .await;
    assert_eq!(snap["snapshot"]["shards"]["total"], 3);
    assert_eq!(snap["snapshot"]["shards"]["successful"], 3);
    assert_eq!(snap["snapshot"]["indices"], json!(["library"]));
    assert!(snap["snapshot"]["start_time_in_millis"].as_i64().unwrap() > 0);

    s.ok("DELETE", "/library", None).await;
    assert_eq!(s.call("GET", "/library/_count", None).await.status, 404);

    let restored = s
        .restore("my_backup", "snapshot_1", json!({"indices": "library"}))
        .await;
    assert_eq!(restored["snapshot"]["indices"], json!(["library"]));
    assert_eq!(s.ok("GET", "/library/_count", None).await["count"], 500);
    assert_eq!(s.all_docs("library").await, before);
    let recovery = s.ok("GET", "/library/_recovery", None).await;
    let shards = recovery["library"]["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    for shard in shards {
        assert_eq!(shard["type"], "SNAPSHOT");
        assert_eq!(shard["stage"], "DONE");
        assert_eq!(shard["source"]["snapshot"], "snapshot_1");
        assert_eq!(shard["index"]["files"]["percent"], "100.0%");
        assert_eq!(
            shard["index"]["size"]["recovered_in_bytes"],
            shard["index"]["size"]["total_in_bytes"]
        );
    }
    assert_eq!(
        s.ok("GET", "/_recovery?active_only=true", None).await,
        json!({})
    );

    // Restoring again over the open index is refused; with a rename it works.
    let refused = s
        .call(
            "POST",
            "/_snapshot/my_backup/snapshot_1/_restore?wait_for_completion=true",
            None,
        )
        .await;
    assert_eq!(refused.error_type(), "snapshot_restore_exception");
    assert!(refused
        .reason()
        .contains("an open index with same name already exists"));
    let renamed = s
        .restore("my_backup", "snapshot_1", json!({"indices": "lib*", "rename_pattern": "(.+)", "rename_replacement": "restored_$1"}))
        .await;
    assert_eq!(renamed["snapshot"]["indices"], json!(["restored_library"]));
    assert_eq!(s.all_docs("restored_library").await, before);
    let doc = s.ok("GET", "/restored_library/_doc/book-7", None).await;
    assert_eq!(doc["_source"], books[7].1);

    // A closed index of the same name is replaced by a restore.
    s.ok("POST", "/library/_close", None).await;
    s.restore("my_backup", "snapshot_1", json!({})).await;
    assert_eq!(s.ok("GET", "/library/_count", None).await["count"], 500);

    // Asynchronous form: accepted at once, done shortly after.
    s.ok("DELETE", "/library", None).await;
    let accepted = s
        .ok("POST", "/_snapshot/my_backup/snapshot_1/_restore", None)
        .await;
    assert_eq!(accepted["accepted"], true);
    for _ in 0..200 {
        if s.call("GET", "/library/_count", None).await.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(s.all_docs("library").await, before);

    let cat = s
        .call(
            "GET",
            "/_cat/snapshots/my_backup?v&h=id,status,total_shards",
            None,
        )
        .await;
    assert!(cat.text.starts_with("id"), "{}", cat.text);
    assert!(cat.text.contains("snapshot_1 SUCCESS"), "{}", cat.text);
    let cat_json = s.ok("GET", "/_cat/repositories?format=json", None).await;
    assert_eq!(cat_json, json!([{"id": "my_backup", "type": "fs"}]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_api_behaves_like_elasticsearch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    let created = s
        .call("PUT", "/notes/_doc/1", Some(json!({"text": "one"})))
        .await;
    assert_eq!(
        created.status, 201,
        "auto-creates the index: {}",
        created.text
    );
    assert_eq!(created.body["result"], "created");
    let updated = s
        .call("PUT", "/notes/_doc/1", Some(json!({"text": "uno"})))
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.body["_version"], 2);
    let conflict = s
        .call("PUT", "/notes/_create/1", Some(json!({"text": "again"})))
        .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.error_type(), "version_conflict_engine_exception");
    let auto = s
        .call("POST", "/notes/_doc", Some(json!({"text": "auto"})))
        .await;
    assert_eq!(auto.status, 201);
    assert_eq!(auto.body["_id"].as_str().unwrap().len(), 20);
    assert_eq!(
        s.ok("GET", "/notes/_doc/1", None).await["_source"]["text"],
        "uno"
    );
    assert_eq!(s.ok("GET", "/notes/_count", None).await["count"], 2);
    assert_eq!(
        s.ok("DELETE", "/notes/_doc/1", None).await["result"],
        "deleted"
    );
    let gone = s.call("GET", "/notes/_doc/1", None).await;
    assert_eq!(
        (gone.status, gone.body["found"].clone()),
        (404, json!(false))
    );
    let page = s.ok("GET", "/notes/_search?size=0", None).await;
    assert_eq!(page["hits"]["total"]["value"], 1);
    assert_eq!(page["hits"]["hits"], json!([]));
    // Bulk with mixed results, errors flagged per item.
    let nd = "{\"create\":{\"_index\":\"notes\",\"_id\":\"x\"}}\n{\"a\":1}\n{\"create\":{\"_index\":\"notes\",\"_id\":\"x\"}}\n{\"a\":2}\n{\"delete\":{\"_index\":\"notes\",\"_id\":\"missing\"}}\n";
    let bulk = s
        .raw(
            "POST",
            "/_bulk",
            "application/x-ndjson",
            nd.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(bulk.body["errors"], true, "{}", bulk.text);
    assert_eq!(bulk.body["items"][0]["create"]["status"], 201);
    assert_eq!(bulk.body["items"][1]["create"]["status"], 409);
    assert_eq!(
        bulk.body["items"][1]["create"]["error"]["type"],
        "version_conflict_engine_exception"
    );
    assert_eq!(bulk.body["items"][2]["delete"]["result"], "not_found");
    // Close, reads refused, open again.
    s.ok("POST", "/notes/_close", None).await;
    let closed = s.call("GET", "/notes/_search", None).await;
    assert_eq!(closed.error_type(), "index_closed_exception");
    s.ok("POST", "/notes/_open", None).await;
    assert_eq!(s.ok("GET", "/notes/_count", None).await["count"], 2);
    let text = s
        .call("GET", "/_cat/indices?v&h=index,docs.count&s=index", None)
        .await
        .text;
    assert!(text.contains("notes") && text.contains('2'), "{text}");
    assert_eq!(s.call("HEAD", "/notes", None).await.status, 200);
    assert_eq!(s.call("HEAD", "/nope", None).await.status, 404);
    // filter_path and pretty apply to every JSON answer.
    let filtered = s
        .call("GET", "/notes/_doc/x?filter_path=_source.a&pretty", None)
        .await;
    assert_eq!(filtered.body, json!({"_source": {"a": 1}}));
    assert!(filtered.text.contains('\n'));
    s.stop().await;
}
