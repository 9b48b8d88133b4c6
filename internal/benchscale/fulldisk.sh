#!/bin/bash
# fulldisk.sh BIN TREE WORK: a push of TREE (e.g. the 100k .conf tree a
# `benchscale -keep` run leaves in WORK/fs/scale/conf-tree) from a source on
# the machine's disk to a target whose file system (a 900 MB ext4 in a loop
# device, 250,000 inodes, under WORK) has 300 MB free: prints the target's
# CPU and bytes written over 60 s of full disk (from 40 s after the start),
# its failed applies, then how long after room is made the generation is
# applied. Root; agents on 127.0.0.1:47001-47002. docs/performance.md,
# twenty-fourth pass.
set -euo pipefail
BIN=$(realpath "$1"); TREE=$(realpath "$2"); W=$3
mkdir -p "$W"; W=$(realpath "$W"); cd "$W"
umount tgt 2>/dev/null || true
rm -rf tgt.img src-data tgt; truncate -s 900M tgt.img; mkfs.ext4 -q -F -N 250000 tgt.img
mkdir -p tgt src-data; mount -o loop tgt.img tgt; mkdir -p tgt/data tgt/tree
trap 'kill $TP $SP 2>/dev/null; wait 2>/dev/null; umount "$W/tgt"' EXIT
S=$("$BIN" id --data-dir "$W/src-data" 2>/dev/null); T=$("$BIN" id --data-dir "$W/tgt/data" 2>/dev/null)
conf() { # name listen data peer peer-address peer-id path
cat <<EOC
[node]
name = "$1"
listen = "$2"
data_dir = "$3"
[[peer]]
name = "$4"
address = "$5"
id = "$6"
[[job]]
name = "confs"
type = "files"
path = "$7"
mode = "push"
source = "pbx-src"
targets = ["pbx-tgt"]
EOC
}
conf pbx-src 127.0.0.1:47001 "$W/src-data" pbx-tgt 127.0.0.1:47002 "$T" "$TREE" > src.toml
conf pbx-tgt 127.0.0.1:47002 "$W/tgt/data" pbx-src 127.0.0.1:47001 "$S" "$W/tgt/tree" > tgt.toml
A=$(df --output=avail -B1M tgt | tail -1); fallocate -l $((A-300))M tgt/filler
"$BIN" run --config "$W/tgt.toml" > tgt.log 2>&1 & TP=$!
"$BIN" run --config "$W/src.toml" > src.log 2>&1 & SP=$!
sleep 40
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
wb() { awk '$1 == "write_bytes:" {print $2}' "/proc/$1/io"; }
c0=$(cpu $TP); w0=$(wb $TP); s0=$(cpu $SP)
sleep 60
c1=$(cpu $TP); w1=$(wb $TP); s1=$(cpu $SP); tck=$(getconf CLK_TCK)
echo "$(basename "$BIN"): over 60 s of full disk: target CPU $(echo "scale=2;($c1-$c0)/$tck" | bc) s, source CPU $(echo "scale=2;($s1-$s0)/$tck" | bc) s, target wrote $(((w1 - w0) >> 20)) MiB; failed applies $(grep -c 'apply failed; rolling back' tgt.log || true)"
rm tgt/filler; t0=$(date +%s.%N)
for _ in $(seq 1 480); do sleep 0.25; grep -q 'msg=applied' tgt.log && break; done
echo "  room made: applied after $(echo "$(date +%s.%N)-$t0" | bc) s; files in the tree: $(find tgt/tree -type f | wc -l)"
