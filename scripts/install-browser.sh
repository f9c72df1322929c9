#!/usr/bin/env bash
# A headless browser for the tests that open reports (tests/test_report.py), where no Chromium or Chrome is
# installed: Debian's Chromium through apt-get, as root (CI) or with sudo that needs no password. Where that cannot
# be done it says so, and the test that needs the browser fails with the same advice.
set -uo pipefail
for name in chromium chromium-browser google-chrome google-chrome-stable; do
    command -v "$name" >/dev/null && exit 0
done
if ! command -v apt-get >/dev/null; then
    echo "install-browser: no apt-get here: install Chromium or Chrome for the report tests" >&2
    exit 0
fi
sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
    if ! sudo -n true 2>/dev/null; then  # never a password prompt in the middle of the tests
        echo "install-browser: run 'sudo apt-get install chromium' for the report tests" >&2
        exit 0
    fi
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
install() { $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null; }
install || { $sudo apt-get update -q >/dev/null && install; } ||
    echo "install-browser: apt-get could not install chromium: the report tests need it" >&2
