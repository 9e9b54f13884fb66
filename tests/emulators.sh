# Installs (once, under target/) and starts on free loopback ports the
# object-store emulators that the tests and bench/backends.sh use, and
# exports their endpoints; sourced, so the caller's EXIT trap stops them:
# - a Python virtual environment with the official Elasticsearch client,
#   moto (an S3 emulator that honours conditional writes), gcp-storage-emulator
#   (a GCS emulator that ignores them) and the Azure Blob SDK (to create test
#   containers), and schemathesis (the OpenAPI fuzzer of tests/it/schema.rs);
#   from npm, Azurite (the Azure Blob emulator) and the official
#   Elasticsearch JavaScript client.
# A venv copied from another checkout keeps that checkout's path in its
# scripts' first line; it is rebuilt.
mkdir -p target
venv_ok() {
  target/venv/bin/python -c 'import elasticsearch, moto, azure.storage.blob, gcp_storage_emulator, schemathesis' 2>/dev/null &&
    head -1 target/venv/bin/schemathesis | grep -qF "$PWD/target/venv/bin/"
}
if ! venv_ok; then
  rm -rf target/venv
  python3 -m venv target/venv
  target/venv/bin/pip install --quiet --disable-pip-version-check \
    'elasticsearch>=8.19,<9' 'moto[server]>=5,<6' 'azure-storage-blob>=12,<13' \
    'gcp-storage-emulator>=2024,<2027' 'schemathesis==4.32.5'
fi
if [ ! -x target/node/node_modules/.bin/azurite-blob ] || [ ! -d target/node/node_modules/@elastic/elasticsearch ]; then
  mkdir -p target/node
  npm install --silent --no-audit --no-fund --prefix target/node 'azurite@3' '@elastic/elasticsearch@8'
fi
export SNAPVAULT_TEST_NODE_MODULES="$PWD/target/node/node_modules"
export SNAPVAULT_TEST_PYTHON="$PWD/target/venv/bin/python"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 60); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "emulator on port $1 did not start" >&2
  return 1
}
s3_port=$(free_port)
# moto, with writes made atomic (see the script: its own If-None-Match check races).
target/venv/bin/python tests/clients/moto_atomic.py 127.0.0.1 "$s3_port" > target/moto.log 2>&1 &
pids=$!
trap 'kill $pids 2>/dev/null || true' EXIT
az_port=$(free_port)
rm -rf target/azurite
target/node/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$az_port" \
  --location target/azurite --silent --disableTelemetry --skipApiVersionCheck > target/azurite.log 2>&1 &
pids="$pids $!"
gcs_port=$(free_port)
target/venv/bin/gcp-storage-emulator start --host 127.0.0.1 --port "$gcs_port" --in-memory \
  > target/gcs-emulator.log 2>&1 &
pids="$pids $!"
wait_port "$s3_port"
wait_port "$az_port"
wait_port "$gcs_port"
export SNAPVAULT_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export SNAPVAULT_TEST_AZURE_ENDPOINT="http://127.0.0.1:$az_port"
export SNAPVAULT_TEST_GCS_ENDPOINT="http://127.0.0.1:$gcs_port"

