package asteriskctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pbxsync/internal/amisim"
	"pbxsync/internal/testwait"
)

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

const (
	warnParse  = "[2024-05-01 10:00:00] WARNING[1234]: config.c:2290 process_text_line: parse error: No category context for line 1 of /etc/asterisk/pjsip.conf\n"
	errSorcery = "[2024-05-01 10:00:01] ERROR[1234] config_options.c: Could not find option suitable for category '100' named 'colour' at line 4 of pjsip.conf\n"
	verbose    = "[2024-05-01 10:00:02] VERBOSE[1234] loader.c: Reloading module 'res_pjsip.so' (Basic SIP resource) parse error mentioned in verbose text\n"
	noticeOK   = "[2024-05-01 10:00:03] NOTICE[1234] chan_pjsip.c: invalid format word in a NOTICE is not reported\n"
	warnOther  = "[2024-05-01 10:00:04] WARNING[1234][C-00000001]: res_rtp_asterisk.c: RTP read error\n"
)

func TestLogCheckFindsSimulatorParseError(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages")
	sim := startSim(t, amisim.Config{ConfigDir: dir, LogPath: logPath})
	s, _ := connected(t, sim)
	lc := NewLogChecker(logPath)
	lc.Settle = 0
	ctx := testwait.Context(t)

	mark, err := lc.Mark()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx, "res_pjsip.so"); err != nil {
		t.Fatal(err)
	}
	res, err := lc.Since(ctx, mark)
	if err != nil || !res.OK() || res.Error() != nil {
		t.Fatalf("clean reload: %+v %v", res, err)
	}

	os.WriteFile(filepath.Join(dir, "pjsip.conf"), []byte("[transport-udp]\nBROKEN\n"), 0o644)
	mark, _ = lc.Mark()
	if err := s.Reload(ctx, "res_pjsip.so"); err != nil {
		t.Fatalf("res_pjsip answers Success even when broken: %v", err)
	}
	res, err = lc.Since(ctx, mark)
	if err != nil || len(res.Findings) != 1 {
		t.Fatalf("findings %+v %v", res, err)
	}
	if f := res.Findings[0]; f.Level != "WARNING" || !strings.Contains(f.Line, "parse error") || !strings.Contains(f.Line, "line 2 of") {
		t.Fatalf("finding %+v", f)
	}
	if e := res.Error(); e == nil || !strings.Contains(e.Error(), "parse error") {
		t.Fatalf("Error() %v", e)
	}
	// A later mark does not see the old line again.
	mark, _ = lc.Mark()
	if res, _ := lc.Since(ctx, mark); !res.OK() {
		t.Fatalf("old line reported again: %+v", res)
	}
}

func TestLogCheckPatterns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "messages")
	appendFile(t, path, warnParse) // before the mark
	lc := &LogChecker{Path: path}
	mark, err := lc.Mark()
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, verbose+noticeOK+warnOther+errSorcery+warnParse)
	res, err := lc.Since(context.Background(), mark)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 2 || res.Findings[0].Level != "ERROR" || res.Findings[1].Level != "WARNING" {
		t.Fatalf("findings %+v", res.Findings)
	}
	lc.Patterns = []string{"RTP READ ERROR"}
	res, _ = lc.Since(context.Background(), mark)
	if len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Line, "RTP read error") {
		t.Fatalf("custom pattern %+v", res.Findings)
	}
}

func TestLogCheckRotationAndTruncation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "messages")
	lc := &LogChecker{Path: path}
	ctx := context.Background()

	// Missing at the mark: everything written later is new.
	mark, err := lc.Mark()
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, warnParse)
	if res, err := lc.Since(ctx, mark); err != nil || len(res.Findings) != 1 {
		t.Fatalf("created after mark: %+v %v", res, err)
	}

	// Rotation (logrotate create): old file renamed to messages.1, a new one
	// created. Lines written to both after the mark are found.
	mark, _ = lc.Mark()
	appendFile(t, path, errSorcery)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, warnParse)
	res, err := lc.Since(ctx, mark)
	if err != nil || !res.Rotated || len(res.Findings) != 2 || res.Findings[0].File != path+".1" || res.Incomplete != "" {
		t.Fatalf("rotation: %+v %v", res, err)
	}

	// Rotation where the old file is gone (compressed): the new file is read
	// and the gap is reported.
	mark, _ = lc.Mark()
	os.Rename(path, filepath.Join(t.TempDir(), "elsewhere"))
	appendFile(t, path, warnParse)
	res, err = lc.Since(ctx, mark)
	if err != nil || len(res.Findings) != 1 || res.Incomplete == "" {
		t.Fatalf("rotation, old gone: %+v %v", res, err)
	}

	// copytruncate: same file, now shorter than the mark.
	appendFile(t, path, strings.Repeat(verbose, 20))
	mark, _ = lc.Mark()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, errSorcery)
	res, err = lc.Since(ctx, mark)
	if err != nil || !res.Truncated || len(res.Findings) != 1 {
		t.Fatalf("truncation: %+v %v", res, err)
	}
}

func TestLogCheckBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "messages")
	appendFile(t, path, "")
	lc := &LogChecker{Path: path, MaxBytes: 16384, MaxLine: 256}
	mark, _ := lc.Mark()
	appendFile(t, path, "[x] WARNING[1]: "+strings.Repeat("y", 10000)+" parse error\n"+warnParse+strings.Repeat(verbose, 100))
	res, err := lc.Since(context.Background(), mark)
	if err != nil {
		t.Fatal(err)
	}
	// The over-long line is cut (its tail is not matched), the next line is
	// still found, and the read stops at MaxBytes.
	if len(res.Findings) != 1 || res.Findings[0].Line != strings.TrimSuffix(warnParse, "\n") {
		t.Fatalf("findings %+v", res.Findings)
	}
	if res.Incomplete == "" || res.BytesRead > 16384 {
		t.Fatalf("bounds: read %d, incomplete %q", res.BytesRead, res.Incomplete)
	}
}
