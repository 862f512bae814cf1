#!/usr/bin/env bash
# Regenerate werk.sparkplug.sparkplug_b_pb2 and its typed stub (mypy-protobuf) from
# src/werk/sparkplug/sparkplug_b.proto. Run from anywhere; needs the dev virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
"$VENV/bin/python" -m grpc_tools.protoc -I src \
    --python_out=src \
    --plugin=protoc-gen-mypy="$VENV/bin/protoc-gen-mypy" --mypy_out=src \
    src/werk/sparkplug/sparkplug_b.proto
"$VENV/bin/python" -c "from werk.sparkplug import sparkplug_b_pb2; sparkplug_b_pb2.Payload()"
echo "generated src/werk/sparkplug/sparkplug_b_pb2.py and sparkplug_b_pb2.pyi"
