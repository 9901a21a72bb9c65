#!/usr/bin/env bash
# Builds Alluvium (release) and runs `alluvium local` with the given flags, e.g.
#   ./scripts/local.sh --mem 2GiB --data-dir ./alluvium-data
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --bin alluvium
exec ./target/release/alluvium local "$@"
