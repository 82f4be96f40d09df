#!/usr/bin/env bash
# Install facegate onto a Raspberry Pi over ssh, or onto a mounted SD card's root file system.
#
#   deploy/install.sh ssh pi@doorpi          # copies, creates the user, enables the service
#   deploy/install.sh sdcard /media/rootfs   # copies only; run the printed commands on first boot
#   deploy/install.sh root DIR               # copies into DIR as the current user (a staging
#                                            # root: what the other two install, for checking)
#
# Expects the aarch64 binary (cargo build --release --target aarch64-unknown-linux-gnu
# --features rpi,camera; FACEGATE_BIN names another) and the model files (models/fetch).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${FACEGATE_BIN:-$here/target/aarch64-unknown-linux-gnu/release/facegate}"
models="${FACEGATE_MODELS:-$HOME/.cache/facegate/models}"
[ -x "$bin" ] || { echo "install: build first: cargo build --release --target aarch64-unknown-linux-gnu --features rpi,camera" >&2; exit 1; }
for f in mtcnn_pnet.onnx mtcnn_rnet.onnx mtcnn_onet.onnx dlib_resnet_v1_fp32.onnx dlib_resnet_v1_int8.onnx; do
  [ -f "$models/$f" ] || { echo "install: $models/$f missing: run models/fetch" >&2; exit 1; }
done
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/opt/facegate/bin" "$stage/opt/facegate/models" "$stage/etc/facegate" "$stage/etc/systemd/system"
cp "$bin" "$stage/opt/facegate/bin/"
cp "$models"/*.onnx "$stage/opt/facegate/models/"
# Two files called README.md: the user's guide and the install guide, under their own names.
cp "$here/README.md" "$stage/opt/facegate/README.md"
cp "$here/deploy/README.md" "$stage/opt/facegate/INSTALL.md"
cp "$here/deploy/facegate.service" "$stage/etc/systemd/system/"
# Never overwrite a site's edited config.
cp "$here/config/facegate.toml" "$stage/etc/facegate/facegate.toml.dist"
setup='id facegate >/dev/null 2>&1 || useradd --system --home /var/lib/facegate --shell /usr/sbin/nologin facegate;
usermod -aG gpio,video facegate; [ -f /etc/facegate/facegate.toml ] || cp /etc/facegate/facegate.toml.dist /etc/facegate/facegate.toml;
install -d -o facegate -g facegate -m 0700 /var/lib/facegate; systemctl daemon-reload; systemctl enable --now facegate'
case "${1:-}" in
  ssh)
    tar -C "$stage" -cz . | ssh "$2" 'sudo tar -C / -xz --no-same-owner'
    ssh "$2" "sudo bash -c '$setup'"
    echo "installed on $2; enroll with: ssh $2 sudo -u facegate /opt/facegate/bin/facegate --models /opt/facegate/models enroll --gallery /var/lib/facegate/gallery.toml --name NAME --camera 0" ;;
  sdcard)
    sudo tar -C "$stage" -c . | sudo tar -C "$2" -x --no-same-owner
    echo "copied to $2; on first boot run as root: $setup" ;;
  root)
    [ -n "${2:-}" ] || { echo "install: root needs a folder" >&2; exit 2; }
    mkdir -p "$2" && cp -R "$stage"/. "$2"/
    echo "staged in $2" ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
