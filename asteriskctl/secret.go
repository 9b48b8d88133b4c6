package asteriskctl

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

const redacted = "[redacted]"

// secret holds the AMI secret. Every way of printing it yields
// "[redacted]", so a stray %v or slog attribute cannot leak it.
type secret struct{ v string }

func (secret) String() string             { return redacted }
func (secret) GoString() string           { return redacted }
func (secret) LogValue() slog.Value       { return slog.StringValue(redacted) }
func (secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }
func (s secret) reveal() string           { return s.v }

// readSecretFile reads the AMI secret from path: the file's content with
// surrounding white space (a trailing newline) removed. Errors name the file,
// never its content. A file readable by others is accepted with a warning.
func readSecretFile(path string, log *slog.Logger) (secret, error) {
	if path == "" {
		return secret{}, fmt.Errorf("AMI secret_file is not set")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return secret{}, fmt.Errorf("AMI secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return secret{}, fmt.Errorf("AMI secret file %s is not a regular file", path)
	}
	if fi.Size() > 4096 {
		return secret{}, fmt.Errorf("AMI secret file %s is larger than 4096 bytes", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return secret{}, fmt.Errorf("AMI secret file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return secret{}, fmt.Errorf("AMI secret file %s is empty", path)
	}
	if strings.ContainsAny(v, "\r\n") {
		return secret{}, fmt.Errorf("AMI secret file %s holds more than one line", path)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		log.Warn("AMI secret file is readable by every user", "path", path, "mode", fi.Mode().Perm().String())
	}
	return secret{v: v}, nil
}

// CheckSecretFile reports whether path holds a usable AMI secret, as New
// would read it (it exists, is a regular file of one non-empty line of at
// most 4096 bytes), without starting a session; `pbxsync check` uses it.
// The error names the file, never its content.
func CheckSecretFile(path string) error {
	_, err := readSecretFile(path, slog.New(slog.DiscardHandler))
	return err
}
