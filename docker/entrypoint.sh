#!/bin/bash
# The image's entry point: `mailbot ARGS…`. Before `run` (the default command) it brings the
# database schema up to date with the same global options (-v, --config FILE), so a new
# volume or a newer image never starts on missing tables; Alembic does nothing when the
# schema is current. MAILBOT_DB_UPGRADE=no skips it: with several workers on one PostgreSQL,
# let one migrator run it (compose.yaml's `migrate` service), since two upgrades of a schema
# that needs one, at the same moment, can fail one of them.
set -euo pipefail

if [[ $# -ge 1 && "${!#}" == "run" && "${MAILBOT_DB_UPGRADE:-yes}" != "no" ]]; then
    mailbot "${@:1:$#-1}" db upgrade
fi
exec mailbot "$@"
