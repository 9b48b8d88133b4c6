package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"pbxsync/internal/glob"
	"pbxsync/internal/identity"
)

// checkAbs reports whether p is an absolute path.
func checkAbs(p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("%q must be an absolute path", p)
	}
	return nil
}

// cleanPath returns the shortest form of an absolute path.
func cleanPath(p string) string { return filepath.Clean(p) }

// checkHostPort checks a host:port address with a numeric port in 1..65535.
// emptyHost allows ":port" (all addresses, for listening).
func checkHostPort(v string, emptyHost bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%q is not host:port: %s", v, ae.Err)
		}
		return fmt.Errorf("%q is not host:port: %w", v, err)
	}
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("%q: port %q is not a number", v, port)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %s is out of range 1..65535", v, port)
	}
	if host == "" && !emptyHost {
		return fmt.Errorf("%q: host must not be empty", v)
	}
	if strings.ContainsAny(host, " \t") {
		return fmt.Errorf("%q: host %q contains white space", v, host)
	}
	return nil
}

// parseID parses a node ID as printed by `pbxsync id`.
func parseID(s string) (identity.ID, error) {
	id, err := identity.ParseID(s)
	if err != nil {
		return id, fmt.Errorf("bad id: %w", err)
	}
	return id, nil
}

// validJobName reports whether name matches [A-Za-z0-9_.-]+.
func validJobName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(isBareKeyChar(c) || c == '.') {
			return false
		}
	}
	return true
}

// checkGlob checks a pattern with the one glob syntax of pbxsync
// (internal/glob), so that what passes here compiles in the agent.
func checkGlob(p string) error {
	_, err := glob.Compile(p)
	return err
}
