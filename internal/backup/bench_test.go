package backup

import (
	"bytes"
	"testing"
)

// BenchmarkReadSmall measures verifying a small archive (the fuzz target's cost per input).
func BenchmarkReadSmall(b *testing.B) {
	data, _, _ := writeTest(b)
	for b.Loop() {
		if _, err := Read(bytes.NewReader(data), nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
