#!/usr/bin/env bash
# Installs Debian's Chromium + ChromeDriver and Playwright's Python client (never `playwright install`,
# which downloads a browser build). Used by the browser test; harmless to rerun.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != "0" ] && ! command -v sudo >/dev/null; then
  echo "install_browser: not root and no sudo; the browser test will be skipped" >&2; exit 1
fi
SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
$SUDO apt-get update -qq >/dev/null 2>&1 || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
  || { echo "install_browser: apt-get could not install chromium; the browser test will be skipped" >&2; exit 1; }
