#!/bin/sh
# build.sh [ARCH...]: builds dist/pbxsync_VERSION_ARCH.deb for each Debian
# architecture ARCH (default: amd64 arm64). `make deb` runs it.
#
# Environment: DIST (output directory, default dist/ of the checkout),
# DEB_VERSION (default: version.sh), DEB_MAINTAINER, SOURCE_DATE_EPOCH
# (default: the commit's time), GO (default go).
# Needs only Go and the module proxy: nfpm is pinned in go.mod and run with
# `go tool nfpm`; the binaries are static (CGO_ENABLED=0).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
go=${GO:-go}
dist=${DIST:-$root/dist}
case $dist in /*) ;; *) dist=$(pwd)/$dist ;; esac
version=${DEB_VERSION:-$(cd "$root" && "$here/version.sh")}
maintainer=${DEB_MAINTAINER:-pbxsync maintainers <pbxsync@localhost>}
[ $# -gt 0 ] || set -- amd64 arm64

# Dates in the package (file times, the manual page's date): the commit's,
# so that a rebuild of the same commit gives the same package.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(cd "$root" && git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM

build() { # build GOARCH OUT
	(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=$1 "$go" build -trimpath \
		-ldflags "-s -w -X main.version=$version" -o "$2" ./cmd/pbxsync)
}

# Generated from the binary's own help, so they match it: built for this
# machine (the help is the same on every architecture).
host=$(cd "$root" && "$go" env GOARCH)
build "$host" "$stage/host/pbxsync"
"$stage/host/pbxsync" gendoc --version "$version" --date "$date" man | gzip -9n >"$stage/pbxsync.8.gz"
"$stage/host/pbxsync" gendoc bash >"$stage/pbxsync.bash"
"$stage/host/pbxsync" gendoc conffile >"$stage/pbxsync.toml"
# One unit for both installs: the package's binary is /usr/bin/pbxsync.
sed 's#/usr/local/bin/pbxsync#/usr/bin/pbxsync#g' "$root/examples/systemd/pbxsync.service" >"$stage/pbxsync.service"
if grep -q /usr/local "$stage/pbxsync.service"; then
	echo "build.sh: the unit still names /usr/local" >&2
	exit 1
fi

mkdir -p "$dist"
for arch in "$@"; do
	case $arch in
	amd64 | arm64 | 386 | riscv64 | ppc64le | s390x) goarch=$arch ;;
	armhf) goarch=arm ;;
	i386) goarch=386 ;;
	*)
		echo "build.sh: unknown Debian architecture $arch" >&2
		exit 2
		;;
	esac
	mkdir -p "$stage/$arch"
	if [ "$goarch" = "$host" ]; then
		cp "$stage/host/pbxsync" "$stage/$arch/pbxsync"
	else
		build "$goarch" "$stage/$arch/pbxsync"
	fi
	out=$dist/pbxsync_${version}_$arch.deb
	(cd "$here" && DEB_ARCH=$arch DEB_VERSION=$version DEB_MAINTAINER=$maintainer STAGE=$stage \
		"$go" tool nfpm package --config nfpm.yaml --packager deb --target "$out")
	echo "$out"
done
