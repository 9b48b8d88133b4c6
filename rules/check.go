package rules

import (
	"fmt"
	"strings"
)

// CheckKind says how a Check decides whether a generation is healthy.
type CheckKind uint8

// Check kinds.
const (
	// CheckAMI passes when every action of the plan got a successful AMI
	// response (Reload answers Error for a dialplan it cannot parse).
	CheckAMI CheckKind = iota + 1
	// CheckLog passes when the Asterisk log written since the first action
	// holds no ERROR or WARNING line about a parse error or an invalid
	// format. Many modules keep their old config on a parse error and still
	// answer Success; the log line is the only trace.
	CheckLog
	// CheckCommand runs Command with the shell in the job root; exit 0 passes.
	CheckCommand
)

// Reserved words of a rule's check string.
const (
	CheckWordAMI = "ami"
	CheckWordLog = "log"
)

// String returns "ami", "log" or "command".
func (k CheckKind) String() string {
	switch k {
	case CheckAMI:
		return CheckWordAMI
	case CheckLog:
		return CheckWordLog
	case CheckCommand:
		return "command"
	}
	return fmt.Sprintf("CheckKind(%d)", uint8(k))
}

// Check is one test run after the actions of a generation; a failed check
// rolls the generation back.
type Check struct {
	Kind    CheckKind
	Command string   // CheckCommand: the shell command
	Rule    string   // where it came from; merged checks list every origin, comma-separated
	Paths   []string // the changed paths whose rules asked for it, sorted
}

// String returns the check in the form ParseCheck reads.
func (c Check) String() string {
	if c.Kind == CheckCommand {
		return c.Command
	}
	return c.Kind.String()
}

// ParseCheck parses a rule's check string. The whole string, trimmed, is
// either a reserved word or a shell command:
//
//	ami     CheckAMI: the actions' own AMI responses must be Success
//	log     CheckLog: no parse error in the Asterisk log since the actions
//	other   CheckCommand: a shell command run in the job root, exit 0 passes
//
// The reserved words are case-insensitive. To run a program that is called
// "ami" or "log", write its path ("./log", "/usr/local/bin/log").
func ParseCheck(s string) (Check, error) {
	bad := func(msg string) (Check, error) {
		return Check{}, &SyntaxError{What: "check", Input: s, Msg: msg}
	}
	if strings.IndexByte(s, 0) >= 0 {
		return bad("contains a NUL byte")
	}
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "":
		return bad(`empty; valid: ami, log, or a shell command (exit 0 passes)`)
	case CheckWordAMI:
		return Check{Kind: CheckAMI}, nil
	case CheckWordLog:
		return Check{Kind: CheckLog}, nil
	}
	return Check{Kind: CheckCommand, Command: t}, nil
}
