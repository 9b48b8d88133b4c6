#!/bin/sh
# version.sh [DESCRIBE [COMMIT_TIME]]: the Debian version of this checkout.
#
# From `git describe --tags --always --dirty` (or DESCRIBE):
#   v1.2.3                 -> 1.2.3
#   v1.2.3-4-gabc1234      -> 1.2.3+4.gabc1234      (4 commits after v1.2.3)
#   abc1234 (no tag)       -> 0.0~git20261202035300.abc1234
#                             (commit time UTC, or COMMIT_TIME as YYYYmmddHHMMSS)
#   ...-dirty              -> ...+dirty             (uncommitted changes)
# Every result starts with a digit and uses only [0-9A-Za-z.+~], so dpkg
# accepts it and later commits sort higher (dpkg --compare-versions).
set -eu
desc=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo unknown)}
dirty=
case $desc in
*-dirty) dirty=+dirty; desc=${desc%-dirty} ;;
esac
case $desc in
v[0-9]* | [0-9]*.*)
	desc=${desc#v}
	# 1.2.3-4-gabc -> 1.2.3+4.gabc; a "-" inside the tag (1.2.3-rc1) -> ~rc1
	case $desc in
	*-[0-9]*-g[0-9a-f]*)
		base=${desc%-*-g*}
		rest=${desc#"$base"-}
		ver=$(printf '%s' "$base" | tr - '~')+$(printf '%s' "$rest" | tr - .)
		;;
	*) ver=$(printf '%s' "$desc" | tr - '~') ;;
	esac
	;;
*)
	when=${2:-$(TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || echo 0)}
	ver=0.0~git$when.$(printf '%s' "$desc" | tr -c '0-9A-Za-z.\n' .)
	;;
esac
printf '%s%s\n' "$ver" "$dirty"
