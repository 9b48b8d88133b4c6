// Package asteriskctl is the Asterisk Controller: it talks to the local
// Asterisk over the Asterisk Manager Interface (AMI) to reload modules, run
// CLI commands, restart Asterisk and probe its health, starts and stops
// asterisk.service through systemd for when AMI itself is down, and checks
// the Asterisk log for parse errors written since an action.
//
// # Why its own AMI client
//
// goami2, the usual Go AMI library, cannot be fetched from the module proxy
// this project builds with. Its reader also drops messages that a slow
// consumer does not take within 10 ms, and it does not match responses to
// the actions that caused them. A sync agent must never lose a Reload answer
// nor confuse the answer to one action with another's, so asteriskctl
// carries its own small client:
//
//   - [Reader] parses the AMI text protocol from the wire with bounds on line
//     length, header count and message size, both Command output formats
//     (Asterisk 14 and later: "Response: Success" with "Output:" lines;
//     before: "Response: Follows" … "--END COMMAND--"), and header names
//     with digits, underscores and other punctuation.
//   - A connection (conn.go) checks the banner, logs in, and correlates
//     responses to actions by ActionID, so many actions may be in flight at
//     once; list actions (CoreShowChannels) collect their events until the
//     closing *Complete event.
//   - [Session] keeps one AMI session alive with reconnects (exponential
//     backoff with jitter), applies per-action timeouts, serializes reloads
//     and retries "A reload is in progress".
//
// # Events
//
// Events are delivered to each [Subscription] through a bounded queue. The
// connection reader never blocks on a subscriber: blocking it would also
// stall the answers to actions (a Reload acknowledgement would wait behind an
// unread event) and would deadlock a consumer that runs an action while
// handling an event. When a subscriber's queue is full, further events are
// counted instead of queued, and [Subscription.Next] returns an
// [*OverflowError] (errors.Is [ErrEventOverflow]) carrying the number lost,
// at the exact place in the stream where they are missing; the total is
// also available from [Subscription.Dropped]. Nothing is dropped silently.
// Size the queue (Config.EventBuffer) for the bursts you expect.
//
// # Secrets
//
// The AMI secret is read from a file by [New] and kept in an unexported
// type that prints as "[redacted]"; it never appears in logs or in error
// messages.
//
// # Edges
//
// [Controller] is the small interface the syncer and the health monitor use;
// [*Session] implements it against a real Asterisk, and tests use a double.
package asteriskctl
