package asteriskctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Match them with errors.Is; the returned errors carry the
// action name and the cause in their text.
var (
	// ErrLoginFailed: Asterisk refused the username or secret.
	ErrLoginFailed = errors.New("login failed")
	// ErrConnectionLost: the AMI connection ended while an action waited for
	// its answer. The action may or may not have run.
	ErrConnectionLost = errors.New("connection lost")
	// ErrTimeout: the action's context expired before its answer arrived.
	ErrTimeout = errors.New("timeout")
	// ErrNotConnected: no AMI session could be established for the action.
	ErrNotConnected = errors.New("not connected to Asterisk")
	// ErrClosed: the Session was closed.
	ErrClosed = errors.New("asteriskctl: session closed")
	// ErrBadBanner: the peer did not greet like an Asterisk manager.
	ErrBadBanner = errors.New("not an Asterisk manager interface")
	// ErrReloadInProgress matches an [*ActionError] whose message is
	// MsgReloadInProgress.
	ErrReloadInProgress = errors.New("asterisk is running another reload")
	// ErrNoSuchModule matches an [*ActionError] whose message is
	// MsgNoSuchModule.
	ErrNoSuchModule = errors.New("no such module")
	// ErrModuleNotRunning matches an [*ActionError] whose message is
	// MsgNoSuchModule or MsgNotInitialized: Asterisk has no running module
	// of that name (never loaded, unloaded, or its load was declined).
	ErrModuleNotRunning = errors.New("module not running")
	// ErrNotInitialized matches an [*ActionError] whose message is
	// MsgNotInitialized: the module's load was declined.
	ErrNotInitialized = errors.New("module not initialized")
	// ErrReloadNotSupported matches an [*ActionError] whose message is
	// MsgReloadNotSupported: the module is loaded but has no reload.
	ErrReloadNotSupported = errors.New("module does not support reload")
	// ErrEventOverflow matches an [*OverflowError].
	ErrEventOverflow = errors.New("AMI events dropped: subscriber queue full")
)

// Messages of Asterisk's manager.c answers to Reload.
const (
	MsgReloadInProgress = "A reload is in progress"
	MsgNoSuchModule     = "No such module"
	MsgUnknownError     = "An unknown error occurred" // e.g. pbx_config.so on a broken extensions.conf
	MsgModuleNotLoaded  = "Module not loaded"         // ModuleCheck
	// MsgNotInitialized answers a Reload of a module that is known to the
	// loader but not running (its load was declined).
	MsgNotInitialized = "Module not initialized"
	// MsgReloadNotSupported answers a Reload of a loaded module without a
	// reload function.
	MsgReloadNotSupported = "Module does not support reload"
)

// ActionError is Asterisk's "Response: Error" (or another non-success
// response) to an action. Message is Asterisk's own text, e.g.
// "An unknown error occurred" for a Reload of a broken extensions.conf.
type ActionError struct {
	Action   string   // action name, e.g. "Reload"
	Response string   // the Response value, usually "Error"
	Message  string   // the Message value
	Output   []string // Command output that came with the error, if any
}

// Error implements error.
func (e *ActionError) Error() string {
	msg := e.Message
	if len(e.Output) > 0 {
		out := strings.Join(e.Output, " / ")
		if len(out) > 200 {
			out = out[:200] + "…"
		}
		if msg == "" || strings.EqualFold(msg, "Command output follows") {
			msg = out
		} else {
			msg += ": " + out
		}
	}
	if msg == "" {
		msg = "(no message)"
	}
	return fmt.Sprintf("Asterisk answered %s to %s: %s", e.Response, e.Action, msg)
}

// Is makes errors.Is(err, ErrReloadInProgress), ErrNoSuchModule,
// ErrModuleNotRunning and ErrReloadNotSupported work on Asterisk's
// messages.
func (e *ActionError) Is(target error) bool {
	switch target {
	case ErrReloadInProgress:
		return strings.EqualFold(strings.TrimSpace(e.Message), MsgReloadInProgress)
	case ErrNoSuchModule:
		return strings.EqualFold(strings.TrimSpace(e.Message), MsgNoSuchModule)
	case ErrModuleNotRunning:
		m := strings.TrimSpace(e.Message)
		return strings.EqualFold(m, MsgNoSuchModule) || strings.EqualFold(m, MsgNotInitialized)
	case ErrNotInitialized:
		return strings.EqualFold(strings.TrimSpace(e.Message), MsgNotInitialized)
	case ErrReloadNotSupported:
		return strings.EqualFold(strings.TrimSpace(e.Message), MsgReloadNotSupported)
	}
	return false
}

// OverflowError reports events a [Subscription] lost because its queue was
// full. It is returned by [Subscription.Next] at the place in the stream
// where the events are missing.
type OverflowError struct {
	Dropped uint64
}

// Error implements error.
func (e *OverflowError) Error() string {
	return fmt.Sprintf("%v: %d events lost", ErrEventOverflow, e.Dropped)
}

// Unwrap returns ErrEventOverflow.
func (e *OverflowError) Unwrap() error { return ErrEventOverflow }

// waitError turns a context ending while waiting for action into the
// package's timeout or cancellation error.
func waitError(action string, ctx context.Context, detail error) error {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = ctx.Err()
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		if detail != nil {
			return fmt.Errorf("%w waiting for action %s (%v): %w", ErrTimeout, action, detail, cause)
		}
		return fmt.Errorf("%w waiting for action %s: %w", ErrTimeout, action, cause)
	}
	return fmt.Errorf("action %s canceled: %w", action, cause)
}

// lostError is the error of an action whose connection ended.
func lostError(action string, cause error) error {
	return fmt.Errorf("%w during action %s: %w", ErrConnectionLost, action, cause)
}

// checkResponse turns a non-success response into an *ActionError.
func checkResponse(action string, m *Message) error {
	r := m.Response()
	if strings.EqualFold(r, "Success") || strings.EqualFold(r, "Follows") || strings.EqualFold(r, "Goodbye") {
		return nil
	}
	return &ActionError{Action: action, Response: r, Message: m.Get("Message"), Output: commandOutput(m)}
}
