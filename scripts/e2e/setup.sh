#!/usr/bin/env bash
# Brings up a real VS Code (code-server 4.100.3 = VS Code 1.100.3) offline for the end-to-end tests.
# Idempotent: every step checks its own result first, so a second run takes a second.
# Everything lands in .cache/e2e/ (git-ignored). Needs: the npm registry and apt (as root, or sudo).
# Why each step exists: ../../docs or /work/shared/FIELD-NOTES.md "Real VS Code for end-to-end tests" —
# code-server's own postinstall downloads ripgrep and reinstalls VS Code's modules from the network,
# so we skip it and do its steps by hand, rebuilding the native modules for this Node.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache/e2e"
TOOL="$CACHE/code-server"
CS_VERSION="4.100.3"
CS="$TOOL/node_modules/code-server"
VSC="$CS/lib/vscode"
START=$(date +%s)
log() { echo "[e2e-setup +$(( $(date +%s) - START ))s] $*"; }

mkdir -p "$CACHE"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

# 1. system packages: kerberos headers (code-server's native kerberos module), ripgrep (VS Code search), chromium.
need=()
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
command -v rg >/dev/null 2>&1 || need+=(ripgrep)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}" >"$CACHE/apt.log" 2>&1; then
    $SUDO apt-get update >>"$CACHE/apt.log" 2>&1
    $SUDO apt-get install -y --no-install-recommends "${need[@]}" >>"$CACHE/apt.log" 2>&1 || { tail -30 "$CACHE/apt.log"; exit 1; }
  fi
fi

# 2. code-server itself, without its network-bound postinstall.
if [ ! -f "$CS/package.json" ] || ! grep -q "\"version\": \"$CS_VERSION\"" "$CS/package.json"; then
  log "npm install code-server@$CS_VERSION --ignore-scripts"
  mkdir -p "$TOOL"
  [ -f "$TOOL/package.json" ] || echo '{"name":"haqa-e2e-tools","private":true}' >"$TOOL/package.json"
  (cd "$TOOL" && npm install --no-audit --no-fund --ignore-scripts "code-server@$CS_VERSION" >/dev/null)
fi

# 3. VS Code's own modules, native ones rebuilt for this Node, ripgrep from the system.
if [ ! -f "$VSC/.haqa-modules-ok" ]; then
  log "lib/vscode: npm install --omit=dev --ignore-scripts"
  (cd "$VSC" && npm install --no-audit --no-fund --omit=dev --ignore-scripts >/dev/null)
  log "lib/vscode: npm rebuild native modules (about a minute)"
  # node-pty's own post-install script errors, but pty.node is built: judge by the file, not the exit code.
  # One at a time: npm stops a combined rebuild at the first failing post-install script.
  : >"$CACHE/rebuild.log"
  for m in kerberos node-pty @parcel/watcher @vscode/spdlog; do
    (cd "$VSC" && npm rebuild "$m" >>"$CACHE/rebuild.log" 2>&1) || echo "(npm rebuild $m exited non-zero; checking its binary)" >>"$CACHE/rebuild.log"
  done
  # Judge by loading each module (@parcel/watcher loads a prebuilt N-API binary, the others their build).
  for m in kerberos node-pty @parcel/watcher @vscode/spdlog; do
    (cd "$VSC" && node -e "require('$m')" 2>>"$CACHE/rebuild.log") || { tail -40 "$CACHE/rebuild.log"; echo "$m does not load after the rebuild" >&2; exit 1; }
  done
  touch "$VSC/.haqa-modules-ok"
fi
if [ ! -x "$VSC/node_modules/@vscode/ripgrep/bin/rg" ]; then
  mkdir -p "$VSC/node_modules/@vscode/ripgrep/bin"
  cp "$(command -v rg)" "$VSC/node_modules/@vscode/ripgrep/bin/rg"
fi
[ -e "$VSC/node_modules.asar" ] || ln -s node_modules "$VSC/node_modules.asar"
# the two links code-server's postinstall.sh makes
[ -e "$VSC/bin/remote-cli/code-server" ] || ln -s code-linux.sh "$VSC/bin/remote-cli/code-server"
[ -e "$VSC/bin/helpers/browser.sh" ] || ln -s browser-linux.sh "$VSC/bin/helpers/browser.sh"
if [ ! -f "$VSC/extensions/.haqa-modules-ok" ]; then
  log "lib/vscode/extensions: npm install --omit=dev --ignore-scripts"
  (cd "$VSC/extensions" && npm install --no-audit --no-fund --omit=dev --ignore-scripts >/dev/null)
  touch "$VSC/extensions/.haqa-modules-ok"
fi

# 4. argon2 (password hashing; loaded at start even with --auth none) built for this Node.
if [ ! -f "$TOOL/.haqa-argon2-ok" ]; then
  log "npm rebuild argon2 --build-from-source"
  (cd "$TOOL" && npm rebuild argon2 --build-from-source >"$CACHE/argon2.log" 2>&1) || { tail -30 "$CACHE/argon2.log"; exit 1; }
  touch "$TOOL/.haqa-argon2-ok"
fi

# 5. playwright-core comes from the repo's own node_modules (a devDependency); chromium from Debian.
[ -f "$ROOT/node_modules/playwright-core/package.json" ] || { echo "playwright-core missing: run npm ci" >&2; exit 1; }
log "ready: $CS (chromium $(command -v chromium))"
