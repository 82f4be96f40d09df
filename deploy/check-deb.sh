#!/usr/bin/env bash
# Install a built facegate .deb on this (Debian, root) machine, check what it installed, walk
# the install guide's steps that need no camera or relay (deploy/README.md: enroll as the
# facegate user, people list, the desk token, calibrate --write-config, door test), and purge
# it again: what CI does with the amd64 package.
#
#   deploy/check-deb.sh DEB PHOTO_A PHOTO_B LFW_IMAGES   # two photos of one person; LFW's
#                                                        # images folder for calibrate
set -euo pipefail
deb="$1"; a="$2"; b="$3"; lfw="$4"
fail() { echo "check-deb: $*" >&2; exit 1; }
dpkg -I "$deb" | sed -n 's/^ \(Package\|Version\|Architecture\|Installed-Size\):/  \1:/p'
dpkg -i "$deb"
getent passwd facegate >/dev/null || fail "no facegate user"
[ "$(stat -c '%U:%a' /var/lib/facegate)" = "facegate:700" ] || fail "/var/lib/facegate is $(stat -c '%U:%a' /var/lib/facegate), want facegate:700"
[ "$(stat -c '%U:%a' /usr/bin/facegate)" = "root:755" ] || fail "/usr/bin/facegate mode"
grep -qx /etc/facegate/facegate.toml /var/lib/dpkg/info/facegate.conffiles || fail "the config is no conffile"
for f in /usr/share/facegate/models/dlib_resnet_v1_fp32.onnx /usr/share/facegate/models/mtcnn_pnet.onnx \
         /usr/share/doc/facegate/copyright /lib/systemd/system/facegate.service \
         /lib/systemd/system/facegate-events.service; do
  [ -f "$f" ] || fail "$f not installed"
done
facegate --version
out="$(facegate --models /usr/share/facegate/models --json verify "$a" "$b")"
echo "  verify: $out"
case "$out" in *'"same":true'*) ;; *) fail "the packaged models did not verify one person" ;; esac
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/facegate.service /lib/systemd/system/facegate-events.service
  echo "  systemd-analyze verify: ok"
fi
if [ -d /run/systemd/system ] && systemctl is-enabled facegate >/dev/null 2>&1; then
  fail "the package enabled the service"
fi

# The guide's steps, as the guide writes them (`sudo -u facegate` is runuser here: CI is root).
sudo() { if [ "$1" = -u ]; then local u="$2"; shift 2; runuser -u "$u" -- "$@"; else "$@"; fi; }
photos="$(mktemp -d)"; chmod 755 "$photos"; cp "$a" "$photos/1.jpg"; cp "$b" "$photos/2.jpg"; chmod 644 "$photos"/*
sudo -u facegate facegate enroll --gallery /var/lib/facegate/gallery.toml --name "Ada Lovelace" \
    --images "$photos/1.jpg" "$photos/2.jpg"
list="$(sudo -u facegate facegate people --gallery /var/lib/facegate/gallery.toml list)"
echo "  people list: $list"
case "$list" in *"Ada Lovelace"*) ;; *) fail "the enrolled person is not listed" ;; esac
[ "$(stat -c '%U:%a' /var/lib/facegate/gallery.toml)" = "facegate:600" ] \
  || fail "gallery.toml is $(stat -c '%U:%a' /var/lib/facegate/gallery.toml), want facegate:600"
sudo -u facegate install -m 600 /dev/null /var/lib/facegate/desk.token
sudo -u facegate sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > /var/lib/facegate/desk.token'
[ "$(stat -c '%U:%a:%s' /var/lib/facegate/desk.token)" = "facegate:600:64" ] || fail "desk.token"
# The guide's calibration row for FAR 1e-3: 16 people with 5 photos each (3,000 impostor pairs).
people="$(mktemp -d)"
for p in George_W_Bush Colin_Powell Tony_Blair Donald_Rumsfeld Gerhard_Schroeder Ariel_Sharon \
         Hugo_Chavez Junichiro_Koizumi Jacques_Chirac Vladimir_Putin Jean_Chretien John_Ashcroft \
         Serena_Williams Luiz_Inacio_Lula_da_Silva Gloria_Macapagal_Arroyo Jennifer_Capriati; do
  mkdir "$people/$p"
  # sed reads the whole list: `head` would close the pipe early and, under pipefail, sort's
  # SIGPIPE (exit 141) would fail the script on a busy machine.
  find "$lfw/$p" -name '*.jpg' | sort | sed -n 1,5p | xargs -I{} cp {} "$people/$p/"
done
facegate calibrate --images "$people" --target-far 1e-3 --write-config /etc/facegate/facegate.toml
grep -q '^threshold = 0\.[0-9]* *# calibrated' /etc/facegate/facegate.toml \
  || fail "calibrate did not write the threshold: $(grep -n threshold /etc/facegate/facegate.toml)"
# No GPIO chip on a CI machine: `door test` must say which chip, and pulse nothing.
if out="$(facegate door test --config /etc/facegate/facegate.toml 2>&1)"; then
  echo "  door test: $out"
else
  case "$out" in *gpiochip0*) echo "  door test (no GPIO here): $out" ;; *) fail "door test: $out" ;; esac
fi
rm -rf "$photos" "$people"
dpkg --purge facegate
[ ! -e /usr/bin/facegate ] && [ ! -e /etc/facegate ] || fail "purge left files"
# The guide's "the site's data, only if it is to go too".
[ -f /var/lib/facegate/gallery.toml ] || fail "purge removed the gallery"
rm -rf /var/lib/facegate && userdel facegate
echo "check-deb: installed, checked and purged $deb"
