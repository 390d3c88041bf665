#!/usr/bin/env bash
# broker/broker.sh: `warren broker` for a checkout whose CLI is not built yet. Builds warren
# (`npm run build`) when dist/ lacks the CLI, then runs `warren broker COMMAND` (start when none
# is given); the logic (start, stop, status, and --help on each) lives in src/cli/broker.ts.
#
#   bash broker/broker.sh [start|stop|status] [--help]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLI="$ROOT/dist/src/cli/main.js"

if ! command -v node >/dev/null 2>&1; then
  echo "broker: node is not installed: install Node.js 20 or later (https://nodejs.org), then run this again" >&2
  exit 1
fi
if [ ! -f "$CLI" ]; then
  if [ ! -d "$ROOT/node_modules" ]; then
    echo "broker: $ROOT has no node_modules: run \`npm install\` there (it builds warren too), then run this again" >&2
    exit 1
  fi
  echo "broker: $CLI is missing: building warren (npm run build)"
  (cd "$ROOT" && npm run build --silent)
fi
[ "$#" -gt 0 ] || set -- start
exec node "$CLI" broker "$@"
