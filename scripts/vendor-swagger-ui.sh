#!/usr/bin/env bash
# The Swagger UI assets /docs serves (src/runplane/server/swagger/), taken unchanged from
# npm's swagger-ui-dist: 5.x reads OpenAPI 3.1, the version FastAPI describes the API in.
# Run it to update them; the files are committed, so nothing is fetched at install or run.
set -euo pipefail
VERSION="${1:-5.35.0}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null && tar xzf ./*.tgz)
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE; do
    cp "$work/package/$f" src/runplane/server/swagger/
done
echo "$VERSION" > src/runplane/server/swagger/VERSION
