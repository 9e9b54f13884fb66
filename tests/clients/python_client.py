"""Drives snapvault with the official Elasticsearch Python client (8.x), the
way an operator's script would. Exits non-zero on the first surprise.
It signs in with basic credentials, then creates a least-privilege API key
for a backup job and checks what that key may and may not do.
Usage: python_client.py http://127.0.0.1:PORT PASSWORD_OF_ELASTIC"""

import sys

from elasticsearch import (
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    Elasticsearch,
    NotFoundError,
    helpers,
)

url, password = sys.argv[1], sys.argv[2]

try:
    Elasticsearch(url, basic_auth=("elastic", password + "-wrong"), request_timeout=30).snapshot.get_repository()
    raise SystemExit("expected a 401 for a wrong password")
except AuthenticationException as e:
    assert e.meta.status == 401
    assert e.body["error"]["type"] == "security_exception", e.body

es = Elasticsearch(url, basic_auth=("elastic", password), request_timeout=120)
assert es.security.authenticate()["username"] == "elastic"

info = es.info()
# snapvault reports Elasticsearch 9.x (Kibana 9 needs it); this 8.x client
# talks to it with compatible-with=8 media types.
assert info["version"]["number"].startswith("9."), info
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

key = es.security.create_api_key(
    name="nightly-backup",
    expiration="1d",
    role_descriptors={"backup": {"cluster": ["create_snapshot", "monitor_snapshot"]}},
)
job = Elasticsearch(url, api_key=key["encoded"], request_timeout=120)
assert job.security.authenticate()["api_key"]["name"] == "nightly-backup"
taken = job.snapshot.create(repository="py-repo", snapshot="by-key", indices="py-books", wait_for_completion=True)
assert taken["snapshot"]["state"] == "SUCCESS", taken
try:
    job.snapshot.delete(repository="py-repo", snapshot="nightly")
    raise SystemExit("expected a 403: the backup key may not delete")
except AuthorizationException as e:
    assert e.meta.status == 403
    assert "cluster:admin/snapshot/delete" in e.body["error"]["reason"], e.body
es.security.invalidate_api_key(ids=[key["id"]])
try:
    job.snapshot.get(repository="py-repo", snapshot="_all")
    raise SystemExit("expected a 401 for an invalidated key")
except AuthenticationException:
    pass

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
