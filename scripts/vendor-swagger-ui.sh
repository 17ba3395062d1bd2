#!/usr/bin/env bash
# Refreshes the vendored Swagger UI (web/vendor/swagger-ui), the renderer of the API reference
# page (/api/docs/), from the npm registry.
# Usage: scripts/vendor-swagger-ui.sh VERSION      (for example 5.35.0)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/vendor-swagger-ui.sh VERSION}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null && tar xzf swagger-ui-dist-*.tgz)
pkg=$work/package
dest=web/vendor/swagger-ui
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "$pkg/$f" "$dest/$f"
done
js=$(sha256sum "$dest/swagger-ui-bundle.js" | cut -d' ' -f1)
css=$(sha256sum "$dest/swagger-ui.css" | cut -d' ' -f1)
sed -i -e "s/swagger-ui-dist\` [0-9.]* from/swagger-ui-dist\` $version from/" \
  -e "s#swagger-ui-dist-[0-9.]*\.tgz#swagger-ui-dist-$version.tgz#" \
  -e "s/bundle SHA-256 \`[0-9a-f]*\`/bundle SHA-256 \`$js\`/" \
  -e "s/stylesheet SHA-256 \`[0-9a-f]*\`/stylesheet SHA-256 \`$css\`/" "$dest/VENDOR.md"
echo "vendored swagger-ui-dist $version; run the browser tests"
