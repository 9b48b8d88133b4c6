package clidoc

// Program describes a command-line program with subcommands.
type Program struct {
	Name        string    // the binary, e.g. "pbxsync"
	Section     string    // manual section, e.g. "8"
	Version     string    // shown in the page footer
	Date        string    // shown in the page footer, e.g. "2026-12-02"
	Summary     string    // one line for NAME, without the program name
	Description string    // paragraphs separated by blank lines
	Commands    []Command // in the order the help lists them
	Sections    []Section // further sections (FILES, EXIT STATUS …) after COMMANDS
	SeeAlso     []string  // references such as "systemctl(1)"
}

// Command is one subcommand.
type Command struct {
	Name        string // e.g. "run"
	Summary     string // the one line of the command list
	Synopsis    string // the arguments after the name, e.g. "[--config FILE]"
	Description string // paragraphs separated by blank lines
	Flags       []Flag
}

// Flag is one flag of a command.
type Flag struct {
	Name    string // without dashes, e.g. "config"
	Arg     string // the value's placeholder, e.g. "FILE"; empty for a boolean flag
	Usage   string // what it does
	Default string // the default value, empty when none is worth showing
}

// Section is a manual section of tagged paragraphs, e.g. FILES.
type Section struct {
	Title   string  // e.g. "FILES"
	Text    string  // paragraphs before the entries; may be empty
	Entries []Entry // tagged paragraphs
}

// Entry is one tagged paragraph: a tag in italics (a path) or bold (a
// command), then its text.
type Entry struct {
	Tag  string
	Text string
}
