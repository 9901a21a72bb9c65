#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then formatting, lints, docs, every Rust
# test (unit tests and end-to-end tests that start real master/worker processes), and the Python
# tests (offline Kubernetes manifest validation with real validators).
#
# The cargo target dir is cached outside the clone (CARGO_TARGET_DIR, default
# ~/.cache/alluvium/target) so repeated runs on one machine do not rebuild everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ALLUVIUM_SETUP_PYTHON=1 ./scripts/setup.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/alluvium/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc --no-deps (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "cargo test (unit and end-to-end)"
cargo test --workspace --no-fail-fast

# Python real-client and manifest tests, in a venv cached beside the target dir.
py_reqs=()
for r in e2e/*/requirements.txt; do [[ -f $r ]] && py_reqs+=("$r"); done
if ((${#py_reqs[@]})); then
  venv="${ALLUVIUM_VENV:-$HOME/.cache/alluvium/venv}"
  step "python venv $venv"
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  stamp="$venv/.requirements.sha"
  want=$(cat "${py_reqs[@]}" | sha256sum | cut -d' ' -f1)
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    "$venv/bin/pip" install -q --upgrade pip
    for r in "${py_reqs[@]}"; do "$venv/bin/pip" install -q -r "$r"; done
    echo "$want" > "$stamp"
  fi
  export ALLUVIUM_BIN="$CARGO_TARGET_DIR/debug/alluvium"
  step "pytest e2e"
  "$venv/bin/python" -m pytest -q e2e
fi
