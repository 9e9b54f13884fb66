#!/usr/bin/env python3
"""Runs YAML REST scenarios, in the format of Elasticsearch's YAML REST
tests, against a server over plain HTTP (urllib only).

    runner.py BASE_URL USER PASSWORD FILE.yml...

A file is a stream of YAML documents; each holds one entry: `setup`,
`teardown`, or a test named by its key, whose value is a list of steps:

- `do`: one API call (`snapshot.create: {repository: r, ...}`), with
  optional `catch` (`missing`, `bad_request`, `conflict`, `forbidden`,
  `unauthorized`, `unavailable`, `request`, or `/regex/` over the error
  body, compiled as it is) and `headers`. Without `catch`, any status >= 400 fails.
- `match`, `is_true`, `is_false`, `length`, `gt`, `gte`, `lt`, `lte`:
  assertions over dotted paths into the last response (`$body` is the
  whole body; `a\\.b` a key with a dot; numbers index lists). A string
  `/.../` expected value is a regular expression in verbose mode, as
  Elasticsearch's runner compiles it (whitespace in it is ignored).
- `set: {path: name}` stashes a value; `$name` then stands for it in later
  parameters, bodies and expected values.
- `skip: {reason: ...}` as a test's first step skips the test; it is
  counted and printed, never silent.

Between tests the server is wiped as Elasticsearch's runner wipes a
cluster: every snapshot, repository and index is deleted.

Prints one line per test and per file, a summary, and exits 1 on any
failure.
"""

import base64
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

# API name -> [(method, path template)], most specific first. Query
# parameters are everything not named in the chosen template, except
# `body`. The shapes follow Elasticsearch's REST specification
# (rest-api-spec/api/*.json).
APIS = {
    "snapshot.create_repository": [("PUT", "/_snapshot/{repository}")],
    "snapshot.get_repository": [("GET", "/_snapshot/{repository}"), ("GET", "/_snapshot")],
    "snapshot.delete_repository": [("DELETE", "/_snapshot/{repository}")],
    "snapshot.verify_repository": [("POST", "/_snapshot/{repository}/_verify")],
    "snapshot.cleanup_repository": [("POST", "/_snapshot/{repository}/_cleanup")],
    "snapshot.repository_analyze": [("POST", "/_snapshot/{repository}/_analyze")],
    "snapshot.repository_verify_integrity": [
        ("POST", "/_snapshot/{repository}/_verify_integrity")
    ],
    "snapshot.create": [("PUT", "/_snapshot/{repository}/{snapshot}")],
    "snapshot.get": [("GET", "/_snapshot/{repository}/{snapshot}")],
    "snapshot.delete": [("DELETE", "/_snapshot/{repository}/{snapshot}")],
    "snapshot.clone": [
        ("PUT", "/_snapshot/{repository}/{snapshot}/_clone/{target_snapshot}")
    ],
    "snapshot.restore": [("POST", "/_snapshot/{repository}/{snapshot}/_restore")],
    "snapshot.status": [
        ("GET", "/_snapshot/{repository}/{snapshot}/_status"),
        ("GET", "/_snapshot/{repository}/_status"),
        ("GET", "/_snapshot/_status"),
    ],
    "cat.snapshots": [("GET", "/_cat/snapshots/{repository}"), ("GET", "/_cat/snapshots")],
    "cat.repositories": [("GET", "/_cat/repositories")],
    "cat.indices": [("GET", "/_cat/indices/{index}"), ("GET", "/_cat/indices")],
    "indices.create": [("PUT", "/{index}")],
    "indices.delete": [("DELETE", "/{index}")],
    "indices.get": [("GET", "/{index}")],
    "indices.close": [("POST", "/{index}/_close")],
    "indices.open": [("POST", "/{index}/_open")],
    "indices.refresh": [("POST", "/{index}/_refresh"), ("POST", "/_refresh")],
    "indices.recovery": [("GET", "/{index}/_recovery"), ("GET", "/_recovery")],
    "index": [("PUT", "/{index}/_doc/{id}"), ("POST", "/{index}/_doc")],
    "bulk": [("POST", "/{index}/_bulk"), ("POST", "/_bulk")],
    "count": [("GET", "/{index}/_count"), ("GET", "/_count")],
}

CATCHES = {
    "missing": lambda s: s == 404,
    "bad_request": lambda s: s == 400,
    "conflict": lambda s: s == 409,
    "forbidden": lambda s: s == 403,
    "unauthorized": lambda s: s == 401,
    "request_timeout": lambda s: s == 408,
    "unavailable": lambda s: s == 503,
    # Any failure not named by the others, as Elasticsearch's runner reads it.
    "request": lambda s: s >= 400 and s not in (401, 403, 404, 408, 409),
}


class Failure(Exception):
    pass


class Skip(Exception):
    pass


class Response:
    def __init__(self, status, content_type, raw):
        self.status = status
        self.text = raw.decode("utf-8", "replace")
        self.body = self.text
        if content_type.startswith("application/json"):
            try:
                self.body = json.loads(self.text) if self.text else None
            except ValueError:
                pass


class Client:
    def __init__(self, base, user, password):
        self.base = base.rstrip("/")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = f"Basic {token}"

    def request(self, method, path, query=None, body=None, headers=None):
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        hdrs = {"Authorization": self.auth}
        if body is not None:
            if isinstance(body, list):
                # NDJSON (bulk): each item a line, dicts serialized.
                lines = [x if isinstance(x, str) else json.dumps(x) for x in body]
                data = ("\n".join(lines) + "\n").encode()
                hdrs["Content-Type"] = "application/x-ndjson"
            else:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return Response(r.status, r.headers.get("Content-Type", ""), r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers.get("Content-Type", ""), e.read())

    def call(self, api, params, headers=None):
        if api not in APIS:
            raise Failure(f"unknown API [{api}] (add it to the runner's table)")
        params = dict(params or {})
        body = params.pop("body", None)
        for method, template in APIS[api]:
            names = re.findall(r"{(\w+)}", template)
            if all(n in params for n in names):
                path = template
                for n in names:
                    value = query_value(params.pop(n))
                    path = path.replace("{" + n + "}", urllib.parse.quote(value, safe=",*"))
                query = {k: query_value(v) for k, v in params.items()}
                return self.request(method, path, query, body, headers)
        raise Failure(f"[{api}]: no path fits the parameters {sorted(params)}")


def query_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(query_value(x) for x in v)
    return str(v)


class Stash:
    def __init__(self):
        self.values = {}

    def resolve(self, v):
        """`$name` (whole string) is the stashed value; `${name}` inside a
        string is replaced by its text; dicts and lists are walked."""
        if isinstance(v, str):
            if v.startswith("$") and v[1:] in self.values:
                return self.values[v[1:]]
            return re.sub(
                r"\$\{(\w+)\}", lambda m: str(self.values.get(m.group(1), m.group(0))), v
            )
        if isinstance(v, dict):
            return {self.resolve(k): self.resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        return v


MISSING = object()


def lookup(body, path, stash):
    if path == "$body" or path == "":
        return body
    parts = [p.replace("\0", ".") for p in path.replace("\\.", "\0").split(".")]
    v = body
    for part in parts:
        part = stash.resolve(part)
        if isinstance(v, list):
            try:
                v = v[int(part)]
            except (ValueError, IndexError):
                return MISSING
        elif isinstance(v, dict):
            if part not in v:
                return MISSING
            v = v[part]
        else:
            return MISSING
    return v


def equal(actual, expected):
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected or actual == expected and type(actual) is type(expected)
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(actual) == float(expected)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            equal(actual[k], expected[k]) for k in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(map(equal, actual, expected))
    if isinstance(expected, str) and isinstance(actual, (int, float)):
        return str(actual) == expected
    return actual == expected


def is_regex(s):
    return isinstance(s, str) and len(s) > 1 and s.strip().startswith("/") and s.strip().endswith("/")


def regex_find(pattern, text, verbose=True):
    """`match` compiles its pattern in verbose mode (Elasticsearch's
    `Pattern.COMMENTS`), `catch` as it is."""
    flags = re.VERBOSE if verbose else 0
    return re.search(pattern.strip()[1:-1], text, flags) is not None


def missing_text(v):
    return "nothing" if v is MISSING else v


def truthy(v):
    return v is not MISSING and v not in (None, False, "", "false", 0, "0")


def short(v, limit=600):
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= limit else s[:limit] + "..."


class Runner:
    def __init__(self, client):
        self.client = client

    def run_steps(self, steps, stash, state):
        for step in steps or []:
            (kind, arg), = step.items()
            if kind == "skip":
                raise Skip(arg.get("reason", "no reason given"))
            if kind == "do":
                self.do(arg, stash, state)
                continue
            body = state.get("response").body if state.get("response") else None
            for path, expected in (arg.items() if isinstance(arg, dict) else [(arg, None)]):
                self.check(kind, path, expected, body, stash)

    def do(self, arg, stash, state):
        arg = dict(arg)
        catch = arg.pop("catch", None)
        headers = arg.pop("headers", None)
        arg.pop("warnings", None)
        arg.pop("allowed_warnings", None)
        (api, params), = arg.items()
        params = stash.resolve(params or {})
        r = self.client.call(api, params, headers)
        state["response"] = r
        if catch is None:
            if r.status >= 400:
                raise Failure(f"{api} answered {r.status}: {short(r.body)}")
            return
        if is_regex(catch):
            if r.status < 400:
                raise Failure(f"{api} succeeded ({r.status}) where {catch} was expected")
            if not regex_find(catch, r.text, verbose=False):
                raise Failure(f"{api}: error body does not match {catch}: {short(r.text)}")
            return
        if catch not in CATCHES:
            raise Failure(f"unknown catch [{catch}]")
        if not CATCHES[catch](r.status):
            raise Failure(f"{api} answered {r.status} where catch [{catch}] was expected: {short(r.body)}")

    def check(self, kind, path, expected, body, stash):
        actual = lookup(body, stash.resolve(path) if path != "$body" else path, stash)
        expected = stash.resolve(expected)
        where = f"{kind} [{path}]"
        if kind == "is_true":
            if not truthy(actual):
                raise Failure(f"{where}: expected a true value, found {short(missing_text(actual))}")
        elif kind == "is_false":
            if truthy(actual):
                raise Failure(f"{where}: expected nothing or a false value, found {short(actual)}")
        elif kind == "match":
            if is_regex(expected):
                if actual is MISSING or not regex_find(expected, actual if isinstance(actual, str) else json.dumps(actual)):
                    raise Failure(f"{where}: {short(missing_text(actual))} does not match {expected.strip()}")
            elif actual is MISSING or not equal(actual, expected):
                raise Failure(f"{where}: expected {short(expected)}, found {short(missing_text(actual))}")
        elif kind == "length":
            if actual is MISSING or not hasattr(actual, "__len__") or len(actual) != expected:
                n = len(actual) if hasattr(actual, "__len__") else missing_text(actual)
                raise Failure(f"{where}: expected length {expected}, found {n}")
        elif kind in ("gt", "gte", "lt", "lte"):
            if not isinstance(actual, (int, float)) or isinstance(actual, bool):
                raise Failure(f"{where}: expected a number, found {short(missing_text(actual))}")
            ok = {
                "gt": actual > expected,
                "gte": actual >= expected,
                "lt": actual < expected,
                "lte": actual <= expected,
            }[kind]
            if not ok:
                raise Failure(f"{where}: {actual} is not {kind} {expected}")
        elif kind == "set":
            if actual is MISSING:
                raise Failure(f"set [{path}]: nothing there to stash")
            stash.values[expected] = actual
        else:
            raise Failure(f"unknown step [{kind}]")

    def wipe(self):
        """Deletes every snapshot, repository and index, as Elasticsearch's
        runner wipes the cluster after each test."""
        repos = self.client.request("GET", "/_snapshot")
        for repo in (repos.body or {}) if isinstance(repos.body, dict) else {}:
            q = urllib.parse.quote(repo, safe="")
            for _ in range(100):
                listing = self.client.request("GET", f"/_snapshot/{q}/_all", {"verbose": "false", "ignore_unavailable": "true"})
                snaps = [s["snapshot"] for s in (listing.body or {}).get("snapshots", [])] if isinstance(listing.body, dict) else []
                if not snaps:
                    break
                names = ",".join(urllib.parse.quote(s, safe="") for s in snaps)
                r = self.client.request("DELETE", f"/_snapshot/{q}/{names}")
                if r.status >= 400:
                    # Something still runs (an asynchronous delete, say).
                    time.sleep(0.1)
            self.client.request("DELETE", f"/_snapshot/{q}")
        indices = self.client.request("GET", "/_cat/indices", {"format": "json", "h": "index"})
        for row in indices.body if isinstance(indices.body, list) else []:
            self.client.request("DELETE", "/" + urllib.parse.quote(row["index"], safe=""))

    def run_file(self, path):
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        setup, teardown, tests = [], [], []
        for d in docs:
            for name, steps in d.items():
                if name == "setup":
                    setup = steps
                elif name == "teardown":
                    teardown = steps
                else:
                    tests.append((name, steps))
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for name, steps in tests:
            stash, state = Stash(), {}
            outcome, detail = "pass", ""
            try:
                first = (steps or [{}])[0]
                if "skip" in first:
                    raise Skip(first["skip"].get("reason", "no reason given"))
                self.run_steps(setup, stash, state)
                self.run_steps(steps, stash, state)
            except Skip as e:
                outcome, detail = "skip", str(e)
            except Failure as e:
                outcome, detail = "fail", str(e)
            except Exception as e:  # a runner bug is a failure too
                outcome, detail = "fail", f"{type(e).__name__}: {e}"
            try:
                if outcome != "skip":
                    self.run_steps(teardown, stash, state)
            except (Failure, Skip) as e:
                if outcome == "pass":
                    outcome, detail = "fail", f"teardown: {e}"
            self.wipe()
            counts[outcome] += 1
            line = f"  {outcome.upper():4} {name}"
            if detail:
                line += f" -- {detail}"
            print(line, flush=True)
        return counts


def main(argv):
    if len(argv) < 5:
        print(__doc__)
        return 2
    base, user, password, files = argv[1], argv[2], argv[3], argv[4:]
    runner = Runner(Client(base, user, password))
    runner.wipe()
    total = {"pass": 0, "fail": 0, "skip": 0}
    for path in files:
        print(f"{path}", flush=True)
        counts = runner.run_file(path)
        for k in total:
            total[k] += counts[k]
        print(f"{path}: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped", flush=True)
    print(f"TOTAL: {total['pass']} passed, {total['fail']} failed, {total['skip']} skipped")
    return 1 if total["fail"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
