#!/bin/sh
# systemd-test.sh: runs the INSTALLED pbxsync.service under a real systemd
# (systemd-nspawn boots the host's /usr with an empty, volatile /etc and
# /var; the host is not touched) and checks how the unit behaves:
#   1. with the packaged /etc/pbxsync/pbxsync.toml (no [node]) a start is
#      skipped by ExecCondition=: the unit is inactive, not failed, is not
#      restarted, and the journal has our one line saying why;
#   2. with a [node] the agent starts (Type=notify: READY=1) and runs, and
#      an upgrade (the installed postinst, configure OLD-VERSION) restarts
#      it with try-restart, keeping its identity, and leaves a stopped one
#      stopped;
#   3. with an invalid file it fails once (exit 78) and is not restarted.
# install-test.sh runs it while the package is installed. Needs root and
# systemd-nspawn (Debian: systemd-container). Exit 0 when all hold.
set -eu
[ "$(id -u)" = 0 ] || { echo "systemd-test.sh: run as root" >&2; exit 1; }
command -v systemd-nspawn >/dev/null || { echo "systemd-test.sh: systemd-nspawn not found (apt-get install systemd-container)" >&2; exit 1; }
[ -x /usr/bin/pbxsync ] && [ -f /lib/systemd/system/pbxsync.service ] || { echo "systemd-test.sh: install the package first" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/out" "$work/etc-pbxsync" "$work/dropin"
cp /etc/pbxsync/pbxsync.toml "$work/etc-pbxsync/pbxsync.toml"
# The container has no asterisk user: run the agent as root, as postinst
# does on such a host (this is the drop-in it writes).
if [ -f /etc/systemd/system/pbxsync.service.d/run-as-root.conf ]; then
	cp /etc/systemd/system/pbxsync.service.d/run-as-root.conf "$work/dropin/"
else
	printf '[Service]\nUser=\nGroup=\n' >"$work/dropin/run-as-root.conf"
fi

cat >"$work/out/test.sh" <<'TEST'
#!/bin/sh
# Runs inside the container as a oneshot unit; writes /out/result.
exec >/out/log 2>&1
set -u
fail() { echo "FAIL: $*" >/out/result; journalctl -u pbxsync --no-pager; exit 1; }
show() { systemctl show -P "$1" pbxsync.service; }

echo "== 1. packaged configuration (no [node])"
systemctl start pbxsync.service; echo "systemctl start: exit $?"
sleep 6 # RestartSec=2s: a restart loop would show by now
st="$(show ActiveState)/$(show Result)/$(show NRestarts)"
echo "state: $st"
[ "$st" = "inactive/exec-condition/0" ] || fail "unconfigured: ActiveState/Result/NRestarts = $st, want inactive/exec-condition/0"
n=$(journalctl -u pbxsync --no-pager -o cat | grep -c 'has no \[node\] section yet')
[ "$n" = 1 ] || fail "unconfigured: the journal has $n lines 'has no [node] section yet', want 1"
systemctl is-failed -q pbxsync.service && fail "unconfigured: the unit is failed"

echo "== 2. a configured node"
cat >/etc/pbxsync/pbxsync.toml <<'CONF'
[node]
name = "pbx1"
listen = "127.0.0.1:7420"
data_dir = "/var/lib/pbxsync"
CONF
systemctl start pbxsync.service || fail "configured: systemctl start failed"
st="$(show ActiveState)/$(show SubState)"
echo "state: $st"
[ "$st" = "active/running" ] || fail "configured: state $st, want active/running"
[ "$(stat -c %a /var/lib/pbxsync)" = 700 ] || fail "configured: /var/lib/pbxsync mode $(stat -c %a /var/lib/pbxsync), want 700"
systemctl reload pbxsync.service || fail "configured: systemctl reload failed"

echo "== 2b. an upgrade (postinst configure OLD) restarts the running agent"
pid=$(show MainPID)
id1=$(pbxsync id --config /etc/pbxsync/pbxsync.toml)
DPKG_MAINTSCRIPT_PACKAGE=pbxsync DPKG_MAINTSCRIPT_NAME=postinst /out/postinst configure 0.0~old || fail "upgrade: postinst failed"
st="$(show ActiveState)/$(show SubState)"
[ "$st" = "active/running" ] || fail "upgrade: state $st, want active/running"
[ "$(show MainPID)" != "$pid" ] || fail "upgrade: the agent was not restarted (MainPID $pid)"
[ "$(pbxsync id --config /etc/pbxsync/pbxsync.toml)" = "$id1" ] || fail "upgrade: the node ID changed"
systemctl stop pbxsync.service || fail "configured: systemctl stop failed"
[ "$(show Result)" = success ] || fail "configured: stop result $(show Result)"
DPKG_MAINTSCRIPT_PACKAGE=pbxsync DPKG_MAINTSCRIPT_NAME=postinst /out/postinst configure 0.0~old || fail "upgrade: postinst failed"
[ "$(show ActiveState)" = inactive ] || fail "upgrade: a stopped agent was started ($(show ActiveState))"

echo "== 3. an invalid configuration"
printf '[node]\nname = 7\n' >/etc/pbxsync/pbxsync.toml
systemctl reset-failed pbxsync.service 2>/dev/null
systemctl start pbxsync.service && fail "invalid: systemctl start succeeded"
sleep 6 # RestartSec=2s: a restart loop would show by now
st="$(show ActiveState)/$(show ExecMainStatus)/$(show NRestarts)"
echo "state: $st"
[ "$st" = "failed/78/0" ] || fail "invalid: ActiveState/ExecMainStatus/NRestarts = $st, want failed/78/0 (RestartPreventExitStatus=78, no restart loop)"
journalctl -u pbxsync --no-pager -o cat | grep -q 'pbxsync.toml:2:1: node.name' || fail "invalid: no FILE:LINE:COL in the journal"

journalctl -u pbxsync --no-pager
echo PASS >/out/result
TEST
chmod +x "$work/out/test.sh"
# The installed postinst, to run an upgrade inside the container.
cp /var/lib/dpkg/info/pbxsync.postinst "$work/out/postinst"
# The container has only lo: masked, network-online.target (which the unit
# wants) is reached at once instead of after wait-online's 2 min timeout.
ln -s /dev/null "$work/masked"
cat >"$work/pbxsync-test.service" <<'UNIT'
[Unit]
Description=pbxsync unit test
After=systemd-journald.service
# Power the container off when the test is done, passed or not.
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/out/test.sh
UNIT

# A docker-style /usr/sbin/policy-rc.d (exit 101) forbids maintainer
# scripts to start or restart services; the container is a machine without.
policy=
if [ -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 0\n' >"$work/policy-rc.d"
	chmod 0755 "$work/policy-rc.d"
	policy=--bind-ro=$work/policy-rc.d:/usr/sbin/policy-rc.d
fi
echo "== systemd-test: booting systemd in a container (systemd-nspawn --volatile=yes)"
timeout 300 systemd-nspawn --quiet --directory=/ --volatile=yes --register=no --keep-unit --private-network \
	--bind="$work/out:/out" --bind="$work/etc-pbxsync:/etc/pbxsync" \
	--bind-ro="$work/dropin:/etc/systemd/system/pbxsync.service.d" \
	--bind-ro="$work/pbxsync-test.service:/etc/systemd/system/pbxsync-test.service" \
	--bind-ro="$work/masked:/etc/systemd/system/systemd-networkd-wait-online.service" \
	$policy \
	--boot -- systemd.unit=pbxsync-test.service systemd.firstboot=off >"$work/boot.log" 2>&1 || true
cat "$work/out/log" 2>/dev/null || { echo "systemd-test.sh: the container did not run the test:"; tail -40 "$work/boot.log"; exit 1; }
result=$(cat "$work/out/result" 2>/dev/null || echo "no result")
echo "systemd-test: $result"
[ "$result" = PASS ]
