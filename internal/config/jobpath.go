package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// jobPath refuses a files job whose tree would let an apply touch what the
// agent itself lives on: the root directory, a path that holds data_dir (the
// node key and the store), a path inside data_dir, or a path that holds this
// configuration file (a peer could rewrite the pins). Paths are compared both
// as written and with symbolic links resolved as far as they exist, so
// /etc/asterisk -> /var/lib/pbxsync/x is caught too. cfgFile is the file being
// checked (absolute, or "" when not known).
//
// Two jobs whose paths overlap are allowed: a relay is two jobs on one tree
// (examples/two-dc), and jobs with disjoint include/exclude filters may share
// a root. Each job only ever deletes paths its own filters admit.
func (c *checker) jobPath(s *section, j Job, dataDir, cfgFile string) {
	if j.Type != TypeFiles || j.Path == "" || !filepath.IsAbs(j.Path) {
		return
	}
	root := j.Path
	rootReal := resolveExisting(root)
	if root == "/" || rootReal == "/" {
		s.errf("path", "%q is the root directory; a job must name the tree it syncs (e.g. /etc/asterisk)", root)
		return
	}
	if dataDir != "" && filepath.IsAbs(dataDir) {
		dataReal := resolveExisting(dataDir)
		switch {
		case within(dataDir, root) || within(dataReal, rootReal):
			s.errf("path", "%q holds data_dir %q (node key and store); an apply could delete them: choose a job path outside data_dir", root, dataDir)
			return
		case within(root, dataDir) || within(rootReal, dataReal):
			s.errf("path", "%q lies inside data_dir %q (node key and store); choose a job path outside data_dir", root, dataDir)
			return
		}
	}
	if cfgFile != "" {
		if within(cfgFile, root) || within(resolveExisting(cfgFile), rootReal) {
			s.errf("path", "%q holds this configuration file %q; a peer could rewrite it: keep the config outside every job path", root, cfgFile)
		}
	}
}

// within reports whether path p is dir or lies below it (both clean and
// absolute).
func within(p, dir string) bool {
	if p == dir || dir == "/" {
		return true
	}
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// resolveExisting returns p with every symbolic link resolved in the part of
// p that exists; the missing rest is appended as written. p must be clean
// and absolute.
func resolveExisting(p string) string {
	rest := ""
	cur := p
	for {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(real, rest)
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrPermission) {
			// An unreadable or looping path: compare it as written.
			return p
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// absFile returns the absolute path of the file being checked, or "" when
// it does not name an existing file (Parse of data that came from elsewhere).
func (c *checker) absFile() string {
	if c.file == "" {
		return ""
	}
	if _, err := os.Stat(c.file); err != nil {
		return ""
	}
	abs, err := filepath.Abs(c.file)
	if err != nil {
		return ""
	}
	return abs
}
