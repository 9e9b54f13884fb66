"""moto's S3 server, with every writing request handled whole under one lock.

moto checks `If-None-Match: *` (and `If-Match`) and then stores the object:
two steps that its threaded server can interleave, so under load two creates
of one name can both succeed, which S3 never allows (seen in the
one-winner-per-round test on a loaded 2-core machine). Serialising the
requests that write (PUT, POST, DELETE) makes each one atomic as on S3;
reads stay concurrent. Usage: moto_atomic.py HOST PORT.
"""

import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


class AtomicWrites:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return self.app(environ, start_response)
        with self.lock:
            # The body is produced inside the lock too: moto builds it as
            # a list, so nothing of the request runs after the release.
            return list(self.app(environ, start_response))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, AtomicWrites(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
