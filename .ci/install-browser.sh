#!/usr/bin/env bash
# Install the browser used by tests/test_browser.py (marker "browser"): Debian's chromium.
#
# Idempotent: does nothing when /usr/bin/chromium already runs. Playwright drives this binary
# through executable_path; `playwright install` is never used (it downloads its own browser
# builds, which CI cannot fetch). Fonts are installed so screenshots show readable text.
set -euo pipefail

if [ -x /usr/bin/chromium ] && /usr/bin/chromium --headless --no-sandbox --version >/dev/null 2>&1; then
    echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null) already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    chromium fonts-dejavu-core fonts-liberation ca-certificates

/usr/bin/chromium --headless --no-sandbox --version
