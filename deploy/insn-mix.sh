#!/usr/bin/env bash
# The dynamic instruction mix of one embedding on an emulated aarch64 core, counted by qemu
# (`-d in_asm,exec,nochain`: each translated block's instructions, then each execution of a
# block), for the Pi estimates in docs/int8.md. Runs the aarch64 `embed_repeat` example for 1
# and for 2 embeddings; the difference is one embedding (loading the model cancels).
#
#   deploy/insn-mix.sh BIN CPU MODEL CHIP.png      e.g. BIN = target/aarch64-unknown-linux-gnu/debug/examples/embed_repeat
#
# Prints instructions per embedding by class: fmla (fp32 FMA), sdot, smull/smlal (int8
# multiply long), sadalp, vector loads, other vector, scalar, undecoded (what qemu's
# disassembler cannot name: in facegate's kernels, `sdot`).
set -euo pipefail
[ "$#" -eq 4 ] || { echo "usage: $0 BIN CPU MODEL CHIP.png" >&2; exit 2; }
bin=$1 cpu=$2 model=$3 chip=$4
command -v qemu-aarch64 >/dev/null || { echo "$0: qemu-aarch64 is not installed (Debian: qemu-user)" >&2; exit 1; }
[ -x "$bin" ] || { echo "$0: $bin: not an executable (cargo build --example embed_repeat --target aarch64-unknown-linux-gnu)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

count() { # N → "class count" lines
  mkfifo "$tmp/log.$1"
  awk '
    function cls(m) {
      if (m ~ /^fmla/) return "fmla"
      if (m ~ /^sdot/) return "sdot"
      # qemu 7.2 prints no mnemonic for the dot-product instructions (".byte ...").
      if (m == ".byte") return "undecoded"
      if (m ~ /^(smull|smlal)/) return "smull_smlal"
      if (m ~ /^sadalp/) return "sadalp"
      if (m ~ /^(ld1|ld1r|ld2|ld4)$/ || (m ~ /^(ldr|ldp|ldur)$/ && $0 ~ /[ ,][qd][0-9]+/)) return "vector_load"
      if ($0 ~ /[ ,]v[0-9]+\./ || $0 ~ /[ ,][qd][0-9]+[, ]/) return "vector_other"
      return "scalar"
    }
    /^IN:/ { inblk = 1; pc = ""; next }
    inblk && /^0x[0-9a-f]+:/ {
      addr = $1; sub(":", "", addr); sub(/^0x0*/, "", addr)
      if (pc == "") {
        # A block translated again (after a flush) replaces its old counts.
        pc = addr
        for (c in classes) delete blk[pc, c]
      }
      m = $3; c = cls(m); blk[pc, c]++; classes[c] = 1
      next
    }
    inblk && /^$/ { inblk = 0; next }
    /^Trace / {
      # "Trace 0: 0x... [00000000/000000000040abcd/...]": the guest pc is the second field.
      split($0, f, "/"); p = f[2]; sub(/^0*/, "", p)
      execs[p]++
      next
    }
    END {
      for (p in execs) {
        for (c in classes) total[c] += execs[p] * blk[p, c]
      }
      for (c in total) print c, total[c]
    }' < "$tmp/log.$1" > "$tmp/count.$1" &
  qemu-aarch64 -cpu "$cpu" -L /usr/aarch64-linux-gnu -d in_asm,exec,nochain -D "$tmp/log.$1" \
    "$bin" "$model" "$1" "$chip" >/dev/null
  wait
}
count 1
count 2
echo "# $model on qemu -cpu $cpu: instructions per embedding (runs of 2 and 1 embeddings, the difference)"
join <(sort "$tmp/count.1") <(sort "$tmp/count.2") | awk '{d = $3 - $2; t += d; printf "%-13s %12d\n", $1, d} END {printf "%-13s %12d\n", "total", t}'
