#!/usr/bin/env bash
# `bun run k3d:down`: deletes the k3d cluster made by `bun run k3d:up`, with its
# volumes (the stores' data). k3d/secrets.env is kept for the next k3d:up.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=m3dio # k3d/cluster.yaml metadata.name

command -v k3d >/dev/null || { echo "k3d:down needs k3d on the PATH" >&2; exit 1; }
if k3d cluster get "$CLUSTER" >/dev/null 2>&1; then
  k3d cluster delete "$CLUSTER"
else
  echo "no k3d cluster named $CLUSTER"
fi
