// Package clidoc turns the description of a command-line program (its
// commands, their synopses, descriptions and flags, as the program's own
// --help prints them) into a manual page in troff (man macros) and a bash
// completion script. It is pure: a Program in, text out. cmd/pbxsync
// fills the Program from its help (`pbxsync gendoc`) so that the man page
// and the completion can never disagree with `pbxsync help`.
package clidoc
