//! What the OpenAPI document says beyond the route annotations, applied
//! once after the routes are collected: Elasticsearch's API names as
//! operation ids, and the error answer every operation can give. Generated
//! SDKs are named after these, so they read like the official clients
//! (`snapshot_create`, `slm_put_lifecycle`) rather than like Rust handler
//! names.

use utoipa::openapi::{ContentBuilder, OneOfBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema};

/// Elasticsearch's API name (as in its REST specification) for each
/// handler; snapvault's own APIs are named under `snapvault.`. Handlers
/// that serve the same API on another method or path follow the first
/// one's name with `-1`, `-2`, in document order, as Elastic's own
/// published OpenAPI document numbers them.
const API_NAMES: &[(&str, &str)] = &[
    ("root", "info"),
    ("root_head", "ping"),
    ("health", "snapvault.health"),
    ("nodes", "nodes.info"),
    ("nodes_selected", "nodes.info"),
    ("nodes_metric", "nodes.info"),
    ("cat_nodes", "cat.nodes"),
    ("nodes_stats", "nodes.stats"),
    ("nodes_stats_metric", "nodes.stats"),
    ("nodes_stats_selected", "nodes.stats"),
    ("nodes_stats_selected_metric", "nodes.stats"),
    ("prometheus_metrics", "snapvault.prometheus_metrics"),
    ("reload_secure_settings", "nodes.reload_secure_settings"),
    ("get_all_repositories", "snapshot.get_repository"),
    ("get_repository", "snapshot.get_repository"),
    ("put_repository", "snapshot.create_repository"),
    ("post_repository", "snapshot.create_repository"),
    ("delete_repository", "snapshot.delete_repository"),
    ("verify_repository", "snapshot.verify_repository"),
    ("cleanup_repository", "snapshot.cleanup_repository"),
    ("create_snapshot", "snapshot.create"),
    ("create_snapshot_post", "snapshot.create"),
    ("get_snapshot", "snapshot.get"),
    ("delete_snapshot", "snapshot.delete"),
    ("clone_snapshot", "snapshot.clone"),
    ("status_all", "snapshot.status"),
    ("status_repository", "snapshot.status"),
    ("status_snapshot", "snapshot.status"),
    ("restore_snapshot", "snapshot.restore"),
    ("snapshottable_features", "snapshot.get_features"),
    ("analyze_repository", "snapshot.repository_analyze"),
    ("verify_integrity", "snapshot.repository_verify_integrity"),
    ("pause_repository", "snapvault.pause_repository"),
    ("resume_repository", "snapvault.resume_repository"),
    ("rotate_key", "snapvault.rotate_key"),
    ("rotate_key_status", "snapvault.rotate_key_status"),
    ("all_rotations", "snapvault.rotations"),
    ("cat_indices", "cat.indices"),
    ("cat_indices_named", "cat.indices"),
    ("cat_repositories", "cat.repositories"),
    ("cat_snapshots", "cat.snapshots"),
    ("cat_snapshots_repo", "cat.snapshots"),
    ("cat_recovery", "cat.recovery"),
    ("cat_recovery_named", "cat.recovery"),
    ("create_index", "indices.create"),
    ("get_index", "indices.get"),
    ("index_exists", "indices.exists"),
    ("delete_index", "indices.delete"),
    ("close_index", "indices.close"),
    ("open_index", "indices.open"),
    ("refresh", "indices.refresh"),
    ("recovery", "indices.recovery"),
    ("index_recovery", "indices.recovery"),
    ("resolve_index", "indices.resolve_index"),
    ("index_doc_auto_id", "index"),
    ("index_doc", "index"),
    ("index_doc_post", "index"),
    ("create_doc", "create"),
    ("get_doc", "get"),
    ("delete_doc", "delete"),
    ("bulk", "bulk"),
    ("bulk_put", "bulk"),
    ("bulk_index", "bulk"),
    ("bulk_index_put", "bulk"),
    ("search", "search"),
    ("search_get", "search"),
    ("count", "count"),
    ("count_post", "count"),
    ("get_settings", "cluster.get_settings"),
    ("put_settings", "cluster.put_settings"),
    ("cluster_health", "cluster.health"),
    ("cluster_health_index", "cluster.health"),
    ("capabilities", "capabilities"),
    ("health_report", "health_report"),
    ("health_report_feature", "health_report"),
    ("xpack", "xpack.info"),
    ("license", "license.get"),
    ("features", "features.get_features"),
    ("list_tasks", "tasks.list"),
    ("get_task", "tasks.get"),
    ("get_lifecycles", "slm.get_lifecycle"),
    ("get_lifecycle", "slm.get_lifecycle"),
    ("put_lifecycle", "slm.put_lifecycle"),
    ("delete_lifecycle", "slm.delete_lifecycle"),
    ("execute_lifecycle", "slm.execute_lifecycle"),
    ("execute_lifecycle_put", "slm.execute_lifecycle"),
    ("execute_retention", "slm.execute_retention"),
    ("get_stats", "slm.get_stats"),
    ("get_status", "slm.get_status"),
    ("start", "slm.start"),
    ("stop", "slm.stop"),
    ("authenticate", "security.authenticate"),
    ("get_users", "security.get_user"),
    ("get_user", "security.get_user"),
    ("put_user", "security.put_user"),
    ("post_user", "security.put_user"),
    ("delete_user", "security.delete_user"),
    ("change_own_password", "security.change_password"),
    ("change_own_password_put", "security.change_password"),
    ("change_user_password", "security.change_password"),
    ("change_user_password_put", "security.change_password"),
    ("get_roles", "security.get_role"),
    ("get_role", "security.get_role"),
    ("put_role", "security.put_role"),
    ("post_role", "security.put_role"),
    ("delete_role", "security.delete_role"),
    ("create_api_key", "security.create_api_key"),
    ("create_api_key_put", "security.create_api_key"),
    ("get_api_keys", "security.get_api_key"),
    ("invalidate_api_keys", "security.invalidate_api_key"),
    ("get_user_privileges", "security.get_user_privileges"),
    ("has_privileges", "security.has_privileges"),
    ("has_privileges_get", "security.has_privileges"),
];

/// The Elasticsearch API name of a handler, if the table knows it.
pub fn api_name(handler: &str) -> Option<&'static str> {
    API_NAMES
        .iter()
        .find(|(h, _)| *h == handler)
        .map(|(_, name)| *name)
}

/// Everything applied to the collected document, in order.
pub fn finish(doc: &mut OpenApi) {
    name_operations(doc);
    document_cat_json(doc);
    document_error_answers(doc);
}

/// `_cat` answers text by default and, with `format=json`, an array of
/// one object per row (column name to value): both are documented on
/// every `_cat` operation's success.
fn document_cat_json(doc: &mut OpenApi) {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder};
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/_cat/") {
            continue;
        }
        let Some(op) = item.get.as_mut() else {
            continue;
        };
        let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") else {
            continue;
        };
        let rows = ArrayBuilder::new()
            .items(ObjectBuilder::new().description(Some("One row: column name to value")))
            .build();
        ok.content.insert(
            "application/json".to_string(),
            ContentBuilder::new()
                .schema(Some(Schema::Array(rows)))
                .build(),
        );
    }
}

fn operations(doc: &mut OpenApi) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
        ]
        .into_iter()
        .flatten()
    })
}

/// Operation ids become `snapshot-create`, `snapshot-create-1`, … (dots
/// become dashes, the form generators turn into `snapshot_create`). A
/// handler missing from [`API_NAMES`] keeps its own name; a test holds the
/// table complete.
fn name_operations(doc: &mut OpenApi) {
    let mut seen = std::collections::HashMap::<&'static str, usize>::new();
    for op in operations(doc) {
        let Some(handler) = op.operation_id.clone() else {
            continue;
        };
        let Some(name) = api_name(&handler) else {
            continue;
        };
        let n = seen.entry(name).or_insert(0);
        let base = name.replace('.', "-");
        op.operation_id = Some(if *n == 0 { base } else { format!("{base}-{n}") });
        *n += 1;
    }
}

/// Every route can also answer an Elasticsearch error that its own
/// annotation does not list (an unknown parameter is a 400, missing
/// credentials a 401, a missing privilege a 403, a body that is too large a
/// 413): each operation gets a `default` response with the error body, so a
/// client (or a fuzzer checking answers against the document) knows the
/// shape of every answer. The 406 for an unsupported `Content-Type` keeps
/// Elasticsearch's short body, hence the `oneOf`.
fn document_error_answers(doc: &mut OpenApi) {
    let schema = OneOfBuilder::new()
        .item(Ref::from_schema_name("ErrorBody"))
        .item(Ref::from_schema_name("SimpleErrorBody"))
        .build();
    let error = ResponseBuilder::new()
        .description("An Elasticsearch error")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Schema::OneOf(schema)))
                .build(),
        )
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .responses
        .insert("ElasticsearchError".into(), RefOr::T(error));
    for op in operations(doc) {
        op.responses
            .responses
            .entry("default".to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name("ElasticsearchError")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every handler has its Elasticsearch (or `snapvault.`) API name, so
    /// no generated SDK method is named after a Rust function.
    #[test]
    fn every_operation_is_named_after_its_api() {
        let (_, mut doc) = super::super::routes().split_for_parts();
        let unnamed: Vec<String> = operations(&mut doc)
            .map(|op| op.operation_id.clone().unwrap_or_default())
            .filter(|handler| api_name(handler).is_none())
            .collect();
        assert!(unnamed.is_empty(), "add to API_NAMES: {unnamed:?}");
    }

    #[test]
    fn operation_ids_are_unique_and_numbered_in_document_order() {
        let (_, mut doc) = super::super::routes().split_for_parts();
        finish(&mut doc);
        let mut ids = Vec::new();
        for op in operations(&mut doc) {
            ids.push(op.operation_id.clone().unwrap());
        }
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        assert!(ids.contains(&"snapshot-create".to_string()), "{ids:?}");
        assert!(ids.contains(&"snapshot-create-1".to_string()), "{ids:?}");
    }

    /// Every `$ref` points at a schema or response the document holds
    /// (a parameter's enum is not collected by the route macros: it must
    /// be listed in `ApiDoc`'s components).
    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(&super::super::openapi_json()).unwrap();
        let mut refs = Vec::new();
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| walk(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&doc, &mut refs);
        let missing: std::collections::BTreeSet<_> = refs
            .iter()
            .filter(|r| {
                let pointer = r.trim_start_matches('#');
                doc.pointer(pointer).is_none()
            })
            .collect();
        assert!(missing.is_empty(), "unresolved: {missing:?}");
    }
}
