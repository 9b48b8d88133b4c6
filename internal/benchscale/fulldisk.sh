#!/bin/bash
# fulldisk.sh BIN TREE WORK [target|source]: a push of TREE (e.g. the 100k
# .conf tree a `benchscale -keep` run leaves in WORK/fs/scale/conf-tree)
# where one side's file system is nearly full; root; agents on
# 127.0.0.1:47001-47002. docs/performance.md, twenty-fourth pass.
#
#   target: the target's data_dir and tree on a 900 MB ext4 (a loop device
#           under WORK, 250,000 inodes) with 300 MB free; prints the
#           target's CPU and bytes written over 60 s of full disk (from 40 s
#           after the start) and its failed applies
#   source: the source's data_dir on a 400 MB ext4 with 60 MB free; prints
#           the source's CPU over its first 90 s and how often its job
#           stopped
#
# then removes the filler and prints how long until the target applied.
set -euo pipefail
BIN=$(realpath "$1"); TREE=$(realpath "$2"); W=$3; SIDE=${4:-target}
mkdir -p "$W"; W=$(realpath "$W"); cd "$W"
umount small 2>/dev/null || true
rm -rf small.img small src-data tgt-data tgt-tree; mkdir -p small
if [ "$SIDE" = target ]; then
	truncate -s 900M small.img; mkfs.ext4 -q -F -N 250000 small.img; mount -o loop small.img small
	SD=$W/src-data TD=$W/small/data TT=$W/small/tree
else
	truncate -s 400M small.img; mkfs.ext4 -q -F small.img; mount -o loop small.img small
	SD=$W/small/data TD=$W/tgt-data TT=$W/tgt-tree
fi
mkdir -p "$SD" "$TD" "$TT"
TP= SP=
trap 'kill $TP $SP 2>/dev/null; wait 2>/dev/null; umount "$W/small"' EXIT
S=$("$BIN" id --data-dir "$SD" 2>/dev/null); T=$("$BIN" id --data-dir "$TD" 2>/dev/null)
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
conf pbx-src 127.0.0.1:47001 "$SD" pbx-tgt 127.0.0.1:47002 "$T" "$TREE" > src.toml
conf pbx-tgt 127.0.0.1:47002 "$TD" pbx-src 127.0.0.1:47001 "$S" "$TT" > tgt.toml
keep=300; [ "$SIDE" = source ] && keep=60
A=$(df --output=avail -B1M small | tail -1); fallocate -l $((A - keep))M small/filler
"$BIN" run --config "$W/tgt.toml" > tgt.log 2>&1 & TP=$!
"$BIN" run --config "$W/src.toml" > src.log 2>&1 & SP=$!
tck=$(getconf CLK_TCK)
cpu() { awk -v t="$tck" '{printf "%.2f", ($14+$15)/t}' "/proc/$1/stat"; }
if [ "$SIDE" = target ]; then
	wb() { awk '$1 == "write_bytes:" {print $2}' "/proc/$1/io"; }
	sleep 40
	c0=$(cpu $TP); w0=$(wb $TP)
	sleep 60
	c1=$(cpu $TP); w1=$(wb $TP)
	echo "$(basename "$BIN"): over 60 s of full disk: target CPU $(echo "$c1 - $c0" | bc) s, target wrote $(((w1 - w0) >> 20)) MiB; failed applies $(grep -c 'apply failed; rolling back' tgt.log || true), generations found not to fit $(grep -c 'does not fit on the file system' tgt.log || true)"
else
	sleep 90
	echo "$(basename "$BIN"): source CPU over 90 s with its data_dir full: $(cpu $SP) s; its job stopped $(grep -c 'job stopped' src.log || true) times"
fi
rm small/filler; t0=$(date +%s.%N)
for _ in $(seq 1 480); do sleep 0.25; grep -q 'msg=applied' tgt.log && break; done
echo "  room made: applied after $(echo "$(date +%s.%N) - $t0" | bc) s; files in the tree: $(find "$TT" -type f | wc -l)"
