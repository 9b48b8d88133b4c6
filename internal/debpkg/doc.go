// Package debpkg builds and tests the Debian package of pbxsync; it has no
// Go API. `make deb` runs build.sh, which builds the binary for each
// architecture, generates the manual page, the bash completion and the
// packaged configuration from the binary's own help (pbxsync gendoc),
// takes the unit from examples/systemd/pbxsync.service, and packs them
// with nfpm (pinned in go.mod, run with `go tool nfpm`) as described in
// nfpm.yaml, with the maintainer scripts in scripts/. deb_test.go builds
// the packages and inspects them with dpkg-deb; install-test.sh (run by
// .ci/run as root) installs, upgrades, removes and purges one on the
// machine and checks that the machine is as it was. docs/packaging.md
// says what the package does and why.
package debpkg
