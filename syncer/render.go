package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"pbxsync/hostmon"
	"pbxsync/internal/beneath"
	"pbxsync/internal/config"
	"pbxsync/internal/index"
	"pbxsync/internal/store"
	"pbxsync/internal/tmpl"
	"pbxsync/internal/wire"
)

// Per-host templates ([[job]] templates, internal/tmpl): a synced file
// X.tmpl is rendered on every member, source and targets alike, to X with
// this node's [node] name, site and vars. X is never synced (the job's
// filter leaves it out while X.tmpl is in the tree, see
// hostmon.Filter.WithTemplates); it belongs to the generation on this host:
//
//   - on a target, the templates a generation changed are rendered after
//     its apply and before its actions and checks (finish), and X joins
//     the generation's changed paths, so rules match X and PBXSYNC_CHANGED
//     lists it; a template that does not render fails the generation like
//     a failed check, with the template's FILE:LINE:COL in the reason,
//     and X keeps its last good rendering (nothing is written unless every
//     template of the generation renders);
//   - every restore (a failed generation's rollback, rollback --hold, a
//     local edit put back) renders the restored templates again, which
//     gives X back its rendering of that generation;
//   - on the source, the templates a new generation changed are rendered
//     once it is recorded (a render error is logged and shown in the
//     status; the generation is the admin's and still goes out);
//   - at every start of a job all templates are rendered (vars may have
//     changed while the agent was down; a reload that changes this node's
//     name, site or vars restarts the jobs with templates).

// maxTemplateSize bounds a template read from the tree.
const maxTemplateSize = 16 << 20

// renderPrefix starts the temporary file a rendering is written to before
// it is renamed over X; the built-in excludes leave ".pbxsync*" out.
const renderPrefix = ".pbxsync-render-"

// jobFilter is the filter of a job: its include and exclude globs, and for
// a job with templates, what its templates render to.
func jobFilter(c config.Job) (*hostmon.Filter, *tmpl.Set, error) {
	f, err := hostmon.NewFilter(c.Include, c.Exclude)
	if err != nil {
		return nil, nil, err
	}
	ts, err := tmpl.Compile(c.Templates)
	if err != nil {
		return nil, nil, err
	}
	return f.WithTemplates(c.Path, ts), ts, nil
}

// templateData is what this node's templates see.
func templateData(n config.Node) tmpl.Data {
	return tmpl.Data{Node: tmpl.Node{Name: n.Name, Site: n.Site}, Vars: n.Vars}
}

// templatesStale reports whether a reload from old to new changes what
// the templates of a job render to (this node's name, site or vars).
func templatesStale(old, new config.Node, j config.Job) bool {
	if len(j.Templates) == 0 {
		return false
	}
	return old.Name != new.Name || old.Site != new.Site || !mapsEqual(old.Vars, new.Vars)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// rendering is one template's result, not yet written.
type rendering struct {
	template string // X.tmpl, relative to the root
	out      string // X
	content  []byte
	remove   bool // the template is gone: remove X
}

// renderPaths renders the templates of x among paths (all of x's
// templates when paths is nil) and writes their results. It returns the
// renderings it is about (X for every template at paths, whether or not
// its bytes changed: a changed template is a change of X), or an error
// naming every template that does not render (FILE:LINE:COL), in which
// case nothing was written.
func (j *job) renderPaths(ctx context.Context, x index.Index, paths []string) ([]string, error) {
	if j.templates.Empty() {
		return nil, nil
	}
	var list []string
	if paths == nil {
		for p, it := range x.All() {
			if it.Kind == index.KindFile && j.templates.IsTemplate(p) {
				list = append(list, p)
			}
		}
	} else {
		for _, p := range paths {
			if j.templates.IsTemplate(p) {
				list = append(list, p)
			}
		}
	}
	if len(list) == 0 {
		return nil, nil
	}
	slices.Sort(list)
	list = slices.Compact(list)
	data := templateData(j.a.cfgSnapshot().Node)
	var rs []rendering
	var errs []error
	for _, p := range list {
		out := tmpl.Output(p)
		it, ok := x.Get(p)
		if !ok || it.Kind != index.KindFile {
			if !x.Has(out) {
				rs = append(rs, rendering{template: p, out: out, remove: true})
			}
			continue
		}
		text, err := j.readTemplate(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		content, err := tmpl.Render(filepath.Join(j.cfg.Path, filepath.FromSlash(p)), text, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs = append(rs, rendering{template: p, out: out, content: content})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var outs []string
	for _, r := range rs {
		if err := ctx.Err(); err != nil {
			return outs, err
		}
		changed, err := j.writeRendering(r)
		if err != nil {
			return outs, fmt.Errorf("write the rendering of %s: %w", r.template, err)
		}
		if changed {
			j.log.Info("rendered template", "template", r.template, "file", r.out, "removed", r.remove)
		}
		outs = append(outs, r.out)
	}
	return outs, nil
}

// readTemplate reads the template rel from the tree, without following a
// symlink.
func (j *job) readTemplate(rel string) ([]byte, error) {
	f, err := beneath.OpenFile(j.cfg.Path, rel, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTemplateSize+1))
	if err != nil {
		return nil, fmt.Errorf("read template %s: %w", f.Name(), err)
	}
	if len(b) > maxTemplateSize {
		return nil, fmt.Errorf("template %s is larger than %d MiB", f.Name(), maxTemplateSize>>20)
	}
	return b, nil
}

// writeRendering puts r in place: a temporary file beside X, fsynced and
// renamed over X, the directory fsynced; X keeps its mode and owner, a new
// X takes the template's. It does nothing when X already holds the
// content. It reports whether it changed X.
func (j *job) writeRendering(r rendering) (bool, error) {
	dir, base, err := beneath.Parent(j.cfg.Path, r.out)
	if err != nil {
		return false, err
	}
	defer dir.Close()
	dfd := int(dir.Fd())
	var cur unix.Stat_t
	curErr := unix.Fstatat(dfd, base, &cur, unix.AT_SYMLINK_NOFOLLOW)
	exists := curErr == nil
	if exists && cur.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, fmt.Errorf("%s is not a regular file; not replacing it with a rendering", filepath.Join(dir.Name(), base))
	}
	if r.remove {
		if !exists {
			return false, nil
		}
		if err := beneath.Remove(dir, base); err != nil {
			return false, err
		}
		return true, dir.Sync()
	}
	if exists && cur.Size == int64(len(r.content)) {
		if f, err := beneath.OpenFile(j.cfg.Path, r.out, os.O_RDONLY); err == nil {
			old, rerr := io.ReadAll(io.LimitReader(f, int64(len(r.content))+1))
			f.Close()
			if rerr == nil && bytes.Equal(old, r.content) {
				return false, nil
			}
		}
	}
	mode, uid, gid := uint32(0o644), -1, -1
	if exists {
		mode, uid, gid = uint32(cur.Mode&0o777), int(cur.Uid), int(cur.Gid)
	} else {
		var st unix.Stat_t
		if tdir, tbase, err := beneath.Parent(j.cfg.Path, r.template); err == nil {
			if unix.Fstatat(int(tdir.Fd()), tbase, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				mode, uid, gid = uint32(st.Mode&0o777), int(st.Uid), int(st.Gid)
			}
			tdir.Close()
		}
	}
	tmpName := renderPrefix + base
	if err := unix.Unlinkat(dfd, tmpName, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("remove a stale %s: %w", tmpName, err)
	}
	fd, err := unix.Openat(dfd, tmpName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return false, fmt.Errorf("create %s: %w", filepath.Join(dir.Name(), tmpName), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), tmpName))
	err = func() error {
		defer f.Close()
		if _, err := f.Write(r.content); err != nil {
			return err
		}
		if err := f.Chmod(os.FileMode(mode)); err != nil { // the umask may have taken bits
			return err
		}
		if uid >= 0 && os.Geteuid() == 0 {
			if err := f.Chown(uid, gid); err != nil {
				return err
			}
		}
		return f.Sync()
	}()
	if err == nil {
		err = unix.Renameat(dfd, tmpName, dfd, base)
	}
	if err != nil {
		unix.Unlinkat(dfd, tmpName, 0)
		return false, err
	}
	return true, dir.Sync()
}

// renderAll renders every template of x (a generation this node holds)
// and logs what fails: used where no generation can fail (a start, a
// restore); the error is returned for the status.
func (j *job) renderAll(ctx context.Context, x index.Index) error {
	return j.renderLogged(ctx, x, nil)
}

// renderLogged is renderPaths whose failure is logged and shown in the
// status, for the source and for restores.
func (j *job) renderLogged(ctx context.Context, x index.Index, paths []string) error {
	if j.templates.Empty() || x.IsNil() {
		return nil
	}
	_, err := j.renderPaths(ctx, x, paths)
	if err != nil && ctx.Err() == nil {
		j.log.Error("templates not rendered; their files keep their last rendering", "err", err)
		j.setStatus(func(s *JobStatus) { s.LastError = "render: " + err.Error() })
	}
	return err
}

// renderGeneration renders the templates a target's generation g changed,
// before its actions and checks; it returns g's changed paths with the
// renderings added.
func (j *job) renderGeneration(ctx context.Context, g *store.Generation) ([]string, error) {
	if j.templates.Empty() {
		return g.Changed, nil
	}
	outs, err := j.renderPaths(ctx, g.Index, g.Changed)
	if err != nil {
		return nil, err
	}
	changed := slices.Clone(g.Changed)
	for _, o := range outs {
		if !slices.Contains(changed, o) {
			changed = append(changed, o)
		}
	}
	return changed, nil
}

// hasTemplates reports whether a job of cfg has templates: then this node
// tells its peers its site and vars (see localState).
func hasTemplates(cfg *config.Config) bool {
	for _, j := range cfg.Jobs {
		if len(j.Templates) > 0 {
			return true
		}
	}
	return false
}

// ErrVarsUnknown is returned by NodeVars for a node whose vars this agent
// has not been told.
var ErrVarsUnknown = errors.New("vars not known here")

// NodeVars returns what the templates of node see: this node's own
// [node] name, site and vars, or those a peer last published (a peer
// sends them while one of its jobs has templates).
func (a *Agent) NodeVars(node string) (tmpl.Data, error) {
	cfg := a.cfgSnapshot()
	if node == "" || node == cfg.Node.Name {
		return templateData(cfg.Node), nil
	}
	if _, ok := cfg.PeerByName(node); !ok {
		return tmpl.Data{}, fmt.Errorf("%q is neither this node (%s) nor one of its peers", node, cfg.Node.Name)
	}
	st := a.mon.PeerState(node)
	switch {
	case st == nil && !a.mon.Connected(node):
		return tmpl.Data{}, fmt.Errorf("%w: peer %s has not been connected since this agent started; its vars come with its state", ErrVarsUnknown, node)
	case st == nil:
		return tmpl.Data{}, fmt.Errorf("%w: peer %s has not sent its state yet; try again in a few seconds", ErrVarsUnknown, node)
	case st.Vars == nil && st.Site == "":
		return tmpl.Data{}, fmt.Errorf("%w: peer %s sends no vars (none of its jobs has templates, its [node.vars] is empty, or its agent is older)", ErrVarsUnknown, node)
	}
	vars := make(map[string]string, len(st.Vars))
	for k, v := range st.Vars {
		vars[k] = v
	}
	return tmpl.Data{Node: tmpl.Node{Name: node, Site: st.Site}, Vars: vars}, nil
}

// renderFailed starts the reason of a generation whose templates did not
// render here.
const renderFailed = "render failed: "

// retryRenderFailures forgets, at a target's start, the generations
// remembered as bad because their templates did not render here: this
// node's vars may have changed since (a reload that changes them restarts
// the job), and such a generation deserves another try. When there were
// any, the source is asked for its newest generation again.
func (j *job) retryRenderFailures() {
	n := 0
	for digest, reason := range j.bad {
		if strings.HasPrefix(reason, renderFailed) {
			delete(j.bad, digest)
			n++
		}
	}
	if n == 0 {
		return
	}
	j.dirty = true
	j.save()
	j.log.Info("trying again the generations whose templates did not render here before")
	if err := j.sendUp(&wire.Result{Job: j.cfg.Name, State: wire.ResultResync}); err != nil {
		j.log.Debug("cannot ask the source for its newest generation; it announces again when it reconnects", "err", err)
	}
}

// admitFilter is the filter a target admits an announced index with: a
// rendering X is left out when X.tmpl is announced (whatever the tree
// holds now: the apply is about to change it), and X is taken as an
// ordinary file when the announcement has no template for it.
func (j *job) admitFilter(announced index.Index) *hostmon.Filter {
	if j.templates.Empty() {
		return j.filter
	}
	return j.filter.WithTemplatesIn(j.templates, func(rel string) bool {
		it, ok := announced.Get(rel)
		return ok && it.Kind == index.KindFile
	})
}
