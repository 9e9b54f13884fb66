//! `_bulk` and the document maps behind it, against a model: results and
//! versions item by item, counts, documents by id and search pages in
//! their stable order (shard, then sequence number) after overwrites,
//! deletions and generated ids, across segments, a restart (the maps are
//! rebuilt from the segments) and a second replica sharing the data store.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::harness::{Api, Server};

/// Elasticsearch's shard of an id, as snapvault routes it (FNV-1a).
fn shard_of(id: &str, shards: u32) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in id.as_bytes() {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h % shards
}

/// One bulk item: the action line's verb and id, and the source.
struct Item {
    verb: &'static str,
    id: Option<String>,
    source: Option<Value>,
}

fn index(id: &str, n: u64) -> Item {
    Item {
        verb: "index",
        id: Some(id.into()),
        source: Some(json!({"id": id, "n": n, "text": "x".repeat(n as usize % 50)})),
    }
}

fn create(id: &str, n: u64) -> Item {
    Item {
        verb: "create",
        ..index(id, n)
    }
}

fn delete(id: &str) -> Item {
    Item {
        verb: "delete",
        id: Some(id.into()),
        source: None,
    }
}

fn auto(n: u64) -> Item {
    Item {
        id: None,
        ..index("", n)
    }
}

/// What the index should hold: each live document's version, sequence
/// number and source.
#[derive(Default)]
struct Model {
    docs: BTreeMap<String, (u64, u64, Value)>,
}

impl Model {
    /// Sends `items` as one bulk request and checks every answer against
    /// the model, which it then updates.
    async fn bulk(&mut self, api: &Api, items: Vec<Item>) {
        let mut nd = String::new();
        for it in &items {
            let meta = match &it.id {
                Some(id) => json!({"_index": "m", "_id": id}),
                None => json!({"_index": "m"}),
            };
            nd.push_str(&json!({ it.verb: meta }).to_string());
            nd.push('\n');
            if let Some(src) = &it.source {
                nd.push_str(&src.to_string());
                nd.push('\n');
            }
        }
        let r = api
            .raw("POST", "/_bulk", "application/x-ndjson", nd.into_bytes())
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let answers = r.body["items"].as_array().unwrap();
        assert_eq!(answers.len(), items.len());
        // Versions of documents this request deleted: a later item of the
        // same request continues from them, as Elasticsearch does; across
        // requests a deleted document starts again at version 1.
        let mut deleted: BTreeMap<String, u64> = BTreeMap::new();
        for (it, answer) in items.into_iter().zip(answers) {
            let a = &answer[it.verb];
            // A failed item names no id: the request's is the one.
            let id = it
                .id
                .clone()
                .unwrap_or_else(|| a["_id"].as_str().unwrap().to_string());
            let known = self.docs.get(&id).cloned();
            match (it.verb, known) {
                ("create", Some((v, _, _))) => {
                    assert_eq!(a["status"], 409, "{answer}");
                    assert!(a["error"]["reason"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("current version [{v}]")));
                }
                ("delete", None) => assert_eq!(a["result"], "not_found", "{answer}"),
                ("delete", Some((v, _, _))) => {
                    assert_eq!(
                        (&a["result"], &a["_version"]),
                        (&json!("deleted"), &json!(v + 1))
                    );
                    self.docs.remove(&id);
                    deleted.insert(id, v + 1);
                }
                (_, known) => {
                    let (result, version) = match known {
                        None => ("created", deleted.get(&id).map_or(1, |v| v + 1)),
                        Some((v, _, _)) => ("updated", v + 1),
                    };
                    assert_eq!(
                        (&a["result"], &a["_version"]),
                        (&json!(result), &json!(version)),
                        "{id}: {answer}"
                    );
                    let source = it.source.unwrap();
                    if it.id.is_none() {
                        assert_eq!(id.len(), 20, "a generated id");
                    }
                    let seq_no = a["_seq_no"].as_u64().unwrap();
                    self.docs.insert(id, (version, seq_no, source));
                }
            }
        }
    }

    /// Ids in the order a search returns them: shard, then sequence number.
    fn order(&self) -> Vec<String> {
        let mut ids: Vec<(u32, u64, &String)> = self
            .docs
            .iter()
            .map(|(id, (_, seq_no, _))| (shard_of(id, 2), *seq_no, id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, _, id)| id.clone()).collect()
    }

    /// Count, every page of a paged search, and some documents by id.
    async fn check(&self, api: &Api) {
        assert_eq!(
            api.ok("GET", "/m/_count", None).await["count"],
            self.docs.len()
        );
        let hits = |v: &Value| -> Vec<(String, Value)> {
            v["hits"]["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h["_id"].as_str().unwrap().to_string(), h["_source"].clone()))
                .collect()
        };
        let all = api
            .ok("POST", "/m/_search", Some(json!({"size": 10000})))
            .await;
        assert_eq!(all["hits"]["total"]["value"], self.docs.len());
        let all = hits(&all);
        let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(ids, self.order());
        for (id, source) in &all {
            assert_eq!(source, &self.docs[id].2, "{id}");
        }
        let mut paged = Vec::new();
        for from in (0..self.docs.len() + 7).step_by(7) {
            let page = api
                .ok("POST", "/m/_search", Some(json!({"from": from, "size": 7})))
                .await;
            paged.extend(hits(&page).into_iter().map(|(id, _)| id));
        }
        assert_eq!(paged, ids);
        for id in ids.iter().step_by(13) {
            let (version, seq_no, source) = &self.docs[id];
            let d = api.ok("GET", &format!("/m/_doc/{id}"), None).await;
            assert_eq!(
                (&d["_version"], &d["_seq_no"], &d["_source"]),
                (&json!(version), &json!(seq_no), source),
                "{id}"
            );
        }
    }
}

fn ids(prefix: &str, range: std::ops::Range<u64>) -> impl Iterator<Item = (String, u64)> + '_ {
    range.map(move |n| (format!("{prefix}-{n}"), n))
}

/// Overwrites, deletions (across requests and within one), conflicts,
/// missing deletions and generated ids.
async fn load(model: &mut Model, api: &Api) {
    model
        .bulk(api, ids("d", 0..300).map(|(id, n)| index(&id, n)).collect())
        .await;
    let mut second: Vec<Item> = ids("d", 0..50)
        .map(|(id, n)| index(&id, n + 1000))
        .collect();
    second.extend(ids("d", 50..80).map(|(id, _)| delete(&id)));
    second.push(create("d-80", 1));
    second.push(delete("nope"));
    second.extend((0..20).map(auto));
    second.push(index("d-1", 7));
    second.push(delete("d-2"));
    second.push(create("d-2", 8));
    model.bulk(api, second).await;
    let mut third: Vec<Item> = ids("d", 100..130)
        .map(|(id, n)| index(&id, n + 2000))
        .collect();
    third.extend(ids("e", 0..40).map(|(id, n)| create(&id, n)));
    third.push(delete("d-0"));
    model.bulk(api, third).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_results_counts_documents_and_pages_agree_with_a_model_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("m", 2).await;
    let mut model = Model::default();
    load(&mut model, &s).await;
    model.check(&s).await;
    assert_eq!(s.call("GET", "/m/_doc/d-60", None).await.status, 404);

    // The maps are rebuilt from the segments: same answers, and versions
    // continue where they were.
    let s = s.restart().await;
    model.check(&s).await;
    model
        .bulk(
            &s,
            vec![
                index("d-1", 9),
                delete("d-3"),
                create("d-3", 1),
                index("f-1", 1),
            ],
        )
        .await;
    model.check(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_reads_and_continues_what_another_replica_wrote() {
    let root = tempfile::tempdir().unwrap();
    let config = super::replicas::shared_config(root.path(), "");
    let (r0, r1) = (root.path().join("r0"), root.path().join("r1"));
    std::fs::create_dir_all(&r0).unwrap();
    std::fs::create_dir_all(&r1).unwrap();
    let a = Server::start_with(&r0, Some(&config)).await;
    std::fs::copy(r0.join("keystore.json"), r1.join("keystore.json")).unwrap();
    let b = Server::start_with(&r1, Some(&config)).await;
    a.create_index("m", 2).await;
    let mut model = Model::default();
    load(&mut model, &a).await;
    model.check(&b).await;
    model
        .bulk(&b, vec![index("d-5", 1), delete("d-6"), index("g-1", 1)])
        .await;
    model.check(&a).await;
    model.bulk(&a, vec![index("d-5", 2), delete("g-1")]).await;
    model.check(&b).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_larger_than_a_segment_is_split_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path()).await;
    s.create_index("big", 1).await;
    let filler = "w".repeat(1000);
    let docs: Vec<(String, Value)> = (0..9000)
        .map(|i| (format!("b-{i}"), json!({"i": i, "filler": filler})))
        .collect();
    s.bulk("big", &docs).await;
    let shard = super::harness::files_under(&dir.path().join("data"))
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "ndjson"))
        .count();
    assert_eq!(shard, 2, "9 MB of entries in segments of at most 8 MiB");
    assert_eq!(s.ok("GET", "/big/_count", None).await["count"], 9000);
    for i in [0, 8200, 8999] {
        let page = s
            .ok("POST", "/big/_search", Some(json!({"from": i, "size": 1})))
            .await;
        assert_eq!(page["hits"]["hits"][0]["_source"]["i"], i);
        let d = s.ok("GET", &format!("/big/_doc/b-{i}"), None).await;
        assert_eq!(d["_source"]["i"], i);
    }
    s.stop().await;
}
