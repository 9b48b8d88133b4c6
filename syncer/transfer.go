package syncer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"pbxsync/delta"
	"pbxsync/internal/beneath"
	"pbxsync/internal/config"
	"pbxsync/internal/directio"
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
		// one allocation of the known size (io.ReadAll's growing buffer
		// cost more than the delta of a small edit of a 2 MB file), and
		// a read past it to see the content end there
		b := make([]byte, size+1)
		n, err := io.ReadFull(rc, b)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return delta.File{}, nil, err
		}
		if int64(n) != size {
			return delta.File{}, nil, fmt.Errorf("stored content %s has %d bytes, want %d", h.Short(), n, size)
		}
		b = b[:size]
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
	if !j.isMeshMember(peer) && !j.relaysFor(peer) && (j.cfg.Mode == config.ModeMesh || !j.isSource || !contains(j.cfg.Targets, peer)) {
		j.log.Warn("refusing a content request from a peer that is not a target of this job", "peer", peer)
		s.WriteMessage(&wire.Error{Message: "not a target of job " + j.cfg.Name})
		return
	}
	h := wire.HashOf(g.Hash)
	j.mu.Lock()
	size, ok := j.serving.get(h)
	j.mu.Unlock()
	if !ok {
		var err error
		if size, ok, err = j.meshRelayFetch(ctx, peer, g.Path, h); err != nil {
			s.WriteMessage(&wire.Error{Message: err.Error()})
			return
		}
	}
	if !ok {
		s.WriteMessage(&wire.Error{Message: fmt.Sprintf("content %s of %s is not offered", h.Short(), g.Path)})
		return
	}
	if err := j.relayFetch(ctx, peer, g.Path, h, size); err != nil {
		s.WriteMessage(&wire.Error{Message: err.Error()})
		return
	}
	if err := j.relayFetchMore(ctx, peer, g.More); err != nil {
		// serveMore stops at the first it lacks: the target fetches the rest on its own
		j.log.Warn("relay cannot fetch a batch for its site", "for", peer, "err", err)
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
	if g.Signature > 0 && j.applier != nil {
		// the target's copy is one this node does not hold: answer its
		// signature with a delta when that is smaller
		if d, err := j.diffSignature(ctx, io.LimitReader(s, g.Signature), h, size); err != nil {
			j.log.Warn("signature delta failed; sending the whole content", "path", g.Path, "err", err)
		} else if int64(d.Len()) < n {
			msg = &wire.Data{Encoding: wire.EncodingDelta, Size: int64(d.Len()), Length: size, Hash: h[:]}
			body = d
		}
	}
	if len(g.Base) > 0 {
		if dm, d := j.deltaFor(ctx, g.Path, wire.HashOf(g.Base), h, size, n); dm != nil {
			msg, body = dm, d
		}
	}
	if err := s.WriteMessage(msg); err != nil {
		return
	}
	sent, err := io.Copy(s, body)
	j.countSent(peer, size, sent)
	if err != nil {
		j.log.Warn("sending content failed", "peer", peer, "path", g.Path, "err", err)
		return
	}
	for i, m := range g.More {
		var base []byte
		if len(g.MoreBase) > 0 {
			base = g.MoreBase[i]
		}
		if !j.serveMore(ctx, peer, wire.HashOf(m), base, s) {
			return
		}
	}
}

// deltaFor returns a delta of content h (size bytes, n as stored) against
// base and its Data frame, when this node holds base and the delta is
// smaller than n; else nil. path is for the log.
func (j *job) deltaFor(ctx context.Context, path string, base, h index.Hash, size, n int64) (*wire.Data, io.Reader) {
	j.mu.Lock()
	baseSize, ok := j.serving.get(base)
	j.mu.Unlock()
	if !ok || j.applier == nil || !j.useDelta(size) || !j.a.store.Has(base) {
		return nil, nil
	}
	d, res, err := j.encodeDelta(ctx, base, baseSize, h, size)
	if err != nil {
		j.log.Warn("delta encoding failed; sending the whole content", "path", path, "err", err)
		return nil, nil
	}
	if d == nil || int64(d.Len()) >= n {
		return nil, nil
	}
	j.log.Debug("sending delta", "path", path, "kind", res.Kind.String(), "bytes", d.Len(), "whole", n, "tried", fmt.Sprint(res.Tried))
	return &wire.Data{Encoding: wire.EncodingDelta, Size: int64(d.Len()), Length: size, Hash: h[:]}, d
}

// serveMore sends content h on a stream that asked for more than one
// content (Get.More): a Data frame and its body, the stored frame or a
// delta against base (its Get.MoreBase, if any; see deltaFor). It reports
// whether the stream may go on.
func (j *job) serveMore(ctx context.Context, peer string, h index.Hash, base []byte, s *remotemon.Stream) bool {
	j.mu.Lock()
	size, ok := j.serving.get(h)
	j.mu.Unlock()
	if !ok {
		s.WriteMessage(&wire.Error{Message: fmt.Sprintf("content %s is not offered", h.Short())})
		return false
	}
	rc, n, err := j.a.store.OpenCompressed(h)
	if err != nil {
		j.log.Error("cannot read stored content", "hash", h.Short(), "err", err)
		s.WriteMessage(&wire.Error{Message: "cannot read content " + h.Short()})
		return false
	}
	defer rc.Close()
	s.SetDeadline(time.Now().Add(time.Minute + time.Duration(n/(1<<20))*time.Second))
	var body io.Reader = rc
	msg := &wire.Data{Encoding: wire.EncodingZstd, Size: n, Length: size, Hash: h[:]}
	if len(base) > 0 {
		if dm, d := j.deltaFor(ctx, h.Short(), wire.HashOf(base), h, size, n); dm != nil {
			msg, body = dm, d
		}
	}
	if err := s.WriteMessage(msg); err != nil {
		return false
	}
	sent, err := io.Copy(s, body)
	j.countSent(peer, size, sent)
	if err != nil {
		j.log.Warn("sending content failed", "peer", peer, "hash", h.Short(), "err", err)
		return false
	}
	return true
}

// countSent counts content sent to peer: size bytes of content as sent
// bytes on the wire.
func (j *job) countSent(peer string, size, sent int64) {
	j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalSent: uint64(size), ContentSent: uint64(sent)})
	j.setStatus(func(st *JobStatus) {
		st.BytesSent += uint64(sent)
		st.LogicalBytesSent += uint64(size)
	})
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
	req := fetchRequest{}
	switch base, kind := j.baseHere(it); kind {
	case baseKept:
		f, closeBase, err := j.content(ctx, base.Hash, base.Size)
		if err == nil {
			defer closeBase()
			req.base = &f
		}
	case baseSigned:
		if f, err := beneath.OpenFile(j.cfg.Path, it.Path, os.O_RDONLY); err == nil {
			defer f.Close()
			var sig bytes.Buffer
			bf := delta.File{R: f, Size: base.Size}
			if _, err := delta.WriteSignature(ctx, &sig, bf, nil); err == nil {
				req.base, req.signature = &bf, sig.Bytes()
			}
		}
	}
	err := j.fetchFrom(ctx, peer, it, req)
	if err != nil && req.base != nil && (errors.Is(err, delta.ErrCorrupt) || errors.Is(err, delta.ErrBaseMismatch)) {
		j.log.Warn("delta did not apply; fetching the whole content", "path", it.Path, "err", err)
		err = j.fetchFrom(ctx, peer, it, fetchRequest{})
	}
	return err
}

// baseKind is what the file at a fetched item's path here is to its fetch.
type baseKind int

const (
	baseNone   baseKind = iota // none, or nothing a delta could use
	baseKept                   // content both sides keep: the source encodes a delta against it
	baseSigned                 // content only this node has (a first sync over an old copy, a local edit): a signature of it goes with the request, rsync's way
)

// baseHere returns the file at it's path here, if any, with what it is to
// it's fetch. A kept base goes in a batch (fetchBatchBased), a signed one
// on a stream of its own (fetchOne).
func (j *job) baseHere(it index.Item) (index.Item, baseKind) {
	st, ok := j.states.Get(it.Path)
	if !ok || st.Kind != index.KindFile || st.Hash == it.Hash {
		return index.Item{}, baseNone
	}
	base := index.Item{Path: it.Path, Hash: st.Hash, Size: st.Size}
	switch {
	case j.a.store.Has(st.Hash):
		return base, baseKept
	case st.Size >= signatureMinSize && j.useDelta(it.Size):
		return base, baseSigned
	}
	return index.Item{}, baseNone
}

// signatureMinSize: below it a signature costs about as much as the
// compressed file, so the whole content is fetched.
const signatureMinSize = 64 << 10

// fetchRequest says what a fetch offers the source to encode against: a
// base both sides hold (named by hash), or a signature of a base only this
// node holds; base is the content the answer is patched onto.
type fetchRequest struct {
	base      *delta.File
	signature []byte
	storeOnly bool // into the store only, no staging copy (a relay's fetch for its site)
}

func (j *job) fetchFrom(ctx context.Context, peer string, it index.Item, req fetchRequest) error {
	base := req.base
	s, err := j.a.mon.OpenStream(ctx, peer)
	if err != nil {
		return err
	}
	defer s.Abort()
	j.setStatus(func(st *JobStatus) { st.FetchStreams++ })
	s.SetDeadline(time.Now().Add(time.Minute + time.Duration(it.Size/(1<<20))*time.Second))
	get := &wire.Get{Job: j.cfg.Name, Path: it.Path, Hash: it.Hash[:], Signature: int64(len(req.signature))}
	if base != nil && req.signature == nil {
		get.Base = base.Hash[:]
	}
	if err := s.WriteMessage(get); err != nil {
		return fmt.Errorf("request %s: %w", it.Path, err)
	}
	if _, err := s.Write(req.signature); err != nil {
		return fmt.Errorf("request %s: signature: %w", it.Path, err)
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
		if req.storeOnly {
			_, err = j.a.store.PutCompressed(ctx, body, it.Hash, it.Size)
		} else {
			err = j.putFetched(ctx, body, it)
		}
	case wire.EncodingDelta:
		if base == nil {
			return fmt.Errorf("fetch %s: source sent a delta though no base was named", it.Path)
		}
		err = j.patchInto(ctx, it, base, body)
	}
	j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalReceived: uint64(it.Size), ContentReceived: uint64(d.Size)})
	j.setStatus(func(st *JobStatus) {
		st.Fetches++
		st.BytesReceived += uint64(d.Size)
		st.LogicalBytesReceived += uint64(it.Size)
	})
	if err != nil {
		return fmt.Errorf("fetch %s: %w", it.Path, err)
	}
	return nil
}

// putFetched stores content fetched whole (a zstd frame) and, in the same
// pass, writes it into a staging file that the apply then takes instead of
// reading the content back from the store (Applier.prestage): the store
// verifies the hash before either is kept. Without a usable staging file
// it only stores the content.
func (j *job) putFetched(ctx context.Context, body io.Reader, it index.Item) error {
	if j.applier == nil {
		_, err := j.a.store.PutCompressed(ctx, body, it.Hash, it.Size)
		return err
	}
	perm, exact := j.applier.stagingPerm(it)
	f, name, err := j.applier.newStagingFile(perm)
	if err != nil {
		_, err := j.a.store.PutCompressed(ctx, body, it.Hash, it.Size)
		return err
	}
	// a copy that cannot be written (the staging file system is full)
	// does not fail the fetch: the content is stored, stage reads it back;
	// a small one goes to the file as the store decodes it, a large one is
	// written around the page cache (see internal/directio)
	var w io.Writer = f
	var fw flushWriter
	cached := it.Size // what is written through the page cache
	switch {
	case it.Size >= directio.MinSize:
		fw, cached = directio.NewWriter(f, it.Size), 0
	case it.Size > directWriteMax:
		fw = bufio.NewWriterSize(f, int(min(it.Size, 256<<10)))
	}
	if fw != nil {
		w = fw
	}
	cp := &bestEffortWriter{w: w}
	_, err = j.a.store.PutCompressedTee(ctx, body, it.Hash, it.Size, cp)
	kept := err == nil && cp.err == nil && (fw == nil || fw.Flush() == nil)
	var meta stagedMeta
	if kept && !metaUnknown(it) {
		meta = setStagedMeta(f, it, exact) // after the last write: it sets the mtime
	}
	if cerr := f.Close(); cerr != nil {
		kept = false
	}
	if !kept {
		os.Remove(name)
		return err // nil when only the copy failed: stage reads the store
	}
	j.applier.prestage(it.Hash, name, meta)
	j.applier.noteStaged(cached)
	return nil
}

// metaUnknown reports whether it carries no mode and no mtime: content
// offered (admitOffered) by a source that predates an offer's mode and
// mtime has neither.
// Its staging file then keeps the mode and time of its creation (a
// fchmod and a futimens fewer per prefetched file, both of which the
// apply would set again by path), and the apply sets the announced ones.
func metaUnknown(it index.Item) bool {
	return it.Mode == 0 && it.MTime == 0
}

// flushWriter is a buffered writer: bufio's or directio's.
type flushWriter interface {
	io.Writer
	Flush() error
}

// directWriteMax: a fetched file up to this size is written to its
// staging file as the store decodes it, without a buffer of its own (the
// store hands it on in pieces of 32 KiB: one or two writes).
const directWriteMax = 64 << 10

// bestEffortWriter writes to w until w fails, then records the error and
// discards the rest.
type bestEffortWriter struct {
	w   io.Writer
	err error
}

func (b *bestEffortWriter) Write(p []byte) (int, error) {
	if b.err == nil {
		_, b.err = b.w.Write(p)
	}
	return len(p), nil
}

// patchFrom applies a delta against stored content base (Hash and Size)
// that came in a batch and stores the result; it reads body to its end,
// where the next content of the batch starts.
func (j *job) patchFrom(ctx context.Context, it, base index.Item, body io.Reader) error {
	bf, closeBase, err := j.content(ctx, base.Hash, base.Size)
	if err != nil {
		return fmt.Errorf("read the base %s: %w", base.Hash.Short(), err)
	}
	defer closeBase()
	if err := j.patchInto(ctx, it, &bf, body); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, body)
	return err
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
	// each entry is a blob of its own (stored and made durable on its
	// own): fetchParallel of them at once, not one after another
	var todo []wire.Inline
	inlined := make(map[index.Hash]bool, len(inline))
	for _, in := range inline {
		if h := wire.HashOf(in.Hash); !inlined[h] {
			inlined[h] = true
			todo = append(todo, in)
		}
	}
	// a delta's base is what this node holds at the same path: in the
	// tree or in the newest generation (looked up per path of want, which
	// is the changed part of the index when that is known). Only the
	// paths whose content rides inline are looked at: an initial sync's
	// first announcement carries a few hundred entries for 100k paths
	// (maps sized for all of them were 17 MB of a target's heap).
	sizes := make(map[index.Hash]int64, len(inline))
	baseSizes := make(map[index.Hash]int64, 2*len(inline))
	for p, it := range want.All() {
		if !inlined[it.Hash] {
			continue
		}
		sizes[it.Hash] = it.Size
		if st, ok := j.states.Get(p); ok {
			baseSizes[st.Hash] = st.Size
		}
		if j.latest != nil {
			if old, ok := j.latest.Index.Get(p); ok {
				baseSizes[old.Hash] = old.Size
			}
		}
	}
	var todoBytes int64
	for _, in := range todo {
		todoBytes += sizes[wire.HashOf(in.Hash)]
	}
	prog := j.applier.progress // the fetch goes on counting in this phase
	prog.begin(wire.PhaseFetching, uint64(len(todo)), uint64(todoBytes))
	parallelN(ctx, fetchParallel, todo, func(in wire.Inline) error {
		if j.takeInlineOne(ctx, peer, in, sizes, baseSizes) {
			prog.add(sizes[wire.HashOf(in.Hash)])
		} else {
			prog.forget(sizes[wire.HashOf(in.Hash)])
		}
		return nil
	})
}

// takeInlineOne stores one inline entry (see takeInline). It reports
// false when the entry did not apply (its content is fetched instead).
func (j *job) takeInlineOne(ctx context.Context, peer string, in wire.Inline, sizes, baseSizes map[index.Hash]int64) bool {
	h := wire.HashOf(in.Hash)
	size, wanted := sizes[h]
	if !wanted || j.a.store.Has(h) {
		return true
	}
	var err error
	switch in.Encoding {
	case wire.EncodingZstd:
		_, err = j.a.store.PutCompressed(ctx, bytes.NewReader(in.Data), h, size)
	case wire.EncodingDelta:
		base := wire.HashOf(in.Base)
		baseSize, known := baseSizes[base]
		if !known || !j.a.store.Has(base) {
			return false
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
		return false
	}
	j.a.mon.AddTraffic(peer, remotemon.Traffic{LogicalReceived: uint64(size), ContentReceived: uint64(len(in.Data))})
	j.setStatus(func(st *JobStatus) {
		st.BytesReceived += uint64(len(in.Data))
		st.LogicalBytesReceived += uint64(size)
	})
	return true
}

// diffSignature reads a target's signature and encodes content h against
// it (rsync's sender side).
func (j *job) diffSignature(ctx context.Context, r io.Reader, h index.Hash, size int64) (*bytes.Buffer, error) {
	sig, err := delta.ReadSignature(r, nil)
	if err != nil {
		return nil, err
	}
	tf, closeTarget, err := j.content(ctx, h, size)
	if err != nil {
		return nil, err
	}
	defer closeTarget()
	var buf bytes.Buffer
	if _, err := delta.Diff(ctx, &buf, sig, tf, &delta.Options{TempDir: j.applier.Staging}); err != nil {
		return nil, err
	}
	return &buf, nil
}
