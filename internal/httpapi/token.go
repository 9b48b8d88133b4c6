package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// TokenFile is the file in data_dir that holds the API token.
const TokenFile = "http-token"

// TokenPath returns the token file of the agent using dataDir.
func TokenPath(dataDir string) string { return filepath.Join(dataDir, TokenFile) }

// LoadOrCreateToken returns the API token kept in dataDir, creating it
// (32 random bytes, base64url, file mode 0600) when it is missing; created
// says whether it did. Two processes creating it at once agree on one: the
// file appears complete under its name or not at all (link of a synced
// temporary file).
func LoadOrCreateToken(dataDir string) (token string, created bool, err error) {
	path := TokenPath(dataDir)
	if tok, err := ReadToken(path); err == nil {
		return tok, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("api token: %w", err)
	}
	tok, err := writeToken(path, false)
	if errors.Is(err, os.ErrExist) {
		tok, err = ReadToken(path)
		return tok, false, err
	}
	return tok, err == nil, err
}

// RotateToken replaces the token in dataDir by a new one and returns it;
// the old one stops working at once (the agent reads the file on every
// action).
func RotateToken(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	return writeToken(TokenPath(dataDir), true)
}

// ReadToken reads the token file at path; it refuses a file that others
// than its owner may read.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("api token %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("api token %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("api token %s: mode %04o lets others read it; chmod 600 it (or delete it and run 'pbxsync token' for a new one)", path, st.Mode().Perm())
	}
	b := make([]byte, 256)
	n, _ := f.Read(b)
	tok := strings.TrimSpace(string(b[:n]))
	if len(tok) < 32 {
		return "", fmt.Errorf("api token %s: too short or empty; delete it and run 'pbxsync token' for a new one", path)
	}
	return tok, nil
}

// writeToken writes a new token to path: a temporary file, synced, then
// linked to path (fails with ErrExist when path exists) or, with replace,
// renamed over it.
func writeToken(path string, replace bool) (string, error) {
	var raw [32]byte
	rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	tmp, err := os.CreateTemp(filepath.Dir(path), ".http-token-*")
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("api token: %w", err)
	}
	if err := ownLikeDir(tmp, filepath.Dir(path)); err != nil {
		tmp.Close()
		return "", fmt.Errorf("api token %s: %w", path, err)
	}
	if _, err := tmp.WriteString(tok + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("api token %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("api token %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("api token %s: %w", tmp.Name(), err)
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", err
		}
		return "", fmt.Errorf("api token %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return tok, nil
}

// ownLikeDir gives f the owner of dir when this process runs as root:
// `sudo pbxsync token` must not leave a file the agent (User=asterisk in
// the systemd unit, data_dir its StateDirectory) cannot read.
func ownLikeDir(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

// tokenEqual compares a presented token with the valid one in constant
// time (for tokens of the same length; the length is no secret).
func tokenEqual(presented, valid string) bool {
	return valid != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(valid)) == 1
}
