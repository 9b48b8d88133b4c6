package tmpl

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"pbxsync/internal/glob"
)

// Suffix ends every template's name: X.tmpl renders to X.
const Suffix = ".tmpl"

// MaxOutput bounds what one template may render to.
const MaxOutput = 64 << 20

// Node is what a template sees as .Node.
type Node struct {
	Name string // [node] name
	Site string // [node] site; "" when not set
}

// Data is what a template sees: .Node and .Vars.
type Data struct {
	Node Node
	Vars map[string]string
}

// Set is the templates globs of one job.
type Set struct {
	globs []glob.Pattern
}

// Compile compiles a job's templates globs; nil or empty gives a Set that
// matches nothing.
func Compile(globs []string) (*Set, error) {
	s := &Set{}
	for _, g := range globs {
		p, err := glob.Compile(g)
		if err != nil {
			return nil, fmt.Errorf("templates pattern: %w", err)
		}
		s.globs = append(s.globs, p)
	}
	return s, nil
}

// Empty reports whether the set has no globs (the job has no templates).
func (s *Set) Empty() bool { return s == nil || len(s.globs) == 0 }

// IsTemplate reports whether rel (slash-separated, relative to the job
// root) is a template of the job: its name ends in ".tmpl" after at least
// one character and it matches one of the globs.
func (s *Set) IsTemplate(rel string) bool {
	if s.Empty() || !strings.HasSuffix(rel, Suffix) {
		return false
	}
	base := rel[strings.LastIndex(rel, "/")+1:]
	if len(base) <= len(Suffix) {
		return false
	}
	for _, p := range s.globs {
		if p.Match(rel, false) {
			return true
		}
	}
	return false
}

// IsOutput reports whether rel would be what a template renders to:
// rel+".tmpl" is a template of the job (whether or not that file exists;
// with "*.tmpl" every name qualifies) and rel is not a template itself.
func (s *Set) IsOutput(rel string) bool { return !s.IsTemplate(rel) && s.IsTemplate(rel+Suffix) }

// Output returns the path a template renders to: rel without ".tmpl".
func Output(rel string) string { return strings.TrimSuffix(rel, Suffix) }

// Error is a template that does not parse or render, at FILE:LINE:COL.
type Error struct {
	File      string // the template, as named to Render
	Line, Col int    // 0 when unknown
	Msg       string
}

// Error formats the error as FILE:LINE:COL: message.
func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Render executes the template text, named file in errors, with d. A key
// of .Vars that is not set is an error (missingkey=error).
func Render(file string, text []byte, d Data) ([]byte, error) {
	return render(file, text, d, MaxOutput)
}

// render is Render with a bound on the output of limit bytes.
func render(file string, text []byte, d Data, limit int) ([]byte, error) {
	t, err := template.New(file).Option("missingkey=error").Funcs(template.FuncMap{"index": index}).Parse(string(text))
	if err != nil {
		return nil, locate(file, text, err)
	}
	if err := checkRanges(t); err != nil {
		return nil, err
	}
	if d.Vars == nil {
		d.Vars = map[string]string{}
	}
	out := limitedBuffer{limit: limit}
	if err := t.Execute(&out, d); err != nil {
		return nil, locate(file, text, err)
	}
	return out.Bytes(), nil
}

// limitedBuffer refuses to grow past limit bytes.
type limitedBuffer struct {
	bytes.Buffer
	limit int
}

// errTooLarge is the error of a rendering beyond its bound.
var errTooLarge = errors.New("renders to more than the limit")

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.limit {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, b.limit)
	}
	return b.Buffer.Write(p)
}

// errPos takes text/template's "template: NAME:LINE[:COL]: message".
var errPos = regexp.MustCompile(`^(\d+)(?::(\d+))?: (.*)$`)

// missingKey is text/template's message for a key that is not set.
var missingKey = regexp.MustCompile(`^executing ".*" at <([^>]*)>: (?:error calling index: )?map has no entry for key "([^"]*)"$`)

// locate turns an error of text/template into an *Error at FILE:LINE:COL.
func locate(file string, text []byte, err error) *Error {
	e := &Error{File: file, Msg: err.Error()}
	if errors.Is(err, errTooLarge) {
		e.Msg = errTooLarge.Error()
		if i := strings.Index(err.Error(), errTooLarge.Error()); i >= 0 {
			e.Msg = err.Error()[i:]
		}
		return e
	}
	rest, ok := strings.CutPrefix(err.Error(), "template: "+file+":")
	if !ok {
		return e
	}
	m := errPos.FindStringSubmatch(rest)
	if m == nil {
		return e
	}
	e.Line, _ = strconv.Atoi(m[1])
	if m[2] != "" {
		// text/template counts the column in bytes from 0; editors
		// count characters from 1
		col, _ := strconv.Atoi(m[2])
		e.Col = charColumn(text, e.Line, col) + 1
	}
	e.Msg = m[3]
	if k := missingKey.FindStringSubmatch(e.Msg); k != nil {
		e.Msg = fmt.Sprintf("%s: %q is not set in this host's [node.vars] (a missing variable is an error, not an empty string)", k[1], k[2])
	} else if m, ok := strings.CutPrefix(e.Msg, `executing "`+file+`" at `); ok {
		e.Msg = m
	}
	return e
}

// charColumn turns a byte offset within line (1-based) of text into a
// count of characters.
func charColumn(text []byte, line, off int) int {
	lines := bytes.SplitN(text, []byte("\n"), line+1)
	if line < 1 || line > len(lines) {
		return off
	}
	l := lines[line-1]
	if off > len(l) {
		return off
	}
	return len([]rune(string(l[:off])))
}

// index is text/template's index with missingkey=error for maps: the
// built-in one gives the zero value for a missing key, which would turn
// {{ index .Vars "nope" }} into an empty string.
func index(item reflect.Value, keys ...reflect.Value) (reflect.Value, error) {
	v := indirect(item)
	if !v.IsValid() {
		return reflect.Value{}, errors.New("index of untyped nil")
	}
	for _, k := range keys {
		k = indirect(k)
		switch v.Kind() {
		case reflect.Map:
			if !k.IsValid() || !k.Type().AssignableTo(v.Type().Key()) {
				return reflect.Value{}, fmt.Errorf("index: key of type %s for a map of %s keys", typeOf(k), v.Type().Key())
			}
			x := v.MapIndex(k)
			if !x.IsValid() {
				return reflect.Value{}, fmt.Errorf("map has no entry for key %q", fmt.Sprint(k.Interface()))
			}
			v = indirect(x)
		case reflect.Slice, reflect.Array, reflect.String:
			if !k.IsValid() || !k.CanInt() {
				return reflect.Value{}, fmt.Errorf("index: cannot index a %s with %s", v.Kind(), typeOf(k))
			}
			i := k.Int()
			if i < 0 || i >= int64(v.Len()) {
				return reflect.Value{}, fmt.Errorf("index out of range: %d", i)
			}
			v = indirect(v.Index(int(i)))
		default:
			return reflect.Value{}, fmt.Errorf("cannot index a value of type %s", v.Type())
		}
	}
	return v, nil
}

func indirect(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) && !v.IsNil() {
		v = v.Elem()
	}
	return v
}

func typeOf(v reflect.Value) string {
	if !v.IsValid() {
		return "nil"
	}
	return v.Type().String()
}
