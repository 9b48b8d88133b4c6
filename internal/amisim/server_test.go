package amisim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pbxsync/internal/testwait"
)

// client is a raw AMI test client that checks the exact wire text.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	id int
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit())
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func dial(t *testing.T, s *Server) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr(), testwait.Limit())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(testwait.Limit()))
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	if got := c.line(); got != Banner+"\r\n" {
		t.Fatalf("banner %q", got)
	}
	return c
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (partial %q)", err, l)
	}
	return l
}

// send writes an action with a fresh ActionID and returns the ID.
func (c *client) send(action string, kv ...string) string {
	c.t.Helper()
	c.id++
	id := fmt.Sprintf("t-%d", c.id)
	var b strings.Builder
	fmt.Fprintf(&b, "Action: %s\r\nActionID: %s\r\n", action, id)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", kv[i], kv[i+1])
	}
	b.WriteString("\r\n")
	if _, err := c.nc.Write([]byte(b.String())); err != nil {
		c.t.Fatal(err)
	}
	return id
}

// msg reads one message as raw text up to and including the empty line.
func (c *client) msg() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l := c.line()
		b.WriteString(l)
		if l == "\r\n" {
			return b.String()
		}
	}
}

func (c *client) login() {
	c.t.Helper()
	id := c.send("Login", "Username", "admin", "Secret", "secret")
	want := "Response: Success\r\nActionID: " + id + "\r\nMessage: Authentication accepted\r\n\r\n"
	if got := c.msg(); got != want {
		c.t.Fatalf("login: got %q want %q", got, want)
	}
	if got := c.msg(); !strings.HasPrefix(got, "Event: FullyBooted\r\nPrivilege: system,all\r\n") || !strings.Contains(got, "Status: Fully Booted\r\n") {
		c.t.Fatalf("FullyBooted: %q", got)
	}
}

func TestLoginPingLogoff(t *testing.T) {
	s := start(t, Config{})
	c := dial(t, s)
	id := c.send("Ping")
	if got, want := c.msg(), "Response: Error\r\nActionID: "+id+"\r\nMessage: Permission denied\r\n\r\n"; got != want {
		t.Fatalf("before login: %q", got)
	}
	c.login()
	id = c.send("Ping")
	got := c.msg()
	if !strings.HasPrefix(got, "Response: Success\r\nActionID: "+id+"\r\nPing: Pong\r\nTimestamp: ") {
		t.Fatalf("ping: %q", got)
	}
	if s.Sessions() != 1 {
		t.Errorf("sessions %d", s.Sessions())
	}
	id = c.send("Logoff")
	if got, want := c.msg(), "Response: Goodbye\r\nActionID: "+id+"\r\nMessage: Thanks for all the fish.\r\n\r\n"; got != want {
		t.Fatalf("logoff: %q", got)
	}
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after logoff: %v", err)
	}
}

func TestWrongSecretKeepsConnection(t *testing.T) {
	s := start(t, Config{Secret: "s3cr3t-value"})
	c := dial(t, s)
	id := c.send("Login", "Username", "admin", "Secret", "nope")
	if got, want := c.msg(), "Response: Error\r\nActionID: "+id+"\r\nMessage: Authentication failed\r\n\r\n"; got != want {
		t.Fatalf("got %q", got)
	}
	id = c.send("Login", "Username", "admin", "Secret", "s3cr3t-value")
	if got := c.msg(); !strings.Contains(got, "Authentication accepted") || !strings.Contains(got, id) {
		t.Fatalf("second login: %q", got)
	}
	for _, a := range s.Actions() {
		for _, h := range a.Headers {
			if strings.Contains(h.Value, "s3cr3t") || strings.Contains(h.Value, "nope") {
				t.Fatalf("secret recorded: %+v", a)
			}
		}
	}
	if n := s.Count("Login"); n != 2 {
		t.Errorf("Count(Login) = %d", n)
	}
}

func TestRefuseLoginAndCloseOnFailure(t *testing.T) {
	s := start(t, Config{CloseOnLoginFailure: true})
	s.RefuseLogin(true)
	c := dial(t, s)
	c.send("Login", "Username", "admin", "Secret", "secret")
	if got := c.msg(); !strings.Contains(got, "Message: Authentication failed\r\n") {
		t.Fatalf("got %q", got)
	}
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
	s.RefuseLogin(false)
	dial(t, s).login()
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "messages")
	s := start(t, Config{ConfigDir: dir, LogPath: logPath})
	c := dial(t, s)
	c.login()

	id := c.send("Reload", "Module", "pbx_config.so")
	if got, want := c.msg(), "Response: Success\r\nActionID: "+id+"\r\nMessage: Module Reloaded\r\n\r\n"; got != want {
		t.Fatalf("reload: %q", got)
	}
	id = c.send("Reload", "Module", "nosuch.so")
	if got, want := c.msg(), "Response: Error\r\nActionID: "+id+"\r\nMessage: No such module\r\n\r\n"; got != want {
		t.Fatalf("unknown: %q", got)
	}

	os.WriteFile(filepath.Join(dir, "extensions.conf"), []byte("[general]\nBROKEN\n"), 0o644)
	id = c.send("Reload", "Module", "pbx_config")
	if got, want := c.msg(), "Response: Error\r\nActionID: "+id+"\r\nMessage: An unknown error occurred\r\n\r\n"; got != want {
		t.Fatalf("broken dialplan: %q", got)
	}
	// The CLI says everything is fine for the very same file.
	id = c.send("Command", "Command", "dialplan reload")
	if got := c.msg(); !strings.Contains(got, "Response: Success\r\nActionID: "+id) || !strings.Contains(got, "Output: Dialplan reloaded.\r\n") {
		t.Fatalf("dialplan reload: %q", got)
	}

	os.WriteFile(filepath.Join(dir, "pjsip_endpoints.conf"), []byte("x\n\n[100]\ntype=endpoint BROKEN\n"), 0o644)
	id = c.send("Reload", "Module", "res_pjsip.so")
	if got := c.msg(); !strings.Contains(got, "Response: Success\r\nActionID: "+id) {
		t.Fatalf("pjsip: %q", got)
	}
	log, _ := os.ReadFile(logPath)
	want := "WARNING[4242]: config.c:2290 process_text_line: parse error: No category context for line 4 of " + filepath.Join(dir, "pjsip_endpoints.conf")
	if !strings.Contains(string(log), want) {
		t.Fatalf("log lacks %q:\n%s", want, log)
	}
	if n := s.Count("Reload", "Module", "pbx_config.so"); n != 1 {
		t.Errorf("Count pbx_config.so = %d", n)
	}
	if n := s.Count("Reload"); n != 4 {
		t.Errorf("Count Reload = %d", n)
	}

	id = c.send("ModuleCheck", "Module", "res_pjsip.so")
	if got := c.msg(); got != "Response: Success\r\nActionID: "+id+"\r\nVersion: \r\n\r\n" {
		t.Fatalf("modulecheck: %q", got)
	}
	id = c.send("ModuleCheck", "Module", "chan_nothing.so")
	if got := c.msg(); got != "Response: Error\r\nActionID: "+id+"\r\nMessage: Module not loaded\r\n\r\n" {
		t.Fatalf("modulecheck: %q", got)
	}
	s.SetModuleLoaded("chan_nothing.so", true)
	s.SetModuleLoaded("res_pjsip", false)
	c.send("ModuleCheck", "Module", "chan_nothing")
	if got := c.msg(); !strings.HasPrefix(got, "Response: Success") {
		t.Fatalf("loaded: %q", got)
	}
	c.send("Reload", "Module", "res_pjsip.so")
	if got := c.msg(); !strings.Contains(got, "No such module") {
		t.Fatalf("unloaded: %q", got)
	}
}

func TestReloadInProgress(t *testing.T) {
	// a's reload runs long enough that b's arrives while it does, even on
	// a loaded machine; the test waits for it to hold the lock, not a
	// guessed time.
	s := start(t, Config{ReloadDuration: 2 * time.Second})
	a, b := dial(t, s), dial(t, s)
	a.login()
	b.login()
	a.send("Reload", "Module", "res_pjsip.so")
	eventually(t, "a's reload holds the lock", s.Reloading)
	b.send("Reload", "Module", "pbx_config.so")
	if got := b.msg(); !strings.Contains(got, "Response: Error\r\n") || !strings.Contains(got, "Message: A reload is in progress\r\n") {
		t.Fatalf("b: %q (a: %q)", got, a.msg())
	}
	if got := a.msg(); !strings.Contains(got, "Message: Module Reloaded") {
		t.Fatalf("a: %q", got)
	}
	if !s.BeginReload(100 * time.Millisecond) {
		t.Fatal("BeginReload")
	}
	b.send("Reload")
	if got := b.msg(); !strings.Contains(got, "A reload is in progress") {
		t.Fatalf("during CLI reload: %q", got)
	}
}

func TestCommandFormats(t *testing.T) {
	s := start(t, Config{})
	c := dial(t, s)
	c.login()
	s.SetCommand("show  thing", []string{"Name: x", "", "  indented"}, false)
	id := c.send("Command", "Command", "show thing")
	want := "Response: Success\r\nActionID: " + id + "\r\nMessage: Command output follows\r\nOutput: Name: x\r\nOutput: \r\nOutput:   indented\r\n\r\n"
	if got := c.msg(); got != want {
		t.Fatalf("new format:\n%q\nwant\n%q", got, want)
	}
	id = c.send("Command", "Command", "frobnicate")
	if got := c.msg(); !strings.HasPrefix(got, "Response: Error\r\nActionID: "+id+"\r\nMessage: Command output follows\r\nOutput: No such command 'frobnicate'") {
		t.Fatalf("unknown: %q", got)
	}
	s.SetLegacyCommand(true)
	id = c.send("Command", "Command", "show thing")
	want = "Response: Follows\r\nPrivilege: Command\r\nActionID: " + id + "\r\nName: x\n\n  indented\n--END COMMAND--\r\n\r\n"
	var got strings.Builder
	for !strings.HasSuffix(got.String(), "--END COMMAND--\r\n") {
		got.WriteString(c.line())
	}
	got.WriteString(c.line())
	if got.String() != want {
		t.Fatalf("legacy:\n%q\nwant\n%q", got.String(), want)
	}
}

func TestCoreShowChannelsAndStatus(t *testing.T) {
	s := start(t, Config{AsteriskVersion: "18.1.0"})
	c := dial(t, s)
	c.login()
	s.SetChannels(3)
	id := c.send("CoreShowChannels")
	if got := c.msg(); got != "Response: Success\r\nActionID: "+id+"\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n" {
		t.Fatalf("resp: %q", got)
	}
	for range 3 {
		if got := c.msg(); !strings.HasPrefix(got, "Event: CoreShowChannel\r\nActionID: "+id+"\r\nChannel: PJSIP/") {
			t.Fatalf("event: %q", got)
		}
	}
	if got := c.msg(); got != "Event: CoreShowChannelsComplete\r\nActionID: "+id+"\r\nEventList: Complete\r\nListItems: 3\r\n\r\n" {
		t.Fatalf("complete: %q", got)
	}
	c.send("CoreStatus")
	if got := c.msg(); !strings.Contains(got, "CoreStartupDate: ") || !strings.Contains(got, "CoreReloadTime: ") || !strings.Contains(got, "CoreCurrentCalls: 3\r\n") {
		t.Fatalf("corestatus: %q", got)
	}
	c.send("CoreSettings")
	if got := c.msg(); !strings.Contains(got, "AsteriskVersion: 18.1.0\r\n") || !strings.Contains(got, "AMIversion: 7.0.3\r\n") {
		t.Fatalf("coresettings: %q", got)
	}
	c.send("Frob")
	if got := c.msg(); !strings.Contains(got, "Message: Invalid/unknown command: Frob.") {
		t.Fatalf("unknown action: %q", got)
	}
}

func TestFaults(t *testing.T) {
	s := start(t, Config{})
	c := dial(t, s)
	c.login()

	s.FailAction("Ping", "Boom")
	id := c.send("Ping")
	if got := c.msg(); got != "Response: Error\r\nActionID: "+id+"\r\nMessage: Boom\r\n\r\n" {
		t.Fatalf("fail: %q", got)
	}
	s.FailAction("Ping", "")

	s.SetDelay("Ping", 150*time.Millisecond)
	begin := time.Now()
	c.send("Ping")
	c.msg()
	if d := time.Since(begin); d < 150*time.Millisecond {
		t.Fatalf("delay not applied: %v", d)
	}
	s.SetDelay("Ping", 0)

	s.SetSplitWrites(true)
	id = c.send("Ping")
	if got := c.msg(); !strings.Contains(got, "ActionID: "+id+"\r\nPing: Pong") {
		t.Fatalf("split: %q", got)
	}
	s.SetSplitWrites(false)

	s.SetChannels(2)
	s.DropConnection("CoreShowChannels", 1)
	c.send("CoreShowChannels")
	b, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || strings.Contains(string(b), "CoreShowChannelsComplete") {
		t.Fatalf("drop: got %q", b)
	}
	// The next connection is unaffected.
	c2 := dial(t, s)
	c2.login()
	c2.send("CoreShowChannels")
	for !strings.Contains(c2.msg(), "CoreShowChannelsComplete") {
	}
}

func TestDownUpAndRestart(t *testing.T) {
	s := start(t, Config{RestartDuration: 50 * time.Millisecond})
	c := dial(t, s)
	c.login()
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.br.ReadByte(); err == nil {
		t.Fatal("connection survived Down")
	}
	if _, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		t.Fatal("dial succeeded while down")
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	c = dial(t, s)
	c.login()

	s.SetChannels(1)
	c.send("Command", "Command", "core restart when convenient")
	if got := c.msg(); !strings.Contains(got, "Output: Waiting for inactivity to perform restart") {
		t.Fatalf("convenient: %q", got)
	}
	if s.PendingRestart() != "when convenient" || s.Restarts() != 0 {
		t.Fatalf("pending %q restarts %d", s.PendingRestart(), s.Restarts())
	}
	before := time.Now()
	time.Sleep(1100 * time.Millisecond) // CoreStartupTime has second resolution
	s.SetChannels(0)
	if got := c.msg(); !strings.HasPrefix(got, "Event: Shutdown\r\n") || !strings.Contains(got, "Restart: True") {
		t.Fatalf("shutdown event: %q", got)
	}
	eventually(t, "back after the restart", func() bool { return s.IsUp() && s.Restarts() == 1 })
	c = dial(t, s)
	c.login()
	c.send("CoreStatus")
	got := c.msg()
	if strings.Contains(got, "CoreStartupTime: "+before.Format("15:04:05")+"\r\n") {
		t.Fatalf("start-up time not reset: %q", got)
	}
}

func TestParallelActionsAndEmit(t *testing.T) {
	s := start(t, Config{ParallelActions: true})
	s.SetJitter(20 * time.Millisecond)
	c := dial(t, s)
	c.login()
	var ids []string
	for i := range 20 {
		ids = append(ids, c.send("Setvar", "Variable", fmt.Sprintf("V%d", i), "Value", "x"))
	}
	seen := map[string]bool{}
	for range 20 {
		got := c.msg()
		for _, id := range ids {
			if strings.Contains(got, "ActionID: "+id+"\r\n") {
				seen[id] = true
			}
		}
	}
	if len(seen) != 20 {
		t.Fatalf("answers for %d of 20 actions", len(seen))
	}
	if s.Var("V7") != "x" {
		t.Fatal("Setvar")
	}
	if n := s.Emit("UserEvent", H("Channel_1", "a"), H("Uniqueid2", "b")); n != 1 {
		t.Fatalf("Emit delivered to %d", n)
	}
	if got := c.msg(); got != "Event: UserEvent\r\nChannel_1: a\r\nUniqueid2: b\r\n\r\n" {
		t.Fatalf("event: %q", got)
	}
}

func TestCloseIsPromptWithDelayedAnswers(t *testing.T) {
	s, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetDelay("", time.Hour)
	var wg sync.WaitGroup
	for range 3 {
		nc, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprintf(nc, "Action: Login\r\nUsername: admin\r\nSecret: secret\r\n\r\n")
	}
	// The three logins are read and their answers held back (an hour).
	eventually(t, "three logins received", func() bool { return s.Count("Login") == 3 })
	// Close must not wait for the held answers: it returns long before
	// the hour (testwait.Limit bounds it; a wall-clock figure would fail
	// on a loaded machine).
	ctx, cancel := context.WithTimeout(context.Background(), testwait.Limit())
	defer cancel()
	begin := time.Now()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close with answers held back: %v after %v", err, time.Since(begin))
	}
	wg.Wait()
	t.Logf("Close took %v", time.Since(begin))
	if err := s.Up(); err == nil {
		t.Fatal("Up after Close succeeded")
	}
}

// eventually waits until cond holds (bounded by testwait.Limit).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Eventually(t, what, func() error {
		if !cond() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
