"""A fault-injecting HTTP proxy between snapvault and an object-store
emulator, for the fault-injection tests.

Usage: faulty_proxy.py UPSTREAM_URL PORT_FILE

Listens on a free loopback port (written to PORT_FILE) and forwards every
request to UPSTREAM_URL. Faults are set at run time by a control request
`PUT /__faults` with a JSON body, so one proxy serves a whole test:
  {"error_rate": 0.2,      fraction answered 503 without forwarding
   "ambiguous_rate": 0.05, fraction forwarded, then answered 500 (the
                           change happened but the client cannot know)
   "max_delay_ms": 50,     uniform random delay before forwarding
   "commit_path": "/index-", "commit_ambiguous_rate": 0.5,
                           PUTs whose path contains commit_path are lost
                           after the change at this rate instead
   "seed": 7}
`GET /__faults` returns the settings and counters of injected faults.
"""

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = urllib.parse.urlparse(sys.argv[1])
LOCK = threading.Lock()
FAULTS = {
    "error_rate": 0.0,
    "ambiguous_rate": 0.0,
    "max_delay_ms": 0,
    "commit_path": "",
    "commit_ambiguous_rate": 0.0,
}
COUNTS = {"requests": 0, "errors": 0, "ambiguous": 0, "ambiguous_commits": 0}
RNG = random.Random(0)
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/xml"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_one(self):
        body = self.read_body()
        if self.path.startswith("/__faults"):
            with LOCK:
                if self.command == "PUT":
                    cfg = json.loads(body or b"{}")
                    FAULTS.update({k: cfg.get(k, type(v)()) for k, v in FAULTS.items()})
                    RNG.seed(cfg.get("seed", 0))
                    for k in COUNTS:
                        COUNTS[k] = 0
                out = json.dumps({"faults": FAULTS, "counts": COUNTS}).encode()
            return self.reply(200, out, "application/json")
        with LOCK:
            COUNTS["requests"] += 1
            roll = RNG.random()
            delay = RNG.random() * FAULTS["max_delay_ms"] / 1000.0
            fail = roll < FAULTS["error_rate"]
            ambiguous = not fail and roll < FAULTS["error_rate"] + FAULTS["ambiguous_rate"]
            commit = (
                self.command == "PUT"
                and FAULTS["commit_path"]
                and FAULTS["commit_path"] in self.path
            )
            if commit and not fail:
                ambiguous = RNG.random() < FAULTS["commit_ambiguous_rate"]
                if ambiguous:
                    COUNTS["ambiguous_commits"] += 1
            if fail:
                COUNTS["errors"] += 1
            if ambiguous:
                COUNTS["ambiguous"] += 1
        if delay:
            time.sleep(delay)
        if fail:
            return self.reply(
                503,
                b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
                b"<Message>injected fault</Message></Error>",
            )
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if body:
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if ambiguous:
            return self.reply(
                500,
                b"<?xml version=\"1.0\"?><Error><Code>InternalError</Code>"
                b"<Message>injected fault after the change</Message></Error>",
            )
        self.send_response(resp.status)
        head = self.command == "HEAD"
        for k, v in resp.getheaders():
            if k.lower() not in HOP and (head or k.lower() != "content-length"):
                self.send_header(k, v)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hangs up (a timeout, a closed pooled connection) is
        # part of the weather here, not an error worth a traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


server = Server(("127.0.0.1", 0), Handler)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.replace(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
