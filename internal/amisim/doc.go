// Package amisim is an Asterisk Manager Interface simulator for tests and
// for "pbxsync demo". A [Server] listens on 127.0.0.1 (a random port by
// default) and speaks the AMI text protocol as a real Asterisk does: the
// banner "Asterisk Call Manager/7.0.3", "Key: Value" lines ending in CRLF,
// an empty line closing each message, ActionID echoed, "Response: Success",
// "Error" or "Follows" with a "Message", and events ("FullyBooted" after
// login, list events, events pushed with [Server.Emit]).
//
// Supported actions: Login, Logoff, Ping, CoreStatus, CoreSettings, Reload,
// ModuleCheck, Command (Asterisk ≥ 14 "Output:" format, or the legacy
// "Response: Follows" … "--END COMMAND--" format), CoreShowChannels,
// Getvar and Setvar (global variables), and through Command: "core restart
// when convenient|gracefully|now", "dialplan reload", "module reload M",
// "core show version", "core show uptime", "core show channels count", plus
// commands scripted with [Server.SetCommand].
//
// Module state: the loaded modules (Config.Modules, changed with
// [Server.SetModuleLoaded]) answer ModuleCheck and Reload; a Reload of a
// module that is not loaded is answered "No such module". A reload checks the configuration files of the module in
// Config.ConfigDir (see [DefaultModuleFiles]). When one contains the error
// marker (default "BROKEN"), the simulator writes a config.c "parse error"
// WARNING line to Config.LogPath, and pbx_config.so answers
// "Response: Error" / "Message: An unknown error occurred" while every other
// module answers Success, as the DESIGN records for a real Asterisk. A
// reload takes Config.ReloadDuration; a reload asked for while another runs
// is answered "A reload is in progress" ([Server.BeginReload] starts one as
// the CLI would). A wrong secret is answered "Authentication failed" and the
// connection stays open (Config.CloseOnLoginFailure closes it instead).
//
// Recorded behaviour: with Config.Transcript (usually [Recorded], the
// transcript of a real Asterisk in testdata/asterisk-transcript.json,
// recorded by internal/amisim/cmd/record), Reload and ModuleCheck of every
// module the transcript holds answer and log as that Asterisk did: an
// unclosed category or a line without '=' in one of the module's files
// replays the recorded "broken" or "no_equals" scenario (answer and log
// lines, with the file and line filled in), a module that is not loaded
// the recorded "No such module" / "Module not loaded", and otherwise the
// recorded good reload. The BROKEN marker then applies only to modules the
// transcript lacks.
//
// Faults are scriptable at run time: slow answers ([Server.SetDelay],
// [Server.SetJitter]), answers cut off mid-way with the connection dropped
// ([Server.DropConnection]), refused logins ([Server.RefuseLogin]), an
// action failing with a given message ([Server.FailAction]), byte-by-byte
// writes ([Server.SetSplitWrites]), and the whole manager going away and
// coming back on the same port ([Server.Down], [Server.Up]).
//
// Every action received is recorded with its headers (the secret redacted)
// and time, so tests can assert, e.g., exactly one Reload of pbx_config.so
// ([Server.Count]). A Server is safe for concurrent use.
package amisim
