package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"pbxsync/delta"
	"pbxsync/internal/index"
	"pbxsync/internal/wire"
	"pbxsync/remotemon"
)

// inMemoryMax is the largest content materialized in memory for delta
// encoding or patching; larger content is decompressed into an unlinked
// temporary file in the staging directory.
const inMemoryMax = 8 << 20

// content opens stored content h (size bytes) for random access.
func (j *job) content(ctx context.Context, h index.Hash, size int64) (delta.File, func(), error) {
	rc, err := j.a.store.Open(ctx, h)
	if err != nil {
		return delta.File{}, nil, err
	}
	defer rc.Close()
	if size <= inMemoryMax {
		b, err := io.ReadAll(io.LimitReader(rc, size+1))
		if err != nil {
			return delta.File{}, nil, err
		}
		if int64(len(b)) != size {
			return delta.File{}, nil, fmt.Errorf("stored content %s has %d bytes, want %d", h.Short(), len(b), size)
		}
		f := delta.BytesFile(b)
		f.Hash = h
		return f, func() {}, nil
	}
	tmp, err := os.CreateTemp(j.applier.Staging, stagePrefix+"delta-")
	if err != nil {
		return delta.File{}, nil, err
	}
	os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, rc); err != nil {
		tmp.Close()
		return delta.File{}, nil, err
	}
	return delta.File{R: tmp, Size: size, Hash: h}, func() { tmp.Close() }, nil
}

// serveGet answers a target's request for content of this job: a delta
// against the base the target names when this node holds that base and
// the delta is smaller, else the stored zstd frame.
func (j *job) serveGet(ctx context.Context, peer string, g *wire.Get, s *remotemon.Stream) {
	defer s.Close()
	if !j.isSource || !contains(j.cfg.Targets, peer) {
		j.log.Warn("refusing a content request from a peer that is not a target of this job", "peer", peer)
		s.WriteMessage(&wire.Error{Message: "not a target of job " + j.cfg.Name})
		return
	}
	h := wire.HashOf(g.Hash)
	j.mu.Lock()
	size, ok := j.serving[h]
	baseSize, baseOK := j.serving[wire.HashOf(g.Base)]
	j.mu.Unlock()
	if !ok {
		s.WriteMessage(&wire.Error{Message: fmt.Sprintf("content %s of %s is not offered", h.Short(), g.Path)})
		return
	}
	rc, n, err := j.a.store.OpenCompressed(h)
	if err != nil {
		j.log.Error("cannot read stored content", "path", g.Path, "err", err)
		s.WriteMessage(&wire.Error{Message: "cannot read " + g.Path})
		return
	}
	defer rc.Close()
	s.SetDeadline(time.Now().Add(time.Minute + time.Duration(n/(1<<20))*time.Second))
	var body io.Reader = rc
	msg := &wire.Data{Encoding: wire.EncodingZstd, Size: n, Length: size, Hash: h[:]}
	if len(g.Base) > 0 && baseOK && j.applier != nil && j.useDelta(peer, size) && j.a.store.Has(wire.HashOf(g.Base)) {
		if d, res, err := j.encodeDelta(ctx, wire.HashOf(g.Base), baseSize, h, size); err != nil {
			j.log.Warn("delta encoding failed; sending the whole content", "path", g.Path, "err", err)
		} else if d != nil && int64(d.Len()) < n {
			j.log.Debug("sending delta", "path", g.Path, "kind", res.Kind.String(), "bytes", d.Len(), "whole", n, "tried", fmt.Sprint(res.Tried))
			msg = &wire.Data{Encoding: wire.EncodingDelta, Size: int64(d.Len()), Length: size, Hash: h[:]}
			body = d
		}
	}
	if err := s.WriteMessage(msg); err != nil {
		return
	}
	sent, err := io.Copy(s, body)
	j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalSent: uint64(size), ContentSent: uint64(sent)})
	j.setStatus(func(st *JobStatus) {
		st.BytesSent += uint64(sent)
		st.LogicalBytesSent += uint64(size)
	})
	if err != nil {
		j.log.Warn("sending content failed", "peer", peer, "path", g.Path, "err", err)
	}
}

// encodeDelta encodes target h against base in memory (deltas of large
// files spill to a temporary file inside delta). It returns a nil buffer
// when the two share no content, so no encoder is worth running.
func (j *job) encodeDelta(ctx context.Context, base index.Hash, baseSize int64, h index.Hash, size int64) (*bytes.Buffer, delta.Result, error) {
	bf, closeBase, err := j.content(ctx, base, baseSize)
	if err != nil {
		return nil, delta.Result{}, err
	}
	defer closeBase()
	tf, closeTarget, err := j.content(ctx, h, size)
	if err != nil {
		return nil, delta.Result{}, err
	}
	defer closeTarget()
	if related, err := delta.LikelyRelated(bf, tf, 64<<20); err != nil || !related {
		return nil, delta.Result{}, err
	}
	var buf bytes.Buffer
	res, err := delta.Encode(ctx, &buf, &bf, tf, &delta.Options{TempDir: j.applier.Staging})
	return &buf, res, err
}

// fetchOne gets the content of it from the source into the store. It names
// the content this node holds at that path as a base, so the source can
// answer with a delta.
func (j *job) fetchOne(ctx context.Context, peer string, it index.Item) error {
	var base *delta.File
	if st, ok := j.states[it.Path]; ok && st.Kind == index.KindFile && j.a.store.Has(st.Hash) && st.Hash != it.Hash {
		f, closeBase, err := j.content(ctx, st.Hash, st.Size)
		if err == nil {
			defer closeBase()
			base = &f
		}
	}
	err := j.fetchFrom(ctx, peer, it, base)
	if err != nil && base != nil && (errors.Is(err, delta.ErrCorrupt) || errors.Is(err, delta.ErrBaseMismatch)) {
		j.log.Warn("delta did not apply; fetching the whole content", "path", it.Path, "err", err)
		err = j.fetchFrom(ctx, peer, it, nil)
	}
	return err
}

func (j *job) fetchFrom(ctx context.Context, peer string, it index.Item, base *delta.File) error {
	s, err := j.a.mon.OpenStream(ctx, peer)
	if err != nil {
		return err
	}
	defer s.Abort()
	s.SetDeadline(time.Now().Add(time.Minute + time.Duration(it.Size/(1<<20))*time.Second))
	get := &wire.Get{Job: j.cfg.Name, Path: it.Path, Hash: it.Hash[:]}
	if base != nil {
		get.Base = base.Hash[:]
	}
	if err := s.WriteMessage(get); err != nil {
		return fmt.Errorf("request %s: %w", it.Path, err)
	}
	s.Close()
	m, err := s.ReadMessage()
	if err != nil {
		return fmt.Errorf("fetch %s: %w", it.Path, err)
	}
	d, ok := m.(*wire.Data)
	if !ok {
		if e, isErr := m.(*wire.Error); isErr {
			return fmt.Errorf("fetch %s: source says: %s", it.Path, e.Message)
		}
		return fmt.Errorf("fetch %s: unexpected %s", it.Path, m.Type())
	}
	if wire.HashOf(d.Hash) != it.Hash || d.Length != it.Size {
		return fmt.Errorf("fetch %s: source sent other content (%s, %d bytes) than announced", it.Path, wire.HashOf(d.Hash).Short(), d.Length)
	}
	body := io.LimitReader(s, d.Size)
	switch d.Encoding {
	case wire.EncodingZstd:
		_, err = j.a.store.PutCompressed(ctx, body, it.Hash, it.Size)
	case wire.EncodingDelta:
		if base == nil {
			return fmt.Errorf("fetch %s: source sent a delta though no base was named", it.Path)
		}
		err = j.patchInto(ctx, it, base, body)
	}
	j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalReceived: uint64(it.Size), ContentReceived: uint64(d.Size)})
	j.setStatus(func(st *JobStatus) {
		st.BytesReceived += uint64(d.Size)
		st.LogicalBytesReceived += uint64(it.Size)
	})
	if err != nil {
		return fmt.Errorf("fetch %s: %w", it.Path, err)
	}
	return nil
}

// patchInto applies a delta against base and stores the result; the store
// verifies its hash, and nothing reaches the tree before that.
func (j *job) patchInto(ctx context.Context, it index.Item, base *delta.File, body io.Reader) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := delta.Patch(ctx, pw, base, body, &delta.PatchOptions{MaxSize: it.Size})
		pw.CloseWithError(err)
		done <- err
	}()
	h, n, err := j.a.store.PutReader(ctx, pr)
	pr.CloseWithError(err)
	if perr := <-done; perr != nil {
		return perr
	}
	if err != nil {
		return err
	}
	if h != it.Hash || n != it.Size {
		return fmt.Errorf("%w: patched content is %s (%d bytes), want %s", delta.ErrCorrupt, h.Short(), n, it.Hash.Short())
	}
	return nil
}

// takeInline stores the content carried inside an announcement: zstd
// frames as they are, deltas patched against the base this node holds.
// Anything that does not apply (an unknown base, a damaged entry) is
// skipped; fetch then gets that content over a transfer stream.
func (j *job) takeInline(ctx context.Context, peer string, inline []wire.Inline, want index.Index) {
	if len(inline) == 0 {
		return
	}
	sizes := make(map[index.Hash]int64, len(want)+len(j.states))
	for _, it := range want {
		sizes[it.Hash] = it.Size
	}
	baseSizes := make(map[index.Hash]int64, len(j.states))
	for _, st := range j.states {
		baseSizes[st.Hash] = st.Size
	}
	if j.latest != nil {
		for _, it := range j.latest.Index {
			baseSizes[it.Hash] = it.Size
		}
	}
	for _, in := range inline {
		h := wire.HashOf(in.Hash)
		size, wanted := sizes[h]
		if !wanted || j.a.store.Has(h) {
			continue
		}
		var err error
		switch in.Encoding {
		case wire.EncodingZstd:
			_, err = j.a.store.PutCompressed(ctx, bytes.NewReader(in.Data), h, size)
		case wire.EncodingDelta:
			base := wire.HashOf(in.Base)
			baseSize, known := baseSizes[base]
			if !known || !j.a.store.Has(base) {
				continue
			}
			bf, closeBase, berr := j.content(ctx, base, baseSize)
			if berr != nil {
				err = berr
				break
			}
			err = j.patchInto(ctx, index.Item{Hash: h, Size: size}, &bf, bytes.NewReader(in.Data))
			closeBase()
		}
		if err != nil {
			j.log.Debug("inline content did not apply; fetching it", "hash", h.Short(), "err", err)
			continue
		}
		j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalReceived: uint64(size), ContentReceived: uint64(len(in.Data))})
		j.setStatus(func(st *JobStatus) {
			st.BytesReceived += uint64(len(in.Data))
			st.LogicalBytesReceived += uint64(size)
		})
	}
}
