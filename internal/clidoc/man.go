package clidoc

import (
	"fmt"
	"io"
	"strings"
)

// Man writes p as a manual page in troff with the man macros (man(7)), the
// format man(1) and groff read.
func Man(w io.Writer, p Program) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".\\\" %s(%s): generated from `%s help`; do not edit.\n", p.Name, p.Section, p.Name)
	fmt.Fprintf(&b, ".TH %s %s %s %s %s\n", quote(strings.ToUpper(p.Name)), p.Section,
		quote(p.Date), quote(p.Name+" "+p.Version), quote("System Administration"))
	// No hyphenation and no justification: keys such as ExecCondition=
	// and flags must stay whole, to be found with / and copied.
	b.WriteString(".nh\n.ad l\n")
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", escape(p.Name), escape(p.Summary))

	b.WriteString(".SH SYNOPSIS\n")
	for i, c := range p.Commands {
		if i > 0 {
			b.WriteString(".br\n")
		}
		fmt.Fprintf(&b, ".B %s\n", quote(p.Name+" "+c.Name))
		if c.Synopsis != "" {
			b.WriteString(synopsis(c.Synopsis) + "\n")
		}
	}

	b.WriteString(".SH DESCRIPTION\n")
	paragraphs(&b, p.Description)

	if len(p.Commands) > 0 {
		b.WriteString(".SH COMMANDS\n")
	}
	for _, c := range p.Commands {
		head := p.Name + " " + c.Name
		if c.Synopsis != "" {
			head += " " + c.Synopsis
		}
		fmt.Fprintf(&b, ".SS %s\n", quote(head))
		text := c.Description
		if text == "" {
			text = c.Summary
		}
		paragraphs(&b, text)
		for _, f := range c.Flags {
			b.WriteString(".TP\n")
			fmt.Fprintf(&b, "\\fB\\-\\-%s\\fR", escape(f.Name))
			if f.Arg != "" {
				fmt.Fprintf(&b, " \\fI%s\\fR", escape(f.Arg))
			}
			b.WriteString("\n")
			usage := f.Usage
			if f.Default != "" {
				usage += " (default: " + f.Default + ")"
			}
			lines(&b, usage)
		}
	}

	for _, s := range p.Sections {
		fmt.Fprintf(&b, ".SH %s\n", quote(strings.ToUpper(s.Title)))
		if s.Text != "" {
			paragraphs(&b, s.Text)
		}
		for _, e := range s.Entries {
			b.WriteString(".TP\n")
			font := "B"
			if strings.HasPrefix(e.Tag, "/") {
				font = "I"
			}
			fmt.Fprintf(&b, ".%s %s\n", font, quote(e.Tag))
			lines(&b, e.Text)
		}
	}

	if len(p.SeeAlso) > 0 {
		b.WriteString(".SH \"SEE ALSO\"\n")
		for i, ref := range p.SeeAlso {
			name, sec, ok := strings.Cut(strings.TrimSuffix(ref, ")"), "(")
			sep := ","
			if i == len(p.SeeAlso)-1 {
				sep = ""
			}
			if ok {
				fmt.Fprintf(&b, ".BR %s (%s)%s\n", escape(name), escape(sec), sep)
			} else {
				fmt.Fprintf(&b, "%s%s\n", escape(ref), sep)
			}
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write manual page: %w", err)
	}
	return nil
}

// synopsis renders "[--config FILE] --job JOB" with flags in bold and
// placeholders (words in capitals) in italics.
func synopsis(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		// Split off brackets and bars so that only the word changes font.
		lead := len(w) - len(strings.TrimLeft(w, "[|"))
		trail := len(strings.TrimRight(w, "]|."))
		if trail < lead {
			trail = lead
		}
		pre, core, post := w[:lead], w[lead:trail], w[trail:]
		switch {
		case strings.HasPrefix(core, "-"):
			core = "\\fB" + escape(core) + "\\fR"
		case core != "" && core == strings.ToUpper(core) && strings.ToLower(core) != core:
			core = "\\fI" + escape(core) + "\\fR"
		default:
			core = escape(core)
		}
		words[i] = escape(pre) + core + escape(post)
	}
	return strings.Join(words, " ")
}

// paragraphs writes text whose paragraphs are separated by blank lines.
// A paragraph whose lines are indented is kept as it is (no filling), as
// an example.
func paragraphs(b *strings.Builder, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		if isLiteral(para) {
			b.WriteString(".RS\n.nf\n")
			for _, l := range strings.Split(para, "\n") {
				b.WriteString(escapeLine(strings.TrimRight(l, " ")) + "\n")
			}
			b.WriteString(".fi\n.RE\n")
			continue
		}
		lines(b, para)
	}
}

func isLiteral(para string) bool {
	for _, l := range strings.Split(para, "\n") {
		if !strings.HasPrefix(l, "  ") {
			return false
		}
	}
	return true
}

// lines writes filled text, one source line per input line.
func lines(b *strings.Builder, text string) {
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		b.WriteString(escapeLine(l) + "\n")
	}
}

// escapeLine escapes one line of text, including a leading control
// character ('.' or '\”) that troff would take for a request.
func escapeLine(l string) string {
	e := escape(l)
	if strings.HasPrefix(e, ".") || strings.HasPrefix(e, "'") {
		e = "\\&" + e
	}
	return e
}

// escape makes s print literally in troff: backslashes and minus signs
// (so that "--config" stays two ASCII hyphens for copy and paste).
func escape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	return strings.ReplaceAll(s, "-", `\-`)
}

// quote makes s one macro argument.
func quote(s string) string {
	return `"` + strings.ReplaceAll(escape(s), `"`, `\(dq`) + `"`
}
