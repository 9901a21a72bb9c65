#!/usr/bin/env bash
# Installs what building and testing Alluvium needs on Debian 12 / Ubuntu, and only what is
# missing. Safe to run again. Called by scripts/local.sh and scripts/test.sh.
#   - clang, libclang-dev: bindgen for the RocksDB bindings
#   - librocksdb-dev: RocksDB itself (linked, not compiled: see .cargo/config.toml)
#   - fuse3: FUSE mounts (fusermount3); fio: storage benchmarks and FUSE tests
#   - python3-venv: the real-client test environment
#   - chromium: the web UI test (e2e/ui) drives it headless through Playwright
#   - etcd-server, containerd, runc, containernetworking-plugins, busybox-static: the real
#     single-node Kubernetes cluster of e2e/cluster (the kit in ../shared/k8s brings the rest)
set -euo pipefail

packages=(clang libclang-dev librocksdb-dev fuse3 fio pkg-config chromium
  etcd-server containerd runc containernetworking-plugins busybox-static)
if [[ "${ALLUVIUM_SETUP_PYTHON:-0}" == 1 ]] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  packages+=(python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (https://rustup.rs) and run again" >&2
  exit 1
fi
