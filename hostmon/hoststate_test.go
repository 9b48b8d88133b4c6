package hostmon

import (
	"strings"
	"testing"
)

func TestReadHostState(t *testing.T) {
	dir := t.TempDir()
	st, err := ReadHostState([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Disks) != 1 || st.Disks[0].Path != dir || st.Disks[0].FreeBytes == 0 {
		t.Fatalf("disks %+v", st.Disks)
	}
	st, err = ReadHostState([]string{dir, "/nonexistent/pbxsync"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/pbxsync") || len(st.Disks) != 1 {
		t.Fatalf("missing path not reported: %v %+v", err, st)
	}
}
