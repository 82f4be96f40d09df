#!/usr/bin/env bash
# Install a built facegate .deb on this (Debian, root) machine, check what it installed, and
# purge it again: what CI does with the amd64 package.
#
#   deploy/check-deb.sh DEB PHOTO_A PHOTO_B      # two photos of one person
set -euo pipefail
deb="$1"; a="$2"; b="$3"
fail() { echo "check-deb: $*" >&2; exit 1; }
dpkg -I "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Installed-Size\):/  \1:/p'
dpkg -i "$deb"
getent passwd facegate >/dev/null || fail "no facegate user"
[ "$(stat -c '%U:%a' /var/lib/facegate)" = "facegate:700" ] || fail "/var/lib/facegate is $(stat -c '%U:%a' /var/lib/facegate), want facegate:700"
[ "$(stat -c '%U:%a' /usr/bin/facegate)" = "root:755" ] || fail "/usr/bin/facegate mode"
grep -qx /etc/facegate/facegate.toml /var/lib/dpkg/info/facegate.conffiles || fail "the config is no conffile"
for f in /usr/share/facegate/models/dlib_resnet_v1_fp32.onnx /usr/share/facegate/models/mtcnn_pnet.onnx \
         /usr/share/doc/facegate/copyright /lib/systemd/system/facegate.service; do
  [ -f "$f" ] || fail "$f not installed"
done
facegate --version
out="$(facegate --models /usr/share/facegate/models --json verify "$a" "$b")"
echo "  verify: $out"
case "$out" in *'"same":true'*) ;; *) fail "the packaged models did not verify one person" ;; esac
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/facegate.service
  echo "  systemd-analyze verify: ok"
fi
if [ -d /run/systemd/system ] && systemctl is-enabled facegate >/dev/null 2>&1; then
  fail "the package enabled the service"
fi
dpkg --purge facegate
[ ! -e /usr/bin/facegate ] && [ ! -e /etc/facegate ] || fail "purge left files"
echo "check-deb: installed, checked and purged $deb"
