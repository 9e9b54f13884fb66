"""Drives snapvault with the official Elasticsearch Python client (8.x), the
way an operator's script would. Exits non-zero on the first surprise.
Usage: python_client.py http://127.0.0.1:PORT"""

import sys

from elasticsearch import Elasticsearch, NotFoundError, BadRequestError, helpers

es = Elasticsearch(sys.argv[1], request_timeout=120)

info = es.info()
assert info["version"]["number"].startswith("8."), info
assert es.ping()

es.indices.create(index="py-books", settings={"number_of_shards": 2})
ok, errors = helpers.bulk(es, ({"_index": "py-books", "_id": str(i), "_source": {"n": i, "title": f"book {i}"}} for i in range(250)))
assert ok == 250 and not errors, errors
assert es.count(index="py-books")["count"] == 250
assert es.get(index="py-books", id="7")["_source"]["title"] == "book 7"
assert es.indices.exists(index="py-books")

es.snapshot.create_repository(name="py-repo", repository={"type": "fs", "settings": {"location": "py-repo"}})
repos = es.snapshot.get_repository(name="py-repo")
assert repos["py-repo"]["type"] == "fs", repos
assert es.snapshot.verify_repository(name="py-repo")["nodes"]

snap = es.snapshot.create(repository="py-repo", snapshot="nightly", indices="py-books", wait_for_completion=True, metadata={"taken_by": "python"})
assert snap["snapshot"]["state"] == "SUCCESS", snap
got = es.snapshot.get(repository="py-repo", snapshot="nightly")
assert got["snapshots"][0]["metadata"] == {"taken_by": "python"}, got
status = es.snapshot.status(repository="py-repo", snapshot="nightly")
assert status["snapshots"][0]["shards_stats"]["done"] == 2, status
cat = es.cat.snapshots(repository="py-repo", format="json")
assert cat[0]["id"] == "nightly" and cat[0]["status"] == "SUCCESS", cat

es.snapshot.clone(repository="py-repo", snapshot="nightly", target_snapshot="nightly-copy", indices="py-books")
es.indices.delete(index="py-books")
restored = es.snapshot.restore(repository="py-repo", snapshot="nightly-copy", wait_for_completion=True)
assert restored["snapshot"]["indices"] == ["py-books"], restored
assert es.count(index="py-books")["count"] == 250

try:
    es.snapshot.get(repository="py-repo", snapshot="missing")
    raise SystemExit("expected a 404")
except NotFoundError as e:
    assert e.meta.status == 404
    assert e.body["error"]["type"] == "snapshot_missing_exception", e.body

try:
    es.snapshot.create(repository="py-repo", snapshot="Upper")
    raise SystemExit("expected a 400")
except BadRequestError as e:
    assert e.body["error"]["type"] == "invalid_snapshot_name_exception", e.body

es.snapshot.delete(repository="py-repo", snapshot="nightly")
analysis = es.snapshot.repository_analyze(
    name="py-repo", blob_count=8, max_blob_size="32kb", register_operation_count=5, seed=3, timeout="60s"
)
assert analysis["issues_detected"] == [], analysis
assert analysis["blob_count"] == 8 and analysis["seed"] == 3, analysis
cleaned = es.snapshot.cleanup_repository(name="py-repo")
assert "deleted_bytes" in cleaned["results"], cleaned
es.snapshot.delete_repository(name="py-repo")
print("python client: all checks passed")
