#!/bin/sh
# Wraps the release binary into CoworkMenubar.app (UNUserNotificationCenter needs a bundle) and
# signs it ad hoc. NEVER RUN: written without a Mac (see ../README.md).
set -eu
cd "$(dirname "$0")/.."
swift build -c release
app=.build/CoworkMenubar.app
rm -rf "$app"
mkdir -p "$app/Contents/MacOS"
cp "$(swift build -c release --show-bin-path)/CoworkMenubar" "$app/Contents/MacOS/CoworkMenubar"
cp Support/Info.plist "$app/Contents/Info.plist"
codesign --force --sign - "$app"
echo "built $app"
