package main

import (
	"errors"
	"fmt"
	"strings"

	"pbxsync/internal/config"
	"pbxsync/rules"
)

// checkRules compiles every job's [[job.rule]] entries as the agent will,
// so that `pbxsync check` and `pbxsync run` refuse a bad action, check or
// condition up front. Each problem is one line: FILE:LINE: job "J": rule[N]: message.
func checkRules(cfg *config.Config) error {
	var lines []string
	for _, j := range cfg.Jobs {
		if _, err := rules.Compile(j.Rules, true); err != nil {
			for _, e := range unjoin(err) {
				line := j.Line
				var re *rules.RuleError
				if errors.As(e, &re) && re.Index >= 0 && re.Index < len(j.Rules) && j.Rules[re.Index].Line > 0 {
					line = j.Rules[re.Index].Line
				}
				pos := cfg.File
				if line > 0 {
					pos = fmt.Sprintf("%s:%d", cfg.File, line)
				}
				lines = append(lines, fmt.Sprintf("%s: job %q: %v", pos, j.Name, e))
			}
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errors.New(strings.Join(lines, "\n"))
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
