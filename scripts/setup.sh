#!/usr/bin/env bash
# Installs what building and testing Hearth needs, skipping whatever is already there.
# Safe to run again: every step first checks for the exact version it wants.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen crate pinned in Cargo.toml
say() { printf '[setup] %s\n' "$*"; }

# Headless Chromium and its WebDriver, for wasm-bindgen-test and Playwright.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  say "installing Debian chromium and chromium-driver"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# Rust targets: wasm32 for the module, x86_64-unknown-none to prove the engine needs no std.
for target in wasm32-unknown-unknown x86_64-unknown-none; do
  if ! rustup target list --installed | grep -qx "$target"; then
    say "adding rust target $target"
    rustup target add "$target"
  fi
done

for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    say "adding rust component $component"
    rustup component add "$component"
  fi
done

# wasm-bindgen CLI (and its test runner), exactly the crate's version.
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  # Not --locked: its lock file names a webpki-roots release the registry may not serve.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
grep -q "name = \"wasm-bindgen\"" Cargo.lock 2>/dev/null \
  && ! grep -A1 'name = "wasm-bindgen"$' Cargo.lock | grep -q "version = \"$WASM_BINDGEN_VERSION\"" \
  && { echo "Cargo.lock's wasm-bindgen differs from the CLI $WASM_BINDGEN_VERSION" >&2; exit 1; }

# npm packages (test tools, Vite, wasm-opt): reinstall only when the lock file changed, or when
# better-sqlite3 (optional, so npm goes on without it when its build fails or is cut short)
# does not load.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.hearth-installed-lock \
  || ! node -e 'require("better-sqlite3")' 2>/dev/null; then
  say "installing npm packages (npm ci)"
  # better-sqlite3 (for `hearth serve`) compiles against Node's headers; where the system
  # Node ships them, use those rather than fetching a copy.
  if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then
    export npm_config_nodedir=/usr
  fi
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.hearth-installed-lock
fi
say "tools ready"
