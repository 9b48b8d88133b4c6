#!/bin/sh
# install-test.sh DEB: installs the package on this machine, checks it,
# upgrades, removes and purges it, and checks that the machine is as it was
# before (files under /etc /usr /lib /var and their modes and owners,
# users, groups). Run as root by .ci/run on a fresh CI machine; it changes
# the machine while it runs. Done twice: on a host without an asterisk user
# (the agent runs as root, through a drop-in) and with one (the agent
# runs as asterisk; the user is created for the round and deleted after).
# The first round also runs systemd-test.sh: the installed unit under a
# real systemd in a container.
set -eu

deb=${1:?usage: install-test.sh DEB}
[ "$(id -u)" = 0 ] || { echo "install-test.sh: run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
version=$(dpkg-deb -f "$deb" Version)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

fail() {
	echo "install-test.sh: FAIL: $*" >&2
	exit 1
}

# What a package may change and must leave as it was. Caches, logs and
# dpkg's own database change with any install; dpkg -s checks the latter.
snapshot() {
	find /etc /usr /lib /var -xdev \
		\( -path /var/cache -o -path /var/log -o -path /var/lib/dpkg -o -path /var/lib/apt \
		-o -path /var/tmp -o -path /var/lib/postgresql -o -path /usr/local/go \
		-o -path /etc/ld.so.cache \) -prune -o -printf '%p %M %u %g\n' | LC_ALL=C sort
	getent passwd | LC_ALL=C sort
	getent group | LC_ALL=C sort
}

# round NAME SERVICE_USER: one install, upgrade, remove, purge cycle.
round() {
	name=$1 user=$2
	echo "== install-test ($name): dpkg -i $deb"
	dpkg -s pbxsync >/dev/null 2>&1 && fail "pbxsync is installed already"
	snapshot >"$work/before"

	dpkg -i "$deb" >"$work/install.out" 2>&1 || { cat "$work/install.out"; fail "dpkg -i"; }
	cat "$work/install.out"
	id=$(sed -n 's/^pbxsync: this host.s node ID is //p' "$work/install.out")
	[ -n "$id" ] || fail "postinst printed no node ID"

	out=$(pbxsync version)
	[ "$out" = "pbxsync $version" ] || fail "pbxsync version printed '$out', want 'pbxsync $version'"
	[ "$(pbxsync id)" = "$id" ] || fail "pbxsync id printed '$(pbxsync id)', postinst '$id'"
	[ "$(stat -c '%a %U' /var/lib/pbxsync)" = "700 $user" ] ||
		fail "/var/lib/pbxsync is $(stat -c '%a %U' /var/lib/pbxsync), want 700 $user"
	[ "$(stat -c '%a %U' /var/lib/pbxsync/node.key)" = "600 $user" ] ||
		fail "node.key is $(stat -c '%a %U' /var/lib/pbxsync/node.key), want 600 $user"
	group=root
	[ "$user" = root ] || group=$user
	[ "$(stat -c '%a %U %G' /etc/pbxsync/pbxsync.toml)" = "640 root $group" ] ||
		fail "pbxsync.toml is $(stat -c '%a %U %G' /etc/pbxsync/pbxsync.toml), want 640 root $group"
	dropin=/etc/systemd/system/pbxsync.service.d/run-as-root.conf
	if [ "$user" = root ]; then
		[ -f "$dropin" ] || fail "no $dropin on a host without asterisk"
	else
		[ ! -e "$dropin" ] || fail "$dropin written on a host with asterisk"
	fi
	if pbxsync check --configured --config /etc/pbxsync/pbxsync.toml 2>"$work/cond"; then
		fail "check --configured passed on the packaged configuration"
	fi
	grep -q 'has no \[node\] section yet' "$work/cond" || fail "check --configured said: $(cat "$work/cond")"
	dpkg-query -W -f='${Conffiles}\n' pbxsync | grep -q '^ /etc/pbxsync/pbxsync.toml ' || fail "pbxsync.toml is not a conffile"

	echo "== install-test ($name): systemd-analyze verify"
	out=$(systemd-analyze verify /lib/systemd/system/pbxsync.service 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify printed: $out"
	# The unit as systemd loads it, drop-ins included.
	systemd-analyze cat-config systemd/system/pbxsync.service >/dev/null 2>&1 || true
	man_out=$(MANWIDTH=80 man -l /usr/share/man/man8/pbxsync.8.gz 2>&1 | head -5) || true
	echo "$man_out" | grep -q 'PBXSYNC(8)' || fail "man -l pbxsync.8.gz: $man_out"
	bash -c '. /usr/share/bash-completion/completions/pbxsync; COMP_WORDS=(pbxsync rollb); COMP_CWORD=1; _pbxsync; [ "${COMPREPLY[*]}" = rollback ]' ||
		fail "bash completion does not complete rollb"

	if [ "$user" = root ]; then
		echo "== install-test ($name): the installed unit under a real systemd"
		"$(dirname "$0")/systemd-test.sh" || fail "systemd-test.sh"
	fi

	echo "== install-test ($name): upgrade keeps data and the admin's configuration"
	echo "# edited by the admin" >>/etc/pbxsync/pbxsync.toml
	dpkg -i "$deb" >"$work/upgrade.out" 2>&1 || { cat "$work/upgrade.out"; fail "dpkg -i (upgrade)"; }
	[ "$(pbxsync id)" = "$id" ] || fail "the upgrade changed the node ID"
	tail -n 1 /etc/pbxsync/pbxsync.toml | grep -q 'edited by the admin' || fail "the upgrade replaced the edited conffile"
	[ "$(stat -c '%a %U %G' /etc/pbxsync/pbxsync.toml)" = "640 root $group" ] ||
		fail "after the upgrade pbxsync.toml is $(stat -c '%a %U %G' /etc/pbxsync/pbxsync.toml)"

	echo "== install-test ($name): dpkg -r keeps data and configuration"
	dpkg -r pbxsync >"$work/remove.out" 2>&1 || { cat "$work/remove.out"; fail "dpkg -r"; }
	[ ! -e /usr/bin/pbxsync ] || fail "dpkg -r left /usr/bin/pbxsync"
	[ -f /var/lib/pbxsync/node.key ] || fail "dpkg -r removed the identity"
	[ -f /etc/pbxsync/pbxsync.toml ] || fail "dpkg -r removed the configuration"

	echo "== install-test ($name): dpkg --purge leaves the machine as it was"
	dpkg --purge pbxsync >"$work/purge.out" 2>&1 || { cat "$work/purge.out"; fail "dpkg --purge"; }
	dpkg -s pbxsync >/dev/null 2>&1 && fail "dpkg -s still knows pbxsync after the purge"
	ls /var/lib/dpkg/info/pbxsync.* >/dev/null 2>&1 && fail "dpkg kept /var/lib/dpkg/info/pbxsync.*"
	dpkg-statoverride --list /etc/pbxsync/pbxsync.toml >/dev/null 2>&1 && fail "a statoverride of pbxsync.toml is left"
	snapshot >"$work/after"
	if ! diff -u "$work/before" "$work/after"; then
		fail "the machine differs after the purge (diff above: - before, + after)"
	fi
	echo "ok: $name"
}

round "no asterisk user" root
if getent passwd asterisk >/dev/null; then
	echo "install-test.sh: this machine has an asterisk user; skipping the round that creates one"
else
	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin asterisk
	status=0
	(round "asterisk user" asterisk) || status=$?
	userdel asterisk
	getent group asterisk >/dev/null && groupdel asterisk
	[ "$status" = 0 ] || exit "$status"
fi
echo "ok: install-test.sh $deb"
