package debpkg

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"pbxsync/internal/config"
)

// sh runs a command and returns its stdout; it fails the test on an error.
func sh(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	// The deadline only ends a hang: a cold cross build under load is slow.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

var debVersion = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// TestVersionScript: version.sh turns git describe into a version dpkg
// accepts, and later commits sort higher.
func TestVersionScript(t *testing.T) {
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234"},
		{"v1.2.3-rc1", "1.2.3~rc1"},
		{"v1.2.3-rc1-2-gdead", "1.2.3~rc1+2.gdead"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"abc1234", "0.0~git20261202035300.abc1234"},
		{"f1e8936-dirty", "0.0~git20261202035300.f1e8936+dirty"},
	} {
		got := strings.TrimSpace(sh(t, ".", nil, "./version.sh", tc.describe, "20261202035300"))
		if got != tc.want || !debVersion.MatchString(got) {
			t.Errorf("version.sh %s = %q, want %q", tc.describe, got, tc.want)
		}
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Fatal("dpkg not found (the package tests need a Debian machine):", err)
	}
	order := []string{"0.0~git20261202035300.abc1234", "0.0~git20261203000000.bcd2345", "1.2.3~rc1", "1.2.3~rc1+2.gdead", "1.2.3", "1.2.3+4.gabc1234", "1.2.4~rc1"}
	for i := 1; i < len(order); i++ {
		sh(t, ".", nil, "dpkg", "--compare-versions", order[i-1], "lt", order[i])
	}
	if got := strings.TrimSpace(sh(t, ".", nil, "./version.sh")); !debVersion.MatchString(got) {
		t.Errorf("version.sh of this checkout = %q: not a Debian version", got)
	}
}

// entry is one line of dpkg-deb -c: mode and owner of a path.
type entry struct{ mode, owner string }

// TestDebPackages builds the amd64 and arm64 packages as `make deb` does
// and inspects them with dpkg-deb: control fields, every file with its
// mode and owner, the conffile, the maintainer scripts, the binary's
// architecture, the unit, the manual page (rendered by groff) and the
// bash completion (run in bash).
func TestDebPackages(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "bash", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (the package tests need a Debian machine): %v", tool, err)
		}
	}
	const version = "9.8.7~test1"
	dist := t.TempDir()
	sh(t, ".", []string{"DIST=" + dist, "DEB_VERSION=" + version, "SOURCE_DATE_EPOCH=1796176800"}, "./build.sh", "amd64", "arm64")

	source, err := os.ReadFile("../../examples/systemd/pbxsync.service")
	if err != nil {
		t.Fatal(err)
	}
	wantUnit := strings.ReplaceAll(string(source), "/usr/local/bin/pbxsync", "/usr/bin/pbxsync")
	wantFiles := map[string]entry{
		"./etc/":                               {"drwxr-xr-x", "root/root"},
		"./etc/pbxsync/":                       {"drwxr-xr-x", "root/root"},
		"./etc/pbxsync/pbxsync.toml":           {"-rw-r-----", "root/root"},
		"./lib/":                               {"drwxr-xr-x", "root/root"},
		"./lib/systemd/":                       {"drwxr-xr-x", "root/root"},
		"./lib/systemd/system/":                {"drwxr-xr-x", "root/root"},
		"./lib/systemd/system/pbxsync.service": {"-rw-r--r--", "root/root"},
		"./usr/":                               {"drwxr-xr-x", "root/root"},
		"./usr/bin/":                           {"drwxr-xr-x", "root/root"},
		"./usr/bin/pbxsync":                    {"-rwxr-xr-x", "root/root"},
		"./usr/share/":                         {"drwxr-xr-x", "root/root"},
		"./usr/share/bash-completion/":         {"drwxr-xr-x", "root/root"},
		"./usr/share/bash-completion/completions/":        {"drwxr-xr-x", "root/root"},
		"./usr/share/bash-completion/completions/pbxsync": {"-rw-r--r--", "root/root"},
		"./usr/share/man/":                  {"drwxr-xr-x", "root/root"},
		"./usr/share/man/man8/":             {"drwxr-xr-x", "root/root"},
		"./usr/share/man/man8/pbxsync.8.gz": {"-rw-r--r--", "root/root"},
		"./var/":                            {"drwxr-xr-x", "root/root"},
		"./var/lib/":                        {"drwxr-xr-x", "root/root"},
		"./var/lib/pbxsync/":                {"drwx------", "root/root"},
	}

	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		t.Run(arch, func(t *testing.T) {
			deb := filepath.Join(dist, "pbxsync_"+version+"_"+arch+".deb")
			if _, err := os.Stat(deb); err != nil {
				t.Fatalf("make deb did not write %s: %v", deb, err)
			}

			// Control fields.
			for field, want := range map[string]string{
				"Package": "pbxsync", "Version": version, "Architecture": arch,
				"Section": "net", "Priority": "optional",
			} {
				if got := strings.TrimSpace(sh(t, ".", nil, "dpkg-deb", "-f", deb, field)); got != want {
					t.Errorf("%s: %s = %q, want %q", arch, field, got, want)
				}
			}
			for _, field := range []string{"Maintainer", "Description", "Installed-Size"} {
				if strings.TrimSpace(sh(t, ".", nil, "dpkg-deb", "-f", deb, field)) == "" {
					t.Errorf("%s: no %s field", arch, field)
				}
			}
			info := sh(t, ".", nil, "dpkg-deb", "-I", deb)
			for _, want := range []string{"conffiles", "postinst", "prerm", "postrm", "md5sums"} {
				if !strings.Contains(info, want) {
					t.Errorf("%s: dpkg-deb -I lists no %s:\n%s", arch, want, info)
				}
			}

			// Files, modes, owners: exactly these.
			got := map[string]entry{}
			for _, l := range strings.Split(strings.TrimSpace(sh(t, ".", nil, "dpkg-deb", "-c", deb)), "\n") {
				f := strings.Fields(l)
				if len(f) != 6 {
					t.Fatalf("%s: dpkg-deb -c line %q", arch, l)
				}
				got[f[5]] = entry{f[0], f[1]}
			}
			for p, w := range wantFiles {
				if g, ok := got[p]; !ok {
					t.Errorf("%s: package lacks %s", arch, p)
				} else if g != w {
					t.Errorf("%s: %s is %s %s, want %s %s", arch, p, g.mode, g.owner, w.mode, w.owner)
				}
			}
			for p := range got {
				if _, ok := wantFiles[p]; !ok {
					t.Errorf("%s: unexpected file %s in the package", arch, p)
				}
			}

			// Control archive: conffiles and the maintainer scripts as written.
			ctrl := t.TempDir()
			sh(t, ".", nil, "dpkg-deb", "-e", deb, ctrl)
			if b, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); string(b) != "/etc/pbxsync/pbxsync.toml\n" {
				t.Errorf("%s: conffiles = %q", arch, b)
			}
			for _, s := range []string{"postinst", "prerm", "postrm"} {
				p := filepath.Join(ctrl, s)
				fi, err := os.Stat(p)
				if err != nil {
					t.Errorf("%s: no %s: %v", arch, s, err)
					continue
				}
				if fi.Mode().Perm() != 0o755 {
					t.Errorf("%s: %s mode %v, want 0755", arch, s, fi.Mode().Perm())
				}
				b, _ := os.ReadFile(p)
				src, _ := os.ReadFile(filepath.Join("scripts", s))
				if !bytes.Equal(b, src) {
					t.Errorf("%s: %s differs from scripts/%s", arch, s, s)
				}
				sh(t, ".", nil, "sh", "-n", p)
			}

			// The data: extract and look at each file.
			root := t.TempDir()
			sh(t, ".", nil, "dpkg-deb", "-x", deb, root)
			bin := filepath.Join(root, "usr/bin/pbxsync")
			ef, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("%s: %v", arch, err)
			}
			if ef.Machine != machine {
				t.Errorf("%s: /usr/bin/pbxsync is for %v, want %v", arch, ef.Machine, machine)
			}
			ef.Close()
			if arch == runtime.GOARCH {
				if out := sh(t, ".", nil, bin, "version"); out != "pbxsync "+version+"\n" {
					t.Errorf("%s: pbxsync version printed %q", arch, out)
				}
			}

			unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/pbxsync.service"))
			if string(unit) != wantUnit {
				t.Errorf("%s: the packaged unit is not examples/systemd/pbxsync.service with /usr/bin/pbxsync", arch)
			}
			for _, want := range []string{"\nExecCondition=/usr/bin/pbxsync check --configured --config /etc/pbxsync/pbxsync.toml\n",
				"\nExecStart=/usr/bin/pbxsync run --config /etc/pbxsync/pbxsync.toml\n", "\nStateDirectoryMode=0700\n",
				"\nRestartPreventExitStatus=78\n", "\nReadWritePaths=/var/lib/pbxsync -/etc/asterisk -/var/lib/asterisk -/var/spool/asterisk\n"} {
				if !strings.Contains(string(unit), want) {
					t.Errorf("%s: unit lacks %q", arch, strings.TrimSpace(want))
				}
			}
			if strings.Contains(string(unit), "/usr/local") {
				t.Errorf("%s: unit names /usr/local", arch)
			}

			conf, _ := os.ReadFile(filepath.Join(root, "etc/pbxsync/pbxsync.toml"))
			if string(conf) != config.Template() || config.HasNode(conf) {
				t.Errorf("%s: /etc/pbxsync/pbxsync.toml is not the template without [node]", arch)
			}

			checkManPage(t, filepath.Join(root, "usr/share/man/man8/pbxsync.8.gz"), version)
			checkCompletion(t, filepath.Join(root, "usr/share/bash-completion/completions/pbxsync"))
		})
	}
}

// checkManPage renders the page with groff (what man -l uses), warnings
// on; without groff it checks the troff structure.
func checkManPage(t *testing.T, path, version string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	page, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	src := string(page)
	for _, want := range []string{".TH \"PBXSYNC\" 8 \"2026\\-12\\-02\"", ".SH NAME\npbxsync \\- ", ".SH SYNOPSIS\n", ".SH COMMANDS\n", ".SS \"pbxsync run", ".SH \"FILES\"\n"} {
		if !strings.Contains(src, want) {
			t.Errorf("man page source lacks %q", want)
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Logf("groff not found: checked the troff structure only")
		return
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-P", "-cbou")
	cmd.Stdin = bytes.NewReader(page)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errb.String())
	}
	for _, want := range []string{"PBXSYNC(8)", "pbxsync " + version, "pbxsync rollback [--config FILE] --job JOB [--to N] [--hold]", "/var/lib/pbxsync"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rendered man page lacks %q", want)
		}
	}
}

// checkCompletion sources the completion in bash and completes commands
// and flags.
func checkCompletion(t *testing.T, path string) {
	t.Helper()
	for words, want := range map[string]string{
		"pbxsync ro":         "rollback",
		"pbxsync resume --":  "--config --help --job",
		"pbxsync check --ex": "--example",
	} {
		w := strings.Fields(words)
		prog := ". " + path + "\nCOMP_WORDS=(" + strings.Join(w, " ") + ")\nCOMP_CWORD=" + string(rune('0'+len(w)-1)) +
			"\n_pbxsync\nprintf '%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '\n"
		got := strings.TrimSpace(sh(t, ".", nil, "bash", "-c", prog))
		if got != want {
			t.Errorf("completion of %q = %q, want %q", words, got, want)
		}
	}
}
