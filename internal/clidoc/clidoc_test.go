package clidoc

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// sample is a small program with the shapes the real help has: flags with
// and without a value, a command without flags, an example paragraph.
var sample = Program{
	Name: "tool", Section: "8", Version: "1.2-3", Date: "2026-12-02",
	Summary:     "does things",
	Description: "Tool does things\nacross lines.\n\n.dot at the start, a back\\slash.\n\n  tool run --config /etc/x.toml\n  tool id",
	Commands: []Command{
		{Name: "run", Summary: "run it", Synopsis: "[--config FILE] [--log-json]", Description: "Runs it.",
			Flags: []Flag{{Name: "config", Arg: "FILE", Usage: "configuration file", Default: "/etc/x.toml"}, {Name: "log-json", Usage: "log JSON"}}},
		{Name: "id", Summary: "print the ID", Synopsis: "[--data-dir DIR | --config FILE]",
			Flags: []Flag{{Name: "data-dir", Arg: "DIR", Usage: "data directory"}, {Name: "config", Arg: "FILE", Usage: "configuration"}}},
		{Name: "history", Summary: "list generations", Synopsis: "--job JOB",
			Flags: []Flag{{Name: "job", Arg: "JOB", Usage: "the job"}}},
		{Name: "version", Summary: "print the version"},
	},
	Sections: []Section{{Title: "Files", Entries: []Entry{{Tag: "/etc/x.toml", Text: "the configuration"}}}},
	SeeAlso:  []string{"systemctl(1)", "journalctl(1)"},
}

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"--config", `\-\-config`},
		{`a\b`, `a\eb`},
		{"plain", "plain"},
	} {
		if got := escape(tc.in); got != tc.want {
			t.Errorf("escape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{".x", `\&.x`},
		{"'x", `\&'x`},
		{"x.", "x."},
	} {
		if got := escapeLine(tc.in); got != tc.want {
			t.Errorf("escapeLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSynopsis(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[--config FILE]", `[\fB\-\-config\fR \fIFILE\fR]`},
		{"--job JOB [--to N] [--hold]", `\fB\-\-job\fR \fIJOB\fR [\fB\-\-to\fR \fIN\fR] [\fB\-\-hold\fR]`},
		{"[--data-dir DIR | --config FILE]", `[\fB\-\-data\-dir\fR \fIDIR\fR | \fB\-\-config\fR \fIFILE\fR]`},
		{"--job JOB N M", `\fB\-\-job\fR \fIJOB\fR \fIN\fR \fIM\fR`},
	} {
		if got := synopsis(tc.in); got != tc.want {
			t.Errorf("synopsis(%q) =\n %q, want\n %q", tc.in, got, tc.want)
		}
	}
}

func TestManStructure(t *testing.T) {
	var b bytes.Buffer
	if err := Man(&b, sample); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{
		`.TH "TOOL" 8 "2026\-12\-02" "tool 1.2\-3" "System Administration"` + "\n.nh\n.ad l\n",
		".SH NAME\ntool \\- does things\n",
		".SH SYNOPSIS\n.B \"tool run\"\n[\\fB\\-\\-config\\fR \\fIFILE\\fR] [\\fB\\-\\-log\\-json\\fR]\n.br\n",
		".SH DESCRIPTION\nTool does things\nacross lines.\n.PP\n\\&.dot at the start, a back\\eslash.\n.PP\n.RS\n.nf\n  tool run \\-\\-config /etc/x.toml\n",
		".SS \"tool run [\\-\\-config FILE] [\\-\\-log\\-json]\"\nRuns it.\n.TP\n\\fB\\-\\-config\\fR \\fIFILE\\fR\nconfiguration file (default: /etc/x.toml)\n.TP\n\\fB\\-\\-log\\-json\\fR\nlog JSON\n",
		".SS \"tool version\"\nprint the version\n",
		".SH \"FILES\"\n.TP\n.I \"/etc/x.toml\"\nthe configuration\n",
		".SH \"SEE ALSO\"\n.BR systemctl (1),\n.BR journalctl (1)\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q\npage:\n%s", want, page)
		}
	}
	// No text line may start with a control character that troff would
	// take for a request, except the requests we write.
	for i, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "'") || strings.HasPrefix(l, ".") && !isRequest(l) {
			t.Errorf("line %d %q would be read as a request", i+1, l)
		}
	}
}

func isRequest(l string) bool {
	for _, r := range []string{".\\\"", ".TH ", ".SH ", ".SS ", ".B ", ".I ", ".BR ", ".br", ".PP", ".nh", ".ad l", ".TP", ".RS", ".RE", ".nf", ".fi"} {
		if strings.HasPrefix(l, r) {
			return true
		}
	}
	return false
}

// TestManRenders runs the page through groff (man -l's formatter) and
// checks the text a reader sees, with warnings enabled.
func TestManRenders(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Fatal("groff not found (Debian: apt-get install groff-base):", err)
	}
	var b bytes.Buffer
	if err := Man(&b, sample); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-P", "-cbou")
	cmd.Stdin = &b
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("groff: %v\n%s", err, errb.String())
	}
	if errb.Len() > 0 {
		t.Errorf("groff warnings:\n%s", errb.String())
	}
	text := out.String()
	for _, want := range []string{"TOOL(8)", "tool - does things", "tool run [--config FILE] [--log-json]",
		"--config FILE", "(default: /etc/x.toml)", ".dot at the start, a back\\slash.", "tool run --config /etc/x.toml", "systemctl(1), journalctl(1)"} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, text)
		}
	}
}

// TestBashCompletion sources the script in a real bash and asks it for
// completions the way bash does (COMP_WORDS, COMP_CWORD).
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found:", err)
	}
	var script bytes.Buffer
	if err := Bash(&script, sample); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		words string // the command line, the last word being completed
		want  string // COMPREPLY, sorted, space-separated
	}{
		{"tool ", "help history id run version"},
		{"tool r", "run"},
		{"tool help ", "help history id run version"},
		{"tool help h", "help history"},
		{"tool run --", "--config --help --log-json"},
		{"tool id --d", "--data-dir"},
		{"tool id --data-dir " + dir[:len(dir)-2], dir},
		{"tool history --job ", ""},
		{"tool version ", "--help"},
		{"tool nosuch ", ""},
	} {
		words := strings.Split(tc.words, " ")
		q := make([]string, len(words))
		for i, w := range words {
			q[i] = shellQuote(w)
		}
		prog := script.String() + "\nCOMP_WORDS=(" + strings.Join(q, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) +
			"\n_tool\nprintf '%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '\n"
		out, err := exec.Command(bash, "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: bash: %v\n%s", tc.words, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
	if !strings.Contains(script.String(), "complete -F _tool tool\n") {
		t.Errorf("script does not register _tool:\n%s", script.String())
	}
}
