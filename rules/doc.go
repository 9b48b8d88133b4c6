// Package rules decides what Asterisk must do after a generation of a job
// was applied: which changed file triggers which action (a module reload, a
// CLI command over AMI, a restart, a shell command), under which host
// conditions, and which checks must pass before the generation counts as
// good.
//
// It is pure: no I/O, no clock, no global mutable state. Compile validates a
// job's [[job.rule]] entries; Rules.Plan maps the changed paths of one
// generation to a Plan (batched, deduplicated, in a deterministic order);
// Decide splits a plan's actions into those to run now and those deferred
// by their conditions on a HostState snapshot. asteriskctl runs the
// actions, the syncer runs the checks and rolls back on failure.
//
// # Rules
//
// A rule has match globs, and an action, a check, or both, and optionally a
// condition:
//
//	[[job.rule]]
//	match  = ["extensions*.conf"]
//	action = "reload pbx_config.so"   # see ParseAction
//	check  = "log"                    # see ParseCheck: ami, log or a shell command
//	when   = "no-channels"            # see ParseWhen: always, asterisk-up, no-channels
//
// A glob without '/' matches the base name at any depth; a glob with '/'
// matches the whole path relative to the job root, with "**" for any number
// of directories.
//
// # Built-in rules
//
// Builtins maps the standard /etc/asterisk files to their reloads and marks
// asterisk.conf, modules.conf, sorcery.conf and ccss.conf as needing
// "core restart when convenient". User rules come first and override the
// builtins per path; BuiltinsMarkdown renders the table for the README.
//
// # Order
//
// Reloads run one per module, dependencies first: core subsystems (logger,
// acl, manager …), res_ modules (res_odbc, res_pjsip …), chan_ drivers,
// other modules (app_ …), cdr_/cel_ back ends, and the pbx_ dialplan last,
// since the dialplan refers to endpoints and applications. Then AMI
// commands, then shell commands (each in rule order), then at most one
// restart; a planned restart drops the reloads (Plan.Superseded).
package rules
