#!/usr/bin/env bash
# In-page segment decryption (WebCrypto AES-256-GCM in headless Chromium, the viewer page's
# own code) per segment at 480p, 720p and 1080p, beside the same decryption in Rust in the
# same run. Prints a Markdown table for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
ensure_packages "${BUILD_PACKAGES[@]}" chromium chromium-driver
cargo test --release --locked --test it -- --ignored --nocapture --test-threads 1 \
  bench_in_page_decryption 2>/dev/null | grep '^|'
