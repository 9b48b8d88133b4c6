#!/bin/sh
# verify.sh: check examples/systemd/pbxsync.service with `systemd-analyze verify`.
#
# Usage: examples/systemd/verify.sh [PBXSYNC_BINARY]
#
# The unit runs /usr/local/bin/pbxsync, which a build machine does not have,
# and systemd-analyze refuses a unit whose ExecStart= is not executable.
# So the check runs on a temporary copy of the unit whose /usr/local/bin/pbxsync
# is replaced by PBXSYNC_BINARY (default: a binary built from this checkout
# with `go build`). Nothing is installed anywhere.
#
# systemd-analyze comes from the systemd package; when it is missing and we
# are root on a Debian-like system, it is installed with apt-get. Exit status:
# 0 when systemd-analyze printed nothing and succeeded; 1 otherwise (its
# output is shown).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
unit="$here/pbxsync.service"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "verify.sh: installing systemd (for systemd-analyze)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >&2
	else
		echo "verify.sh: systemd-analyze not found; install the systemd package" >&2
		exit 1
	fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

bin=${1:-}
if [ -z "$bin" ]; then
	bin="$tmp/pbxsync"
	(cd "$root" && go build -o "$bin" ./cmd/pbxsync)
fi
case "$bin" in
/*) ;;
*) bin="$(pwd)/$bin" ;;
esac
if [ ! -x "$bin" ]; then
	echo "verify.sh: $bin is not an executable" >&2
	exit 1
fi

# Same file name, so that messages name pbxsync.service.
sed "s#/usr/local/bin/pbxsync#$bin#g" "$unit" >"$tmp/pbxsync.service"

echo "systemd-analyze verify $unit (ExecStart= binary: $bin)"
if out=$(systemd-analyze verify "$tmp/pbxsync.service" 2>&1); then
	status=0
else
	status=$?
fi
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	echo "verify.sh: systemd-analyze printed the messages above (exit $status)" >&2
	exit 1
fi
if [ "$status" != 0 ]; then
	echo "verify.sh: systemd-analyze failed (exit $status)" >&2
	exit 1
fi
echo "ok: systemd-analyze verify printed nothing"
