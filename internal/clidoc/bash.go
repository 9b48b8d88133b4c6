package clidoc

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Bash writes a bash completion script for p: the command names after the
// program name (and after "help"), each command's flags, file names after
// a flag whose placeholder is FILE and directory names after DIR. The
// script defines one function, _NAME, and registers it with complete -F.
func Bash(w io.Writer, p Program) error {
	fn := "_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, p.Name)
	names := make([]string, 0, len(p.Commands)+1)
	for _, c := range p.Commands {
		names = append(names, c.Name)
	}
	if !slices.Contains(names, "help") {
		names = append(names, "help")
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s: generated from `%s help`; do not edit.\n", p.Name, p.Name)
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("\tCOMPREPLY=()\n")
	b.WriteString("\tif ((COMP_CWORD == 1)); then\n")
	fmt.Fprintf(&b, "\t\tCOMPREPLY=($(compgen -W %s -- \"$cur\"))\n", shellQuote(strings.Join(names, " ")))
	b.WriteString("\t\treturn 0\n\tfi\n")
	b.WriteString("\tlocal cmd=${COMP_WORDS[1]}\n")
	b.WriteString("\tif [[ $cmd == help ]]; then\n")
	b.WriteString("\t\t((COMP_CWORD == 2)) &&\n")
	fmt.Fprintf(&b, "\t\t\tCOMPREPLY=($(compgen -W %s -- \"$cur\"))\n", shellQuote(strings.Join(names, " ")))
	b.WriteString("\t\treturn 0\n\tfi\n")

	// The value of a flag: files, directories, or nothing to offer.
	values := map[string][]string{} // "files"/"dirs"/"none" -> "cmd --flag" patterns
	for _, c := range p.Commands {
		for _, f := range c.Flags {
			if f.Arg == "" {
				continue
			}
			kind := "none"
			switch f.Arg {
			case "FILE":
				kind = "files"
			case "DIR":
				kind = "dirs"
			}
			values[kind] = append(values[kind], c.Name+" --"+f.Name, c.Name+" -"+f.Name)
		}
	}
	if len(values) > 0 {
		b.WriteString("\tcase \"$cmd $prev\" in\n")
		for _, kind := range slices.Sorted(maps.Keys(values)) {
			quoted := make([]string, len(values[kind]))
			for i, v := range values[kind] {
				quoted[i] = shellQuote(v)
			}
			fmt.Fprintf(&b, "\t%s)\n", strings.Join(quoted, " | "))
			switch kind {
			case "files":
				b.WriteString("\t\tcompopt -o filenames 2>/dev/null\n")
				b.WriteString("\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n")
			case "dirs":
				b.WriteString("\t\tcompopt -o filenames 2>/dev/null\n")
				b.WriteString("\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n")
			}
			b.WriteString("\t\treturn 0\n\t\t;;\n")
		}
		b.WriteString("\tesac\n")
	}

	b.WriteString("\tcase $cmd in\n")
	for _, c := range p.Commands {
		flags := []string{"--help"}
		for _, f := range c.Flags {
			flags = append(flags, "--"+f.Name)
		}
		fmt.Fprintf(&b, "\t%s)\n\t\tCOMPREPLY=($(compgen -W %s -- \"$cur\"))\n\t\t;;\n",
			shellQuote(c.Name), shellQuote(strings.Join(flags, " ")))
	}
	b.WriteString("\tesac\n\treturn 0\n}\n")
	fmt.Fprintf(&b, "complete -F %s %s\n", fn, p.Name)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write bash completion: %w", err)
	}
	return nil
}

// shellQuote quotes s for bash in single quotes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
