package syncer

// Integration tests of the Asterisk wiring: two in-process agents (a
// pushes job "conf" to b over real QUIC, harness_test.go), b with an AMI
// simulator whose configuration directory is b's tree, and b's AfterApply
// an AsteriskActions driving a real asteriskctl.Session to the simulator.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pbxsync/asteriskctl"
	"pbxsync/internal/amisim"
	"pbxsync/internal/config"
	"pbxsync/internal/store"
)

// astSecret is the simulator's AMI secret; no log may ever show it.
const astSecret = "pbxsync-ami-test-secret-5c1e"

// astSeed is the initial tree of the source.
var astSeed = map[string]string{
	"extensions.conf":      "[from-internal]\nexten => 100,1,Answer()\n same => n,Hangup()\n",
	"pjsip.conf":           "[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0\n",
	"pjsip_endpoints.conf": "[100]\ntype=endpoint\ncontext=from-internal\n",
	"pjsip_aors.conf":      "[100]\ntype=aor\nmax_contacts=1\n",
	"pjsip_auths.conf":     "[100]\ntype=auth\nauth_type=userpass\n",
	"pjsip_trunks.conf":    "[trunk]\ntype=endpoint\n",
}

// astRig is a pair a → b where b has an Asterisk (the simulator).
type astRig struct {
	tb      testing.TB
	h       *harness
	a, b    *tnode
	sim     *amisim.Server
	sess    *asteriskctl.Session
	actions *AsteriskActions
	simLog  string // the simulated Asterisk log
	secret  string // what b's secret file holds
}

type astOpts struct {
	extra  string // job config lines ([[job.rule]] …)
	secret string // b's secret file; default astSecret
	quiet  bool   // benchmarks: no log dump on failure
	// recorded: the simulator replays the transcript recorded from a real
	// Asterisk (amisim.Recorded) instead of its BROKEN-marker guesses.
	recorded bool
}

// newAstRig starts a, the simulator and b, and, when the secret is right,
// waits until b holds a's tree.
func newAstRig(tb testing.TB, o astOpts) *astRig {
	tb.Helper()
	if o.secret == "" {
		o.secret = astSecret
	}
	h := newHarness(tb)
	h.quiet = o.quiet
	a, b := h.pair(o.extra)
	for f, c := range astSeed {
		a.write(f, c, 0o644)
	}
	r := &astRig{tb: tb, h: h, a: a, b: b, simLog: filepath.Join(h.base, "b-asterisk.log"), secret: o.secret}
	simCfg := amisim.Config{Secret: astSecret, ConfigDir: b.tree, LogPath: r.simLog}
	if o.recorded {
		tr, err := amisim.Recorded()
		if err != nil {
			tb.Fatal(err)
		}
		simCfg.Transcript = tr
	}
	sim, sess, blog := simAsterisk(tb, simCfg, h.base, b.name, b.log, o.secret, func() {
		for _, n := range h.nodes {
			n.stopQuiet()
		}
	})
	r.sim, r.sess = sim, sess
	tb.Cleanup(func() { // runs before simAsterisk's: the simulator is still up
		if tb.Failed() && !o.quiet {
			if b, err := os.ReadFile(r.simLog); err == nil {
				tb.Logf("===== simulated Asterisk log =====\n%s", b)
			}
			for _, act := range sim.Actions() {
				tb.Logf("AMI %s %s %v", act.At.Format("15:04:05.000"), act.Name, act.Headers)
			}
		}
	})
	r.actions = &AsteriskActions{AMI: sess, LogPath: r.simLog, LogSettle: 30 * time.Millisecond, Log: blog}
	a.start()
	astStart(b, blog, Options{AfterApply: r.actions, Health: func(ctx context.Context) error {
		if !sess.Connected() {
			return fmt.Errorf("asterisk unreachable: %v", sess.LastError())
		}
		_, err := sess.Ping(ctx)
		return err
	}, Asterisk: func(ctx context.Context) (AsteriskInfo, error) {
		h, err := sess.Health(ctx)
		return AsteriskInfo{Version: h.Version, Uptime: h.Uptime, LastReload: h.LastReload, Channels: h.ActiveChannels, FullyBooted: h.FullyBooted}, err
	}})
	if o.secret == astSecret {
		converged(tb, "initial sync", a, b)
	}
	return r
}

// simAsterisk starts a simulated Asterisk of cfg and node name's AMI
// session to it (amiSession), and closes both when the test ends, after
// stopAgents (the agents first: no AfterApply against a closed session).
func simAsterisk(tb testing.TB, cfg amisim.Config, dir, name string, logTo io.Writer, secret string, stopAgents func()) (*amisim.Server, *asteriskctl.Session, *slog.Logger) {
	tb.Helper()
	sim, err := amisim.Start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	sess, log := amiSession(tb, dir, name, logTo, sim, secret)
	tb.Cleanup(func() {
		stopAgents()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		sess.Close(ctx)
		sim.Close(ctx)
	})
	return sim, sess, log
}

// amiSession makes the AMI session of node name to sim, logging to logTo,
// with secret in a file in dir, and returns it with the logger the node's
// agent is to use.
func amiSession(tb testing.TB, dir, name string, logTo io.Writer, sim *amisim.Server, secret string) (*asteriskctl.Session, *slog.Logger) {
	tb.Helper()
	secretFile := filepath.Join(dir, name+"-ami.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	sess, err := asteriskctl.New(asteriskctl.Config{Addr: sim.Addr(), Username: "admin", SecretFile: secretFile,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	return sess, log
}

// amiDown takes sim down and waits until sess noticed.
func amiDown(tb testing.TB, sim *amisim.Server, sess *asteriskctl.Session) {
	tb.Helper()
	if err := sim.Down(); err != nil {
		tb.Fatal(err)
	}
	eventually(tb, waitLimit, "the AMI session is down", func() error {
		if sess.Connected() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
}

// astStart starts n like tnode.start, with opts (AfterApply, Health).
func astStart(n *tnode, log *slog.Logger, opts Options) {
	n.h.tb.Helper()
	text := n.configText()
	cfg, err := config.Parse(filepath.Join(n.h.base, n.name, "pbxsync.toml"), []byte(text))
	if err != nil {
		n.h.tb.Fatalf("config of %s: %v\n%s", n.name, err, text)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.agent != nil {
		n.h.tb.Fatalf("%s is already running", n.name)
	}
	fmt.Fprintf(n.log, "----- %s: agent starting -----\n", time.Now().Format("15:04:05.000"))
	opts.Config, opts.Identity, opts.Log, opts.Version = cfg, n.id, log, "test"
	ag, err := New(opts)
	if err != nil {
		n.h.tb.Fatalf("start %s: %v", n.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	n.agent, n.cancel, n.done = ag, cancel, done
}

// reloads counts the Reload actions of module the simulator received.
func (r *astRig) reloads(module string) int { return r.sim.Count("Reload", "Module", module) }

// gens returns b's generations of job conf.
func (r *astRig) gens() []store.GenerationInfo {
	r.tb.Helper()
	gs, err := r.b.a().Store().Generations("conf")
	if err != nil {
		r.tb.Fatal(err)
	}
	return gs
}

// waitOutcome waits until b has a generation after `after` that is no
// longer applying, and returns the newest one.
func (r *astRig) waitOutcome(what string, after uint64) store.GenerationInfo {
	r.tb.Helper()
	var got store.GenerationInfo
	eventually(r.tb, waitLimit, what, func() error {
		gs := r.gens()
		if len(gs) == 0 || gs[len(gs)-1].Number <= after {
			return fmt.Errorf("no generation after %d yet", after)
		}
		g := gs[len(gs)-1]
		if g.State == store.StateApplying {
			return fmt.Errorf("generation %d still applying", g.Number)
		}
		js, _ := r.b.jobStatus("conf")
		if js.State == string(store.StateApplying) {
			return fmt.Errorf("job still applying")
		}
		got = g
		return nil
	})
	return got
}

// waitGoodAfter waits for a good generation after `after` on b.
func (r *astRig) waitGoodAfter(what string, after uint64) store.GenerationInfo {
	r.tb.Helper()
	g := r.waitOutcome(what, after)
	if g.State != store.StateGood {
		r.tb.Fatalf("%s: generation %d is %s: %s", what, g.Number, g.State, g.Reason)
	}
	return g
}

// waitBadAfter waits for a bad generation after `after` on b, whose
// rollback (restore and its reloads) is done.
func (r *astRig) waitBadAfter(what string, after uint64) store.GenerationInfo {
	r.tb.Helper()
	g := r.waitOutcome(what, after)
	if g.State != store.StateBad {
		r.tb.Fatalf("%s: generation %d is %s, want bad", what, g.Number, g.State)
	}
	r.tb.Logf("%s: generation %d bad: %s", what, g.Number, g.Reason)
	return g
}

// steady asserts that count does not move for a while: nothing more is
// coming (a second reload, a retry).
func astSteady(tb testing.TB, what string, want int, count func() int) {
	tb.Helper()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if got := count(); got != want {
			tb.Fatalf("%s: %d, want %d", what, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAsteriskOneReloadPerModule: an edit of extensions.conf on the source
// reloads pbx_config.so exactly once on the target, and an edit of five
// pjsip files in one generation reloads res_pjsip.so exactly once.
func TestAsteriskOneReloadPerModule(t *testing.T) {
	t.Parallel()
	// The 5 pjsip files are written one by one: the debounce gathers them
	// into one generation.
	r := newAstRig(t, astOpts{extra: "debounce = \"300ms\"\n"})
	first := r.waitGoodAfter("first generation", 0)
	if got := r.reloads("pbx_config.so"); got != 1 {
		t.Fatalf("first generation: %d reloads of pbx_config.so, want 1", got)
	}
	if got := r.reloads("res_pjsip.so"); got != 1 {
		t.Fatalf("first generation (5 pjsip files): %d reloads of res_pjsip.so, want 1", got)
	}

	r.a.replace("extensions.conf", []byte(astSeed["extensions.conf"]+"exten => 101,1,Dial(PJSIP/101)\n"), 0o644)
	g := r.waitGoodAfter("extensions.conf edit", first.Number)
	if !slices.Equal(g.Changed, []string{"extensions.conf"}) {
		t.Fatalf("generation %d changed %v, want [extensions.conf]", g.Number, g.Changed)
	}
	astSteady(t, "reloads of pbx_config.so after one edit of extensions.conf", 2, func() int { return r.reloads("pbx_config.so") })
	if got := r.reloads("res_pjsip.so"); got != 1 {
		t.Fatalf("an extensions.conf edit reloaded res_pjsip.so (%d reloads in all)", got)
	}

	for _, f := range []string{"pjsip.conf", "pjsip_endpoints.conf", "pjsip_aors.conf", "pjsip_auths.conf", "pjsip_trunks.conf"} {
		r.a.write(f, astSeed[f]+"; edited\n", 0o644)
	}
	// The tree first: b records a generation before it writes it, so the
	// newest generation is then the one that holds the last edit.
	converged(t, "five pjsip edits", r.a, r.b)
	r.waitGoodAfter("five pjsip edits", g.Number)
	gs := r.gens()
	var pjsipGens []uint64
	for _, x := range gs {
		if x.Number > first.Number && slices.ContainsFunc(x.Changed, func(p string) bool { return strings.HasPrefix(p, "pjsip") }) {
			pjsipGens = append(pjsipGens, x.Number)
		}
	}
	// The debounce gathers the five writes into one generation unless the
	// machine is so loaded that 300 ms pass between two writes; then each
	// generation still reloads res_pjsip.so once.
	if len(pjsipGens) != 1 {
		t.Logf("the five pjsip edits made %d generations (a loaded machine): %v", len(pjsipGens), pjsipGens)
	}
	if len(pjsipGens) == 0 || len(pjsipGens) > 5 {
		t.Fatalf("the five pjsip edits made generations %v; want one (at most one per file)", pjsipGens)
	}
	astSteady(t, "reloads of res_pjsip.so after the five pjsip files: one per generation", 1+len(pjsipGens), func() int { return r.reloads("res_pjsip.so") })
	if got := r.reloads("pbx_config.so"); got != 2 {
		t.Fatalf("pjsip edits reloaded pbx_config.so (%d reloads in all, want 2)", got)
	}
	if n, want := r.sim.Count("Reload"), 3+len(pjsipGens); n != want {
		t.Fatalf("%d Reload actions in all, want %d (first generation × 2 modules, then 1, then 1 per pjsip generation)", n, want)
	}
}

// TestAsteriskRejectedReloadRollsBack: Asterisk answers Error to the
// Reload of a broken dialplan; the target restores the previous file
// byte-exact, reloads pbx_config.so again for it, and the generation is bad
// with Asterisk's message, on the target and in the source's status.
func TestAsteriskRejectedReloadRollsBack(t *testing.T) {
	t.Parallel()
	r := newAstRig(t, astOpts{})
	first := r.waitGoodAfter("first generation", 0)
	good := r.b.read("extensions.conf")
	before := r.reloads("pbx_config.so")

	r.a.replace("extensions.conf", append(bytes.Clone(good), "exten => 102,1,BROKEN\n"...), 0o644)
	g := r.waitBadAfter("the broken dialplan", first.Number)
	const amiMsg = "reload pbx_config.so: Asterisk answered Error to Reload: An unknown error occurred"
	if !strings.Contains(g.Reason, amiMsg) {
		t.Fatalf("bad generation %d: reason %q, want it to hold %q", g.Number, g.Reason, amiMsg)
	}
	if now := r.b.read("extensions.conf"); !bytes.Equal(now, good) {
		t.Fatalf("after the rollback b holds\n%s\nwant\n%s", now, good)
	}
	// One reload of the broken file (refused), one of the restored file.
	astSteady(t, "reloads of pbx_config.so: the refused one and the restored file's", before+2, func() int { return r.reloads("pbx_config.so") })
	var reloaded []string
	for _, act := range r.sim.Actions() {
		if act.Name == "Reload" {
			reloaded = append(reloaded, act.Get("Module"))
		}
	}
	if n := len(reloaded); n < 2 || reloaded[n-1] != "pbx_config.so" || reloaded[n-2] != "pbx_config.so" {
		t.Fatalf("reloads %v; want the refused pbx_config.so and the restored one last", reloaded)
	}
	if !r.b.logHas("generation failed its checks; rolling back", "Asterisk answered Error") {
		t.Error("b's log does not say why it rolled back")
	}
	js, _ := r.b.jobStatus("conf")
	if js.State != string(store.StateBad) || !strings.Contains(js.LastError, "An unknown error occurred") {
		t.Errorf("b status: state %q, last_error %q", js.State, js.LastError)
	}
	eventually(t, waitLimit, "a's status shows b's rejection", func() error {
		js, _ := r.a.jobStatus("conf")
		for _, ts := range js.Targets {
			if ts.Name == "b" && ts.State == "bad" && strings.Contains(ts.Reason, "An unknown error occurred") && js.State == string(store.StateBad) {
				return nil
			}
		}
		return fmt.Errorf("job state %q, targets %+v", js.State, js.Targets)
	})

	// A fixed dialplan applies and reloads once.
	r.a.replace("extensions.conf", append(bytes.Clone(good), "exten => 102,1,Hangup()\n"...), 0o644)
	r.waitGoodAfter("the fixed dialplan", g.Number)
	converged(t, "the fixed dialplan", r.a, r.b)
	astSteady(t, "reloads of pbx_config.so after the fix", before+3, func() int { return r.reloads("pbx_config.so") })
}

// TestAsteriskLogParseErrorRollsBack: res_pjsip answers Success to a
// broken pjsip.conf but logs a parse error; the log check catches it and
// the generation is rolled back, the restored file reloaded again.
func TestAsteriskLogParseErrorRollsBack(t *testing.T) {
	t.Parallel()
	r := newAstRig(t, astOpts{})
	first := r.waitGoodAfter("first generation", 0)
	good := r.b.read("pjsip.conf")
	before := r.reloads("res_pjsip.so")

	r.a.replace("pjsip.conf", []byte("type=transport BROKEN\n"+string(good)), 0o644)
	g := r.waitBadAfter("the broken pjsip.conf", first.Number)
	for _, want := range []string{"log check", "parse error", "pjsip.conf"} {
		if !strings.Contains(g.Reason, want) {
			t.Errorf("bad generation %d: reason %q lacks %q", g.Number, g.Reason, want)
		}
	}
	if now := r.b.read("pjsip.conf"); !bytes.Equal(now, good) {
		t.Fatalf("after the rollback b holds\n%s\nwant\n%s", now, good)
	}
	astSteady(t, "reloads of res_pjsip.so: the broken file's and the restored file's", before+2, func() int { return r.reloads("res_pjsip.so") })
	if got := r.reloads("pbx_config.so"); got != 1 {
		t.Errorf("a pjsip change reloaded pbx_config.so (%d reloads in all)", got)
	}
}

// TestAsteriskDownMarksBad: a change that arrives while AMI is down is not
// silently taken as good: the generation is bad, naming the connection
// problem, and rolled back; /healthz fails meanwhile. Once AMI is back the
// next change applies and reloads.
func TestAsteriskDownMarksBad(t *testing.T) {
	t.Parallel()
	r := newAstRig(t, astOpts{})
	first := r.waitGoodAfter("first generation", 0)
	good := r.b.read("extensions.conf")
	before := r.reloads("pbx_config.so")

	if err := r.sim.Down(); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLimit, "the session notices", func() error {
		if r.sess.Connected() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := r.b.a().Healthy(ctx)
	cancel()
	if err == nil {
		t.Fatal("b is healthy while its Asterisk is down")
	}
	r.a.replace("extensions.conf", append(bytes.Clone(good), "exten => 103,1,Hangup()\n"...), 0o644)
	// Either b tried, failed the reload and rolled back (its history says
	// why), or the source already knew from b's published state that its
	// Asterisk is down and queued the change (its status says why).
	last := first.Number
	eventually(t, waitLimit, "the change is refused or queued, with the reason", func() error {
		for _, g := range r.gens() {
			if g.Number > first.Number && g.State == store.StateBad {
				if !strings.Contains(g.Reason, "reload pbx_config.so") || !strings.Contains(g.Reason, "not connected to Asterisk") || !strings.Contains(g.Reason, "connection refused") {
					t.Fatalf("bad generation %d: reason %q; want the reload, 'not connected to Asterisk' and 'connection refused'", g.Number, g.Reason)
				}
				last = g.Number
				return nil
			}
		}
		js, _ := r.a.jobStatus("conf")
		for _, tg := range js.Targets {
			if tg.Name == "b" && tg.State == "waiting" && strings.Contains(tg.Reason, "connection refused") {
				return nil
			}
		}
		return fmt.Errorf("no bad generation on b, and a's targets: %+v", js.Targets)
	})
	if now := r.b.read("extensions.conf"); !bytes.Equal(now, good) {
		t.Fatalf("after the rollback b holds\n%s\nwant\n%s", now, good)
	}
	if got := r.reloads("pbx_config.so"); got != before {
		t.Fatalf("%d reloads reached a down Asterisk", got-before)
	}

	if err := r.sim.Up(); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLimit, "b healthy again", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return r.b.a().Healthy(ctx)
	})
	// The change refused only because Asterisk was away is not
	// blacklisted: it arrives without another edit on the source. Its tree
	// converges before its reload and checks are done: wait for its good
	// generation too, or the next wait below could take this one for the
	// next change's (and count the reloads before the next one happened).
	converged(t, "the change made while AMI was down, once it is back", r.a, r.b)
	// Its reload is its check, so good means reloaded. Count from here: if
	// b tried the change while AMI was down, its rollback reloads the
	// restored file too, and that reload reaches Asterisk or not depending
	// on whether AMI came back meanwhile (the source may have answered
	// "waiting" before b's rollback ended).
	// (A retry may reuse the number of the generation b refused for it: the
	// same content, now good.)
	back := r.waitGoodAfter("the change made while AMI was down, once it is back", last-1)
	base := r.reloads("pbx_config.so")
	r.a.replace("extensions.conf", append(bytes.Clone(good), "exten => 104,1,Hangup()\n"...), 0o644)
	r.waitGoodAfter("a change after AMI is back", back.Number)
	converged(t, "a change after AMI is back", r.a, r.b)
	astSteady(t, "reloads of pbx_config.so for one change after AMI is back", base+1, func() int { return r.reloads("pbx_config.so") })
}

// TestAsteriskWrongSecret: a wrong AMI secret makes the generation bad with
// "login failed", and the secret shows in no log, status or history.
func TestAsteriskWrongSecret(t *testing.T) {
	t.Parallel()
	const wrong = "wrong-secret-d41d8cd98f"
	r := newAstRig(t, astOpts{secret: wrong})
	// b's Asterisk counts as down (its login fails): the source queues the
	// generation for b, and its status says why; b's health says so too.
	// (If the announcement won the race with b's published state, b tried,
	// rolled back and answered "not yet": the same outcome.)
	eventually(t, waitLimit, "the source explains why b waits", func() error {
		js, _ := r.a.jobStatus("conf")
		for _, tg := range js.Targets {
			if tg.Name == "b" && tg.State == "waiting" && strings.Contains(tg.Reason, "login failed") && strings.Contains(tg.Reason, "Authentication failed") {
				return nil
			}
		}
		return fmt.Errorf("targets %+v", js.Targets)
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	herr := r.b.a().Healthy(ctx)
	cancel()
	if herr == nil || !strings.Contains(herr.Error(), "login failed") {
		t.Fatalf("b's health with a wrong secret: %v", herr)
	}
	for _, g := range r.gens() {
		if g.State == store.StateGood {
			t.Fatalf("b holds a good generation %d without a working Asterisk", g.Number)
		}
	}
	if n := r.sim.Count("Reload"); n != 0 {
		t.Fatalf("%d reloads without a login", n)
	}
	st, err := json.Marshal([]any{r.a.a().Status(), r.b.a().Status(), r.gens()})
	if err != nil {
		t.Fatal(err)
	}
	simLog, _ := os.ReadFile(r.simLog)
	for what, text := range map[string]string{"a's log": r.a.log.String(), "b's log": r.b.log.String(), "status and history": string(st), "Asterisk log": string(simLog)} {
		for _, s := range []string{wrong, astSecret} {
			if strings.Contains(text, s) {
				t.Errorf("%s shows an AMI secret", what)
			}
		}
	}
	for _, act := range r.sim.Actions() {
		if act.Name == "Login" && act.Get("Secret") == wrong {
			t.Error("the simulator recorded the secret in clear")
		}
	}
}

// BenchmarkChangeToReload: an edit of extensions.conf on the source until
// the target's Asterisk received the Reload of pbx_config.so, on loopback,
// 50 edits; reports p50 and p99 in ms.
//
//	go test -run '^$' -bench ChangeToReload -benchtime 1x ./syncer/
func BenchmarkChangeToReload(b *testing.B) {
	r := newAstRig(b, astOpts{quiet: true})
	last := r.waitGoodAfter("first generation", 0).Number
	edits := 50 * b.N
	lat := make([]time.Duration, 0, edits)
	b.ResetTimer()
	for i := range edits {
		n := r.reloads("pbx_config.so")
		t0 := time.Now()
		r.a.replace("extensions.conf", fmt.Appendf(nil, "%sexten => %d,1,Hangup()\n", astSeed["extensions.conf"], 1000+i), 0o644)
		var at time.Time
		eventually(b, waitLimit, "reload acknowledged", func() error {
			acts := r.sim.Actions()
			for k := len(acts) - 1; k >= 0; k-- {
				if acts[k].Name == "Reload" && acts[k].Get("Module") == "pbx_config.so" && acts[k].At.After(t0) {
					at = acts[k].At
				}
			}
			if r.reloads("pbx_config.so") <= n || at.IsZero() {
				return fmt.Errorf("no reload yet")
			}
			return nil
		})
		lat = append(lat, at.Sub(t0))
		last = r.waitGoodAfter("edit", last).Number // its log check is done
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// TestAsteriskStatePublished: a target publishes its Asterisk's state; the
// source shows it in its peer status (what rules and admins read).
func TestAsteriskStatePublished(t *testing.T) {
	t.Parallel()
	r := newAstRig(t, astOpts{})
	r.sim.SetChannels(3)
	eventually(t, waitLimit, "b's Asterisk state at a", func() error {
		for _, p := range r.a.a().Status().Peers {
			if p.Name != "b" {
				continue
			}
			st := p.State
			if st == nil || st.Asterisk != "up" || st.AsteriskVersion == "" || st.Channels != 3 || len(st.Disks) == 0 {
				return fmt.Errorf("b's published state: %+v", st)
			}
			return nil
		}
		return fmt.Errorf("no peer b")
	})
	if err := r.sim.Down(); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitLimit, "b's Asterisk down at a", func() error {
		for _, p := range r.a.a().Status().Peers {
			if p.Name == "b" && p.State != nil && p.State.Asterisk == "down" && p.State.AsteriskError != "" {
				return nil
			}
		}
		return fmt.Errorf("a still sees b's Asterisk up")
	})
}

// TestAsteriskRecordedModuleNotLoaded: b's Asterisk (the recorded one,
// built without pjproject) has no res_pjsip: Reload answers "No such
// module", ModuleCheck "Module not loaded". pjsip files land, the reload
// is skipped and logged, the generation is good, and b's status says so.
func TestAsteriskRecordedModuleNotLoaded(t *testing.T) {
	t.Parallel()
	r := newAstRig(t, astOpts{recorded: true})
	first := r.waitGoodAfter("first generation (pjsip files, res_pjsip not loaded)", 0)
	r.a.write("pjsip.conf", astSeed["pjsip.conf"]+"\n[transport-tcp]\ntype=transport\nprotocol=tcp\n", 0o644)
	g := r.waitGoodAfter("a pjsip.conf edit", first.Number)
	converged(t, "a pjsip.conf edit", r.a, r.b)
	if !slices.Equal(g.Changed, []string{"pjsip.conf"}) {
		t.Fatalf("generation %d changed %v", g.Number, g.Changed)
	}
	const note = "res_pjsip not loaded: nothing to reload; Asterisk reads pjsip.conf when it loads the module"
	if !r.b.logHas("reload skipped", note) {
		t.Errorf("b's log does not say the reload was skipped: %q", note)
	}
	st := r.actions.AsteriskStatus().Jobs["conf"][0]
	if st.Generation != g.Number || len(st.Actions) != 2 || !strings.HasPrefix(st.Actions[1].Action, "log check ") || st.Actions[0].Result != "skipped" || st.Actions[0].Reason != note {
		t.Fatalf("b's Asterisk status %+v", st)
	}
	if r.sim.Count("ModuleCheck", "Module", "res_pjsip.so") == 0 {
		t.Error("the skip was not confirmed with ModuleCheck")
	}
	for _, x := range r.gens() {
		if x.State != store.StateGood {
			t.Errorf("generation %d is %s: %s", x.Number, x.State, x.Reason)
		}
	}
}

// TestAsteriskRecordedParseErrorOnlyInTheLog: the recorded Asterisk
// answers Success to the reload of a queues.conf with "[sales" unclosed
// and writes the parse error to its log only; b rolls the generation back,
// restores and reloads the old file, and the reason quotes the log lines.
func TestAsteriskRecordedParseErrorOnlyInTheLog(t *testing.T) {
	t.Parallel()
	r := newAstRig(t, astOpts{recorded: true})
	first := r.waitGoodAfter("first generation", 0)
	goodQueues := "[general]\npersistentmembers = yes\n\n[support]\nstrategy = ringall\n"
	r.a.write("queues.conf", goodQueues, 0o644)
	g := r.waitGoodAfter("queues.conf", first.Number)
	before := r.reloads("app_queue.so")

	r.a.replace("queues.conf", []byte("[general]\n;\n; Global settings for call queues\n[sales\n"+goodQueues), 0o644)
	bad := r.waitBadAfter("queues.conf with [sales unclosed", g.Number)
	for _, want := range []string{
		"log check of " + r.simLog,
		"WARNING[",
		"config.c: parse error: no closing ']', line 4 of " + filepath.Join(r.b.tree, "queues.conf"),
		"ERROR[",
		"app_queue.c: Config file queues.conf is in an invalid format.  Aborting.",
	} {
		if !strings.Contains(bad.Reason, want) {
			t.Errorf("reason %q lacks %q", bad.Reason, want)
		}
	}
	if got := string(r.b.read("queues.conf")); got != goodQueues {
		t.Fatalf("after the rollback b holds\n%s\nwant\n%s", got, goodQueues)
	}
	astSteady(t, "reloads of app_queue.so: the broken file's and the restored file's", before+2, func() int { return r.reloads("app_queue.so") })
	// b's status: the restore (newest), then the bad generation with its
	// failed log check.
	st := r.actions.AsteriskStatus().Jobs["conf"]
	if len(st) < 2 || st[1].Generation != bad.Number || len(st[1].Actions) != 2 ||
		st[1].Actions[0].Action != "reload app_queue.so" || st[1].Actions[0].Result != "done" ||
		st[1].Actions[1].Result != "failed" || !strings.Contains(st[1].Actions[1].Reason, "invalid format") ||
		st[0].Actions[0].Action != "reload app_queue.so" || st[0].Actions[0].Result != "done" {
		t.Fatalf("b's Asterisk status %+v", st)
	}
}
