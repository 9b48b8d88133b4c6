package config

import (
	"strings"

	"github.com/BurntSushi/toml"
)

// HasNode reports whether src, the text of a configuration file, has a
// [node] table. The file the Debian package installs (Template) has none:
// every setting is commented out, and the agent must not start from it.
// A file that is not valid TOML counts as having one, so that the agent
// starts and reports its errors (FILE:LINE:COL) instead of being skipped
// in silence.
func HasNode(src []byte) bool {
	var top map[string]any
	if _, err := toml.Decode(string(src), &top); err != nil {
		return true
	}
	_, ok := top["node"]
	return ok
}

// Template returns the configuration file the Debian package installs as
// /etc/pbxsync/pbxsync.toml: a header that says how to set the host up,
// then the example (Example) with every setting commented out, so that the
// file has no [node] table (HasNode is false) until the admin writes one.
// Example lines that are comments stay as they are; every other line gets
// a leading "#".
func Template() string {
	var b strings.Builder
	b.WriteString(templateHeader)
	for _, line := range strings.SplitAfter(Example(), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			b.WriteString("#")
		}
		b.WriteString(line)
	}
	return b.String()
}

const templateHeader = `# /etc/pbxsync/pbxsync.toml: this host's pbxsync configuration (installed by
# the pbxsync package; your edits are kept on upgrade).
#
# The agent does not start until this file has a [node] section: until then
# "systemctl start pbxsync" leaves the service inactive and the journal
# (journalctl -u pbxsync) says why. To set this host up:
#
#   1. pbxsync id             print this host's node ID (created at install);
#                             every other host pins it in its [[peer]] id
#   2. write [node], a [[peer]] for every other host and your [[job]]s: the
#      example below is "pbxsync check --example"; remove the "#" in front of
#      the settings you keep (lines "# text" are explanations)
#   3. pbxsync check --config /etc/pbxsync/pbxsync.toml
#   4. systemctl start pbxsync
#
# The service runs sandboxed: every job path must be in ReadWritePaths= of
# the unit (systemctl edit pbxsync to add one; see "man pbxsync", FILES).
#
`
