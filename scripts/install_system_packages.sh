#!/usr/bin/env bash
# Debian packages for OpenCV's GUI build (libGL, GLib), the window tests (Xvfb, xdotool, xwininfo,
# ImageMagick's import) and the web page's test (Chromium). Installs only what is missing; says so and goes
# on where it cannot install (those tests then skip).
set -euo pipefail
packages=(libgl1 libglib2.0-0 xvfb xdotool x11-utils imagemagick chromium)
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    echo "no apt-get here: install ${packages[*]} (or your system's equivalents) for the window tests" >&2
    exit 0
fi
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    echo "cannot install ${missing[*]} (not root, no sudo): the window tests will skip" >&2
    exit 0
fi
"${sudo[@]}" apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
