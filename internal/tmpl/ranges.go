package tmpl

import (
	"fmt"
	"text/template"
	"text/template/parse"
)

// checkRanges refuses a range over anything but a field of the data
// (.Vars, $.Vars): text/template ranges over integers too, and
// {{ range 1000000000 }}{{ end }} would keep the job busy for a minute
// without writing a byte. Ranging over a map of this host's vars is what
// a template needs; it is bounded by the vars.
//
// For the same reason a template may not call itself, directly or through
// others ({{ define "a" }}{{ template "a" }}{{ template "a" }}{{ end }}
// doubles its work at every level), and ranges nest at most maxRangeDepth
// deep.
func checkRanges(t *template.Template) error {
	calls := map[string][]*parse.TemplateNode{}
	trees := map[string]*parse.Tree{}
	for _, x := range t.Templates() {
		if x.Tree == nil || x.Tree.Root == nil {
			continue
		}
		w := &walker{tree: x.Tree}
		if err := w.walk(x.Tree.Root, 0); err != nil {
			return err
		}
		calls[x.Name()], trees[x.Name()] = w.calls, x.Tree
	}
	// a call that leads back to its own template is recursion
	for name, cs := range calls {
		for _, c := range cs {
			if reaches(calls, c.Name, name, map[string]bool{}) {
				loc, _ := trees[name].ErrorContext(c)
				return &Error{File: trees[name].ParseName, Line: lineOf(loc), Col: colOf(loc), Msg: fmt.Sprintf("{{ template %q }} calls %q again: a template may not be recursive", c.Name, name)}
			}
		}
	}
	return nil
}

// maxRangeDepth bounds how deep ranges nest.
const maxRangeDepth = 2

// reaches reports whether template from calls (perhaps through others) to.
func reaches(calls map[string][]*parse.TemplateNode, from, to string, seen map[string]bool) bool {
	if from == to {
		return true
	}
	if seen[from] {
		return false
	}
	seen[from] = true
	for _, c := range calls[from] {
		if reaches(calls, c.Name, to, seen) {
			return true
		}
	}
	return false
}

// walker checks one template's tree and collects its calls.
type walker struct {
	tree  *parse.Tree
	calls []*parse.TemplateNode
}

func (w *walker) errAt(n parse.Node, format string, args ...any) error {
	loc, _ := w.tree.ErrorContext(n)
	return &Error{File: w.tree.ParseName, Line: lineOf(loc), Col: colOf(loc), Msg: fmt.Sprintf(format, args...)}
}

func (w *walker) walk(n parse.Node, depth int) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := w.walk(c, depth); err != nil {
				return err
			}
		}
	case *parse.TemplateNode:
		w.calls = append(w.calls, n)
	case *parse.RangeNode:
		if !rangeOverField(n.Pipe) {
			return w.errAt(n, "range over %s: a template may range only over a field of its data (e.g. .Vars), not over a number, a variable or a function's result", n.Pipe)
		}
		if depth >= maxRangeDepth {
			return w.errAt(n, "range over %s: ranges nest at most %d deep", n.Pipe, maxRangeDepth)
		}
		return w.branch(&n.BranchNode, depth+1)
	case *parse.IfNode:
		return w.branch(&n.BranchNode, depth)
	case *parse.WithNode:
		return w.branch(&n.BranchNode, depth)
	}
	return nil
}

func (w *walker) branch(b *parse.BranchNode, depth int) error {
	if err := w.walk(b.List, depth); err != nil {
		return err
	}
	if b.ElseList != nil {
		return w.walk(b.ElseList, depth)
	}
	return nil
}

// rangeOverField reports whether a range's pipeline is a field of the
// data: .Vars, $.Vars, or . itself inside a with.
func rangeOverField(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.FieldNode, *parse.DotNode:
		return true
	case *parse.VariableNode:
		return len(a.Ident) > 1 && a.Ident[0] == "$"
	}
	return false
}

// lineOf and colOf read "NAME:LINE:COL" of parse.Tree.ErrorContext.
func lineOf(loc string) int { l, _ := splitLoc(loc); return l }
func colOf(loc string) int  { _, c := splitLoc(loc); return c }

func splitLoc(loc string) (line, col int) {
	var i, j int
	for k := len(loc) - 1; k >= 0; k-- {
		if loc[k] == ':' {
			if j == 0 {
				j = k
			} else {
				i = k
				break
			}
		}
	}
	if i == 0 || j == 0 {
		return 0, 0
	}
	fmt.Sscanf(loc[i+1:j], "%d", &line)
	fmt.Sscanf(loc[j+1:], "%d", &col)
	return line, col + 1
}
