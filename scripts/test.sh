#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine (as root), then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dovecot >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null
  # The packaged system service is not used: the tests start private instances.
  (service dovecot stop || true) >/dev/null 2>&1
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"

# PostgreSQL is part of the development machines; start it if it is installed but down.
if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi

bash scripts/lint-dockerfile.sh

python3 -m pytest -q "$@"
