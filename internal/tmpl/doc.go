// Package tmpl renders per-host templates ([[job]] templates): a synced
// file X.tmpl becomes X on each host, through Go text/template with the
// host's own values (.Node.Name, .Node.Site, .Vars.KEY from [node.vars]).
// A variable that is not set is an error, never an empty string, and every
// error names the template as FILE:LINE:COL. It is pure: the caller reads
// the template and writes the result (syncer/render.go on the agent,
// cmd/pbxsync/cmd_render.go for `pbxsync render`).
package tmpl
