#!/usr/bin/env bash
# The Debian package end to end: cpack builds it from the build folder, the package is unpacked into
# a temporary root (dpkg-deb -x, no root rights needed), its contents are checked (programs, presets,
# desktop file, icon, AppStream metadata, the bundled model when the source tree has one) and the
# installed programs are started from there.
#
#   package_install_test.sh BUILD_DIR SOURCE_DIR VERSION CPACK [GUI=ON|OFF]
set -euo pipefail

BUILD="$1"
SRC="$2"
VERSION="$3"
CPACK="${4:-cpack}"
GUI="${5:-ON}"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/automod-package-test.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

t0=$(date +%s%N)
if ! "$CPACK" -G DEB --config "$BUILD/CPackConfig.cmake" -B "$TMP/pkg" >"$TMP/cpack.log" 2>&1; then
  cat "$TMP/cpack.log" >&2
  fail "cpack -G DEB failed (is everything built?)"
fi
t1=$(date +%s%N)
shopt -s nullglob
debs=("$TMP"/pkg/*.deb)
[ "${#debs[@]}" -eq 1 ] || fail "expected one .deb in $TMP/pkg, found ${#debs[@]}"
DEB="${debs[0]}"
echo "package: $(basename "$DEB") ($(du -h "$DEB" | cut -f1)), cpack took $(((t1 - t0) / 1000000)) ms"

# Control fields: name, version and the shared-library dependencies dpkg-shlibdeps found.
[ "$(dpkg-deb -f "$DEB" Package)" = "automod-studio" ] || fail "package name is not automod-studio"
[ "$(dpkg-deb -f "$DEB" Version)" = "$VERSION" ] || fail "package version is not $VERSION"
depends="$(dpkg-deb -f "$DEB" Depends)"
echo "Depends: $depends"
[[ "$depends" == *libc6* ]] || fail "Depends lacks the shared libraries (dpkg-shlibdeps did not run?)"
for d in libtorch libqt6core6; do
  [ "$GUI" = OFF ] && [ "$d" = libqt6core6 ] && continue
  [[ "$depends" == *"$d"* ]] || fail "Depends lacks $d"
done
if [ "$GUI" = ON ]; then  # plugins dpkg-shlibdeps cannot see
  for d in libqt6svg6 qt6-qpa-plugins; do [[ "$depends" == *"$d"* ]] || fail "Depends lacks $d"; done
fi

ROOT="$TMP/root"
dpkg-deb -x "$DEB" "$ROOT"

expect=(usr/bin/automod usr/share/automod/presets)
if [ "$GUI" = ON ]; then
  expect+=(usr/bin/automod-studio
    usr/share/applications/automod-studio.desktop
    usr/share/icons/hicolor/scalable/apps/automod-studio.svg
    usr/share/metainfo/io.github.automodulator.Studio.metainfo.xml)
fi
if [ -f "$SRC/models/default.amod" ]; then
  expect+=(usr/share/automod-studio/models/default.amod)
else
  echo "note: $SRC/models/default.amod does not exist yet; the bundled-model check is skipped"
fi
if [ -d "$SRC/resources/samples" ]; then expect+=(usr/share/automod-studio/samples); fi
for f in "${expect[@]}"; do
  [ -e "$ROOT/$f" ] || fail "the package lacks /$f"
done
if [ -f "$SRC/models/default.amod" ]; then
  cmp -s "$SRC/models/default.amod" "$ROOT/usr/share/automod-studio/models/default.amod" ||
    fail "the packaged default model differs from models/default.amod"
fi
[ -n "$(ls "$ROOT/usr/share/automod/presets")" ] || fail "no training presets in the package"
if [ "$GUI" = ON ]; then
  grep -q '^Exec=automod-studio' "$ROOT/usr/share/applications/automod-studio.desktop" ||
    fail "the desktop file does not start automod-studio"
  grep -q '^Icon=automod-studio$' "$ROOT/usr/share/applications/automod-studio.desktop" ||
    fail "the desktop file does not name the installed icon"
  if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$ROOT/usr/share/applications/automod-studio.desktop" || fail "invalid desktop file"
  fi
  if command -v appstreamcli >/dev/null; then
    appstreamcli validate --no-net --pedantic "$ROOT/usr/share/metainfo/io.github.automodulator.Studio.metainfo.xml" \
      >"$TMP/appstream.log" 2>&1 || { cat "$TMP/appstream.log" >&2; fail "invalid AppStream metadata"; }
  fi
fi

# The full command-line tool the `automod` front door runs is installed beside it.
[ -x "$ROOT/usr/bin/automod-run" ] || fail "usr/bin/automod-run (the full command-line tool) is missing"
if ldd "$ROOT/usr/bin/automod-run" | grep -q "not found"; then
  ldd "$ROOT/usr/bin/automod-run" | grep "not found" >&2
  fail "automod-run: missing shared libraries"
fi
# The front door needs no LibTorch.
if ldd "$ROOT/usr/bin/automod" | grep -q "libtorch"; then fail "automod links LibTorch (it should only exec automod-run)"; fi

# The installed programs start from the installed location (their libraries all resolve).
programs=(automod)
[ "$GUI" = ON ] && programs+=(automod-studio)
for p in "${programs[@]}"; do
  bin="$ROOT/usr/bin/$p"
  if ldd "$bin" | grep -q "not found"; then
    ldd "$bin" | grep "not found" >&2
    fail "$p: missing shared libraries"
  fi
  out="$(QT_QPA_PLATFORM=offscreen "$bin" --version 2>&1)" || fail "$p --version exited with $?: $out"
  echo "$p --version: $out"
  [ "$out" = "$p $VERSION" ] || fail "$p --version printed '$out', expected '$p $VERSION'"
done
echo "package OK in $((($(date +%s%N) - t0) / 1000000)) ms"
