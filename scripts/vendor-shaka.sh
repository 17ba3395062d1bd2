#!/usr/bin/env bash
# Refreshes the vendored Shaka Player (web/vendor/shaka-player) from the npm registry.
# Usage: scripts/vendor-shaka.sh VERSION      (for example 5.2.12)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/vendor-shaka.sh VERSION}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "shaka-player@$version" >/dev/null && tar xzf shaka-player-*.tgz)
pkg=$work/package
dest=web/vendor/shaka-player
cp "$pkg/dist/shaka-player.compiled.js" "$dest/"
cp "$pkg/LICENSE" "$dest/LICENSE"
cp "$pkg/third_party/cml-cmcd/LICENSE" "$dest/LICENSE.cml-cmcd"
cp "$pkg/third_party/cml-cmcd/NOTICE" "$dest/NOTICE.cml-cmcd"
cp "$pkg/third_party/language-mapping-list/LICENSE" "$dest/LICENSE.language-mapping-list"
sum=$(sha256sum "$dest/shaka-player.compiled.js" | cut -d' ' -f1)
sed -i -e "s/shaka-player\` [0-9.]* from/shaka-player\` $version from/" \
  -e "s#shaka-player-[0-9.]*\.tgz#shaka-player-$version.tgz#" \
  -e "s/SHA-256 \`[0-9a-f]*\`/SHA-256 \`$sum\`/" "$dest/VENDOR.md"
echo "vendored shaka-player $version ($sum); check $dest/third_party licences still match"
