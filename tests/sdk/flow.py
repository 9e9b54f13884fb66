"""The whole operator flow through a Python SDK generated from snapvault's
OpenAPI document by openapi-python-client (tests/it/sdk.rs generates it
into a temporary directory and runs this script with it on sys.path).

Only the generated package talks to the server: typed request models in,
typed response models out. Error answers come back as the generated
ErrorBody model; `call` raises them as `ElasticsearchError`, so a flow
reads like one written against an official client. The client is built
with raise_on_unexpected_status, so an answer whose status the document
does not list fails the run, and a body the document describes wrongly
fails in the generated parser.

Usage: flow.py <base_url> <password> <fresh_key_id>
"""

import base64
import sys
import time

from snapvault_client import AuthenticatedClient
from snapvault_client.api.documents import count, index
from snapvault_client.api.indices import indices_create, indices_delete, indices_refresh
from snapvault_client.api.keys import snapvault_rotate_key, snapvault_rotate_key_status
from snapvault_client.api.node import nodes_reload_secure_settings
from snapvault_client.api.repositories import (
    snapshot_create_repository,
    snapshot_get_repository_1,
    snapvault_pause_repository,
    snapvault_resume_repository,
)
from snapvault_client.api.cat import cat_snapshots_1
from snapvault_client.api.slm import (
    slm_execute_lifecycle,
    slm_get_lifecycle_1,
    slm_get_stats,
    slm_put_lifecycle,
)
from snapvault_client.api.snapshots import (
    snapshot_create,
    snapshot_delete,
    snapshot_get,
    snapshot_restore,
    snapshot_status_2,
)
from snapvault_client.models import (
    CreateIndexBody,
    CreateSnapshotBody,
    ErrorBody,
    IndexBody,
    PauseRequest,
    PolicyConfigBody,
    PutPolicyBody,
    PutRepositoryBody,
    RestoreBody,
    RotateKeyRequest,
    RotationMode,
    RotationPhase,
    SimpleErrorBody,
)

BASE, PASSWORD, FRESH_KEY = sys.argv[1], sys.argv[2], sys.argv[3]
token = base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
client = AuthenticatedClient(
    base_url=BASE, token=token, prefix="Basic", raise_on_unexpected_status=True, timeout=60
)


class ElasticsearchError(Exception):
    """An error answer, as the generated ErrorBody model."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        kind = body.error.type_ if isinstance(body, ErrorBody) else body.error
        super().__init__(f"{status} {kind}")

    @property
    def type(self):
        return self.body.error.type_


def call(endpoint, **kwargs):
    r = endpoint.sync_detailed(client=client, **kwargs)
    if r.status_code >= 400:
        assert isinstance(r.parsed, (ErrorBody, SimpleErrorBody)), (r.status_code, r.content)
        raise ElasticsearchError(int(r.status_code), r.parsed)
    assert r.parsed is not None, (endpoint.__name__, r.status_code, r.content)
    return r.parsed


def expect_error(status, kind, endpoint, **kwargs):
    try:
        call(endpoint, **kwargs)
    except ElasticsearchError as e:
        assert e.status == status, (e.status, e.body)
        assert e.type == kind, (e.type, e.body)
        assert e.body.error.root_cause and e.body.error.root_cause[0].type_ == kind
        return e
    raise AssertionError(f"{endpoint.__name__} succeeded, expected {status} {kind}")


def check(name, cond, detail=""):
    assert cond, f"{name}: {detail}"
    print(f"ok {name}")


def wait(what, pred, secs=60):
    deadline = time.time() + secs
    while True:
        v = pred()
        if v:
            return v
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# Data to protect.
created = call(indices_create, index="logs", body=CreateIndexBody.from_dict({"settings": {"number_of_shards": 2}}))
check("create index", created.acknowledged)
for i in range(40):
    call(index, index="logs", body=IndexBody.from_dict({"n": i, "msg": f"line {i}"}))
call(indices_refresh, index="logs")
check("count", call(count, index="logs").count == 40)

# Register a repository and read it back.
ack = call(
    snapshot_create_repository,
    repository="vault",
    body=PutRepositoryBody.from_dict({"type": "fs", "settings": {"location": "sdk-vault"}}),
)
check("register repository", ack.acknowledged)
repo = call(snapshot_get_repository_1, repository="vault")
check("get repository", repo.additional_properties["vault"].type_ == "fs", repo)

# Snapshot without waiting: accepted at once, then visible as SUCCESS.
accepted = call(snapshot_create, repository="vault", snapshot="nowait", body=CreateSnapshotBody(indices="logs"))
check("snapshot without waiting is accepted", accepted.accepted is True, accepted)


def nowait_done():
    got = call(snapshot_get, repository="vault", snapshot="nowait")
    return got.snapshots and got.snapshots[0].state == "SUCCESS" and got


wait("the unwaited snapshot", nowait_done)

# Snapshot waiting for completion: the answer carries the snapshot.
done = call(
    snapshot_create,
    repository="vault",
    snapshot="waited",
    body=CreateSnapshotBody(indices=["logs"]),
    wait_for_completion=True,
)
check("snapshot with waiting", done.snapshot.state == "SUCCESS" and done.snapshot.snapshot == "waited", done)
check("its shards", done.snapshot.shards.total == 2 and done.snapshot.shards.failed == 0)

# Listing, _cat and status.
listed = call(snapshot_get, repository="vault", snapshot="_all")
names = sorted(s.snapshot for s in listed.snapshots)
check("list", names == ["nowait", "waited"], names)
cat = call(cat_snapshots_1, repository="vault")
check("_cat/snapshots", "nowait" in cat and "waited" in cat, cat)
status = call(snapshot_status_2, repository="vault", snapshot="waited")
st = status.snapshots[0]
check("status", st.state == "SUCCESS" and st.shards_stats.done == 2, st)

# Restore under a new name; the documents come back.
restored = call(
    snapshot_restore,
    repository="vault",
    snapshot="waited",
    body=RestoreBody(indices="logs", rename_pattern="logs", rename_replacement="restored"),
    wait_for_completion=True,
)
check("restore", restored.snapshot.shards.successful == 2, restored)
call(indices_refresh, index="restored")
check("restored documents", call(count, index="restored").count == 40)

# Rotate the master key and read the rotation's progress.
call(nodes_reload_secure_settings)
started = call(snapvault_rotate_key, repository="vault", body=RotateKeyRequest(key_id=FRESH_KEY, mode=RotationMode.REWRAP))
check("rotation accepted", started is not None)


def rotated():
    state = call(snapvault_rotate_key_status, repository="vault")
    rotation = state.rotation
    return rotation and rotation.phase == RotationPhase.COMPLETED and state


state = wait("the rotation", rotated)
check("rotation done", state.active_key == FRESH_KEY, state)
after = call(
    snapshot_create,
    repository="vault",
    snapshot="after-rotation",
    body=CreateSnapshotBody(indices="logs"),
    wait_for_completion=True,
)
check("snapshot under the new key", after.snapshot.state == "SUCCESS")

# Pause: new snapshots are refused with the reason, as a typed error.
paused = call(snapvault_pause_repository, repository="vault", body=PauseRequest(reason="sdk maintenance"))
check("pause", paused.acknowledged and paused.changed)
e = expect_error(
    409,
    "repository_paused_exception",
    snapshot_create,
    repository="vault",
    snapshot="while-paused",
    body=CreateSnapshotBody(indices="logs"),
    wait_for_completion=True,
)
check("paused reason in the error", "sdk maintenance" in e.body.error.reason, e.body.error.reason)
call(snapvault_resume_repository, repository="vault")

# An SLM policy, run by hand; the snapshot carries the policy.
policy = PutPolicyBody(
    name="<nightly-{now/d}>",
    schedule="0 30 1 * * ?",
    repository="vault",
    config=PolicyConfigBody.from_dict({"indices": ["logs"]}),
)
check("put policy", call(slm_put_lifecycle, policy_id="nightly", body=policy).acknowledged)
run = call(slm_execute_lifecycle, policy_id="nightly")
check("execute policy", run.snapshot_name.startswith("nightly-"), run)
got = call(slm_get_lifecycle_1, policy_id="nightly")
item = got.additional_properties["nightly"]
check("policy read back", item.version == 1 and item.policy.schedule == "0 30 1 * * ?", item)


def policy_ran():
    snaps = call(snapshot_get, repository="vault", snapshot=run.snapshot_name).snapshots
    return snaps and snaps[0].state == "SUCCESS" and snaps[0]


snap = wait("the policy's snapshot", policy_ran)
check("policy snapshot metadata", snap.metadata["policy"] == "nightly", snap.metadata)
stats = wait("the policy's stats", lambda: (s := call(slm_get_stats)).total_snapshots_taken >= 1 and s)
check("slm stats", stats.total_snapshots_taken >= 1)

# Errors as typed exceptions.
expect_error(404, "snapshot_missing_exception", snapshot_get, repository="vault", snapshot="nope")
expect_error(404, "repository_missing_exception", snapshot_get_repository_1, repository="nope")
expect_error(
    400,
    "invalid_snapshot_name_exception",
    snapshot_create,
    repository="vault",
    snapshot="Bad Name",
    body=CreateSnapshotBody(indices="logs"),
)
check("typed errors", True)

# Delete, and the index is gone from the listing.
call(snapshot_delete, repository="vault", snapshot="nowait")
names = sorted(s.snapshot for s in call(snapshot_get, repository="vault", snapshot="_all").snapshots)
check("delete", "nowait" not in names, names)
call(indices_delete, index="restored")
print("all checks passed")
