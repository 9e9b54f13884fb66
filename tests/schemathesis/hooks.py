"""Schemathesis hooks for tests/it/schema.rs (loaded through SCHEMATHESIS_HOOKS).

`_bulk` bodies are `application/x-ndjson`, which schemathesis cannot
serialise by itself; the document describes them as a string, so they go
on the wire as schemathesis sends `text/plain` strings: the generated
text, as is.
"""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
