package store

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// benchContent is 4 MiB that compresses roughly like configuration and
// sound files mixed: half random, half repetitive text.
func benchContent() []byte {
	line := []byte("exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)\n")
	return append(randBytes(99, 2<<20), bytes.Repeat(line, (2<<20)/len(line)+1)[:2<<20]...)
}

func BenchmarkPutReader(b *testing.B) {
	s := newTestStore(b)
	content := benchContent()
	ctx := context.Background()
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Distinct content every round, so every Put compresses and
		// commits a new blob.
		content[0], content[1], content[2] = byte(i), byte(i>>8), byte(i>>16)
		if _, _, err := s.PutReader(ctx, bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	s := newTestStore(b)
	content := benchContent()
	h := put(b, s, content)
	ctx := context.Background()
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(content)))
	b.ReportAllocs()
	for b.Loop() {
		rc, err := s.Open(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func BenchmarkOpenSmall(b *testing.B) {
	s := newTestStore(b)
	content := []byte("[general]\nudpbindaddr=0.0.0.0\n")
	h := put(b, s, content)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rc, err := s.Open(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
