#!/usr/bin/env bash
# Installs Helios hfs for the tests (make test), skipping it when the right version is there.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[setup] %s\n' "$*"; }

# Helios hfs, an independent R4 server, as the second peer of the sync tests (tests/sync).
# A debug build with only R4 and SQLite (about 13 minutes once); the binary is kept in
# ~/.cache/hearth-hfs between runs. It links libssl: pkg-config and libssl-dev build it.
HFS_VERSION=0.2.7
HFS_ROOT="$HOME/.cache/hearth-hfs"
if ! "$HFS_ROOT/bin/hfs" --version 2>/dev/null | grep -q "$HFS_VERSION"; then
  if ! command -v pkg-config >/dev/null || ! dpkg -s libssl-dev >/dev/null 2>&1; then
    say "installing pkg-config and libssl-dev (to build Helios hfs)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pkg-config libssl-dev >/dev/null
  fi
  say "installing Helios hfs $HFS_VERSION (about 13 minutes, once)"
  CARGO_TARGET_DIR="$HFS_ROOT/target" CARGO_PROFILE_DEV_DEBUG=0 cargo install helios-hfs \
    --version "$HFS_VERSION" --locked --debug --no-default-features \
    --features R4,sqlite,skip-r6-download --root "$HFS_ROOT"
  rm -rf "$HFS_ROOT/target"
fi
