#!/usr/bin/env sh
# Generates the Prisma client into src/generated/prisma. Runs as the root package's `postinstall`, so a
# clean clone works after `npm ci`; rerun it (or `npm run postinstall`) after editing prisma/schema.prisma.
#
# The `prisma-client` generator needs no native engine, but the CLI still resolves the schema engine
# binary, whose download host may be unreachable. PRISMA_SCHEMA_ENGINE_BINARY points it at a stub that
# is never executed by `generate` (and fails loudly if anything ever does run it).
set -eu
cd "$(dirname "$0")/.."
if [ ! -f node_modules/prisma/build/index.js ]; then
  # A production install (--omit=dev) has no Prisma CLI: the committed client in src/generated is used.
  echo "prisma-generate: Prisma CLI not installed; using the committed client in src/generated/prisma" >&2
  exit 0
fi
stub="node_modules/.cache/apix/schema-engine-stub"
if [ -z "${PRISMA_SCHEMA_ENGINE_BINARY:-}" ]; then
  mkdir -p "$(dirname "$stub")"
  printf '#!/bin/sh\necho "schema engine unavailable: APIX applies prisma/migrations with apix migrate" >&2\nexit 1\n' >"$stub"
  chmod +x "$stub"
  PRISMA_SCHEMA_ENGINE_BINARY="$PWD/$stub"
  export PRISMA_SCHEMA_ENGINE_BINARY
fi
export PRISMA_HIDE_UPDATE_MESSAGE=1 CHECKPOINT_DISABLE=1
exec node node_modules/prisma/build/index.js generate --schema prisma/schema.prisma "$@"
