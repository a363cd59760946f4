#!/usr/bin/env bash
# Debian packages: libGL and GLib, which OpenCV's GUI build loads on import; python3-venv and make for the
# set-up itself; Xvfb, xdotool, xwininfo and ImageMagick's import for the window tests; Chromium for the web
# page's test. Installs only what is missing. Where it cannot install (no apt-get, not root and no sudo,
# no network), it says so and goes on: the window and page tests then skip.
set -uo pipefail
packages=(libgl1 libglib2.0-0 python3-venv make xvfb xdotool x11-utils imagemagick chromium)
if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    echo "no apt-get here: install ${packages[*]} (or your system's equivalents) for the window tests" >&2
    exit 0
fi
missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    echo "cannot install ${missing[*]} (not root, no sudo): the window and page tests will skip" >&2
    exit 0
fi
if ! { "${sudo[@]}" apt-get update -q >/dev/null &&
       "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }; then
    echo "could not install ${missing[*]}: the tests that need them will skip or fail" >&2
fi
exit 0
