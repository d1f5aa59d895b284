#!/bin/sh
# Make sure a Chromium binary exists for the browser test of the web UI (tests/test_ui_browser.py).
# Idempotent: does nothing when one is found. Otherwise installs Debian's chromium + chromium-driver when
# running as root with apt-get (Playwright's own browser download is not used), else prints a warning; the
# browser test then skips itself, saying why. Never fails the build.
set -u

find_chromium() {
    if [ -n "${CHROMIUM:-}" ] && [ -x "${CHROMIUM}" ]; then
        echo "${CHROMIUM}"
        return 0
    fi
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if found=$(find_chromium); then
    echo "ensure_chromium: using $found"
    exit 0
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "ensure_chromium: no Chromium found; installing Debian's chromium and chromium-driver"
    if DEBIAN_FRONTEND=noninteractive apt-get update -q \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; then
        if found=$(find_chromium); then
            echo "ensure_chromium: installed $found"
            exit 0
        fi
    fi
    echo "ensure_chromium: WARNING: installing chromium failed; the browser test of the web UI will be skipped" >&2
    exit 0
fi

echo "ensure_chromium: WARNING: no Chromium binary and no way to install it here (needs root and apt-get);" >&2
echo "ensure_chromium: install chromium yourself (or set CHROMIUM=/path/to/chrome); the browser test will be skipped" >&2
exit 0
