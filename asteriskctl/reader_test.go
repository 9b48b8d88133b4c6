package asteriskctl

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, wire string, lim Limits) ([]*Message, error) {
	t.Helper()
	r := NewReader(strings.NewReader(wire), lim)
	var out []*Message
	for {
		m, err := r.ReadMessage()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, m)
	}
}

func TestReaderFormats(t *testing.T) {
	wire := "Asterisk Call Manager/7.0.3\r\n" +
		"Response: Success\r\nActionID: a1\r\nMessage: Command output follows\r\nOutput: Name: x\r\nOutput: \r\nOutput:   indented\r\n\r\n" +
		"Response: Follows\r\nPrivilege: Command\r\nActionID: a2\r\nName/username   Host: x\n\nlast line\n--END COMMAND--\r\n\r\n" +
		"Response: Follows\r\nActionID: a3\r\nno newline before end--END COMMAND--\r\n\r\n" +
		"\r\n\r\n" + // stray empty lines between messages
		"Event: UserEvent\r\nChannel_1: a\r\nUniqueid2: b\r\nX_Var_3:c\r\nChanVariable(PJSIP/100-0001): d=e\r\nKey With Space: not a field\r\n\r\n"
	r := NewReader(strings.NewReader(wire), Limits{})
	banner, err := r.ReadBanner()
	if err != nil || banner != "Asterisk Call Manager/7.0.3" {
		t.Fatalf("banner %q %v", banner, err)
	}
	var msgs []*Message
	for {
		m, err := r.ReadMessage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 4 {
		t.Fatalf("%d messages", len(msgs))
	}
	if got := commandOutput(msgs[0]); strings.Join(got, "|") != "Name: x||  indented" {
		t.Errorf("new format output %q", got)
	}
	if msgs[1].ActionID() != "a2" || msgs[1].Get("Privilege") != "Command" {
		t.Errorf("legacy headers %v", msgs[1])
	}
	if got := commandOutput(msgs[1]); strings.Join(got, "|") != "Name/username   Host: x||last line" {
		t.Errorf("legacy output %q", got)
	}
	if got := commandOutput(msgs[2]); len(got) != 1 || got[0] != "no newline before end" {
		t.Errorf("legacy end on same line %q", got)
	}
	ev := msgs[3]
	for k, want := range map[string]string{"channel_1": "a", "UNIQUEID2": "b", "X_Var_3": "c", "ChanVariable(PJSIP/100-0001)": "d=e"} {
		if got := ev.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if len(ev.Output) != 1 || ev.Output[0] != "Key With Space: not a field" {
		t.Errorf("non-field line %q", ev.Output)
	}
}

func TestReaderSplitReads(t *testing.T) {
	var b strings.Builder
	b.WriteString("Response: Success\r\nActionID: big\r\nMessage: Command output follows\r\n")
	for i := range 5000 {
		b.WriteString("Output: line ")
		b.WriteString(strings.Repeat("x", i%50))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	r := NewReader(iotest.OneByteReader(strings.NewReader(b.String())), Limits{})
	m, err := r.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.All("Output")); n != 5000 {
		t.Fatalf("%d output lines", n)
	}
}

func TestReaderLimits(t *testing.T) {
	lim := Limits{MaxLine: 64, MaxFields: 4, MaxMessage: 1 << 10}
	if _, err := readAll(t, "Response: "+strings.Repeat("x", 100)+"\r\n\r\n", lim); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	if _, err := readAll(t, "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", lim); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("many fields: %v", err)
	}
	// A legacy answer without its terminator cannot grow forever.
	if _, err := readAll(t, "Response: Follows\r\n"+strings.Repeat("\n", 10), lim); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("unterminated follows: %v", err)
	}
	lim = Limits{MaxLine: 64, MaxFields: 1000, MaxMessage: 100}
	if _, err := readAll(t, strings.Repeat("A: 123456789\r\n", 20)+"\r\n", lim); !errors.Is(err, ErrMessageTooLarge) {
		t.Errorf("big message: %v", err)
	}
	if _, err := readAll(t, "Response: Success\r\nActionID: x", Limits{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v", err)
	}
}

func TestEncodeRejectsInjection(t *testing.T) {
	m := NewAction("Reload", "Module", "pbx_config.so\r\nAction: Command")
	if _, err := m.Encode(); err == nil {
		t.Fatal("CRLF in a value accepted")
	}
	m = NewAction("Reload", "Mod ule", "x")
	if _, err := m.Encode(); err == nil {
		t.Fatal("space in a key accepted")
	}
	m = NewAction("Login", "Username", "u", "Secret", "hunter2")
	b, err := m.Encode()
	if err != nil || string(b) != "Action: Login\r\nUsername: u\r\nSecret: hunter2\r\n\r\n" {
		t.Fatalf("%q %v", b, err)
	}
	if s := m.String(); strings.Contains(s, "hunter2") {
		t.Fatalf("String leaks the secret: %s", s)
	}
}

func TestEncodeReadRoundTrip(t *testing.T) {
	m := NewAction("Setvar", "Variable", "X_1", "Value", " spaced value ", "Empty", "")
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewReader(bytes.NewReader(b), Limits{}).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Fields) != len(m.Fields) {
		t.Fatalf("fields %v", got.Fields)
	}
	for i := range m.Fields {
		if got.Fields[i] != m.Fields[i] {
			t.Errorf("field %d: %q != %q", i, got.Fields[i], m.Fields[i])
		}
	}
}

// FuzzReader feeds wire bytes to the reader: it must not panic, must stop,
// and must keep every message within its limits.
func FuzzReader(f *testing.F) {
	f.Add([]byte("Asterisk Call Manager/7.0.3\r\nResponse: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"))
	f.Add([]byte("Response: Follows\r\nPrivilege: Command\r\nActionID: 2\r\nout\n\n--END COMMAND--\r\n\r\n"))
	f.Add([]byte("Event: CoreShowChannel\r\nActionID: 3\r\nChannel: PJSIP/100-1\r\n\r\nEvent: CoreShowChannelsComplete\r\nEventList: Complete\r\nListItems: 1\r\n\r\n"))
	f.Add([]byte("Response: Success\r\nOutput: a\r\nOutput:\r\nOutput:  b\r\n\r\n"))
	f.Add([]byte(":\r\n::\r\n\n\n\r\r\n--END COMMAND--"))
	f.Add([]byte("Response: Follows\r\n" + strings.Repeat("x\n", 100)))
	const maxLine, maxFields, maxMsg = 128, 32, 2048
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), Limits{MaxLine: maxLine, MaxFields: maxFields, MaxMessage: maxMsg})
		_, _ = r.ReadBanner()
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatal("reader does not advance")
			}
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			if n := len(m.Fields) + len(m.Output); n == 0 || n > maxFields {
				t.Fatalf("message with %d lines", n)
			}
			size := 0
			for _, fl := range m.Fields {
				if fl.Key == "" || strings.ContainsAny(fl.Key, " \t\r\n:") {
					t.Fatalf("bad key %q", fl.Key)
				}
				if len(fl.Key)+len(fl.Value) > maxLine {
					t.Fatalf("line longer than the limit")
				}
				size += len(fl.Key) + len(fl.Value)
			}
			for _, o := range m.Output {
				if len(o) > maxLine {
					t.Fatalf("output line longer than the limit")
				}
				size += len(o)
			}
			if size > maxMsg {
				t.Fatalf("message of %d bytes", size)
			}
		}
	})
}
