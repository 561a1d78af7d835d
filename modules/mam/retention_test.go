package mam_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/mam"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// The retention command offers what is shorter than the server's
// retention, applies a choice at once to the user's archive only, and the
// janitor applies it later; a forged choice changes nothing; choosing the
// server's retention or deleting the account removes the setting.
func TestRetentionCommand(t *testing.T) { each(t, testRetentionCommand) }

func testRetentionCommand(t *testing.T, open func(*testing.T) backend) {
	const day = 24 * time.Hour
	var clock atomic.Int64
	clock.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	e := start(t, open, mam.Options{Retention: 30 * day}, func(m *mam.Module) server.Module {
		mam.SetClock(m, now)
		a, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: []adhoc.Command{m.DeleteArchiveCommand(), m.RetentionCommand()}})
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	ctx := context.Background()
	janitor := func() {
		t.Helper()
		if rep := e.srv.RunJanitor(ctx, now()); rep.Err != nil || rep.Backlog {
			t.Fatalf("janitor: %+v", rep)
		}
	}
	send := func(bodies ...string) {
		for _, b := range bodies {
			alice.Send(chat(bob.LocalAddr().Bare(), b, b))
			bob.Expect(servertest.Body(b))
		}
		alice.Sync()
	}
	archived := func(user string) string {
		p, err := e.store.QueryArchive(ctx, user, storage.ArchiveQuery{Max: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range p.Messages {
			_, body, _ := strings.Cut(string(m.Data), "<body>")
			body, _, _ = strings.Cut(body, "</body>")
			out = append(out, body)
		}
		return strings.Join(out, " ")
	}
	host := jid.MustParse("localhost")
	n := 0
	run := func(c *servertest.Client, action, sid, value string) (res *stanza.Stanza, status, session string) {
		n++
		attrs := []xml.Attr{stanza.Attr("node", mam.RetentionNode), stanza.Attr("action", action)}
		if sid != "" {
			attrs = append(attrs, stanza.Attr("sessionid", sid))
		}
		var children []xml.TokenReader
		if value != "" {
			f := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "retention", Values: []string{value}}}}
			children = append(children, f.TokenReader())
		}
		res = modtest.Do(t, c, modtest.IQ(fmt.Sprint("ret", n), stanza.Set, host, stanza.Elem(xml.Name{Space: adhoc.NS, Local: "command"}, attrs, children...)))
		modtest.MustResult(t, res, host)
		_, cmd, _ := find(res.Inner, "command")
		return res, attr(cmd, "status"), attr(cmd, "sessionid")
	}
	// choose runs the command to its end with value.
	choose := func(c *servertest.Client, value string) string {
		t.Helper()
		_, status, sid := run(c, "execute", "", "")
		if status != "executing" {
			t.Fatalf("execute: status %q", status)
		}
		res, status, _ := run(c, "complete", sid, value)
		if status != "completed" {
			t.Fatalf("complete with %q: status %q: %s", value, status, text(res))
		}
		return text(res)
	}
	stored := func(user string) string {
		v, err := e.store.Get(ctx, user, "mam:retention")
		if err != nil {
			return ""
		}
		return string(v)
	}
	indexed := func() []string {
		keys, err := e.store.ServiceKeys(ctx, mam.RetentionNamespace, storage.ServiceKeysQuery{Max: 10})
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}

	send("old1", "old2")
	advance(2 * day)
	send("new1")

	// The form offers the choices shorter than 30 days and the server's,
	// which is the current value.
	res, status, sid := run(alice, "execute", "", "")
	out := text(res)
	if status != "executing" {
		t.Fatalf("execute: %s", out)
	}
	for _, want := range []string{`var="retention"`, `type="list-single"`, `<value>1</value>`, `<value>7</value>`, `<value>server</value>`, "30 days", "kept as long as the server keeps them"} {
		if !strings.Contains(out, want) {
			t.Errorf("form lacks %s: %s", want, out)
		}
	}
	for _, notWant := range []string{`<value>30</value>`, `<value>90</value>`, `<value>365</value>`} {
		if strings.Contains(out, notWant) {
			t.Errorf("form offers %s, not shorter than the server's retention: %s", notWant, out)
		}
	}
	// A forged value gets an error note and changes nothing.
	for _, forged := range []string{"30", "365", "3650", "-1", "abc"} {
		res, status, _ := run(alice, "complete", sid, forged)
		if out := text(res); status != "completed" || !strings.Contains(out, `type="error"`) || strings.Contains(out, "now kept") {
			t.Errorf("forged %q: status %q: %s", forged, status, out)
		}
		if stored("alice@localhost") != "" || archived("alice@localhost") != "old1 old2 new1" {
			t.Fatalf("forged %q changed something: %q, archive %q", forged, stored("alice@localhost"), archived("alice@localhost"))
		}
		_, _, sid = run(alice, "execute", "", "")
	}
	run(alice, "cancel", sid, "")

	// One day: the older messages go at once, alice's only.
	if out := choose(alice, "1"); !strings.Contains(out, "kept for 1 day; 2 older messages were deleted") {
		t.Fatalf("choosing 1 day: %s", out)
	}
	if got := archived("alice@localhost"); got != "new1" {
		t.Fatalf("alice's archive after choosing 1 day: %q", got)
	}
	if got := archived("bob@localhost"); got != "old1 old2 new1" {
		t.Fatalf("bob's archive touched: %q", got)
	}
	if got := indexed(); len(got) != 1 || got[0] != "alice@localhost" {
		t.Fatalf("index %q", got)
	}
	// The form shows the current value.
	res, _, sid = run(alice, "execute", "", "")
	if out := text(res); !strings.Contains(out, "kept for 1 day") {
		t.Errorf("form does not show the current value: %s", out)
	}
	run(alice, "cancel", sid, "")

	// The janitor applies it later; the server's 30 days keep bob's.
	advance(2 * day)
	send("new2")
	janitor()
	if got := archived("alice@localhost"); got != "new2" {
		t.Fatalf("alice's archive after the janitor: %q", got)
	}
	if got := archived("bob@localhost"); got != "old1 old2 new1 new2" {
		t.Fatalf("bob's archive after the janitor: %q", got)
	}
	// Queries agree.
	if p := query(t, alice, queryIQ("q", nil, nil, false)); len(p.results) != 1 || p.count != "1" {
		t.Fatalf("query after the janitor: %+v", p)
	}

	// Back to the server's retention: the setting and its index go.
	if out := choose(alice, "server"); !strings.Contains(out, "as long as the server keeps them (30 days)") {
		t.Fatalf("choosing the server's: %s", out)
	}
	if stored("alice@localhost") != "" || len(indexed()) != 0 {
		t.Fatalf("setting kept: %q, index %q", stored("alice@localhost"), indexed())
	}
	advance(2 * day)
	janitor()
	if got := archived("alice@localhost"); got != "new2" {
		t.Fatalf("alice's archive with the server's retention: %q", got)
	}

	// A stale index entry (a setting without its index entry's user
	// having one) is dropped by the janitor.
	if err := e.store.PutServiceValue(ctx, mam.RetentionNamespace, "carol@localhost", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	janitor()
	if got := indexed(); len(got) != 0 {
		t.Fatalf("stale index entry kept: %q", got)
	}

	// Deleting the account deletes the setting.
	if out := choose(alice, "7"); !strings.Contains(out, "kept for 7 days; 0 older messages") {
		t.Fatalf("choosing 7 days: %s", out)
	}
	if stored("alice@localhost") == "" || len(indexed()) != 1 {
		t.Fatalf("7 days not stored: %q, index %q", stored("alice@localhost"), indexed())
	}
	if err := e.srv.DeleteUser(ctx, jid.MustParse("alice@localhost")); err != nil {
		t.Fatal(err)
	}
	if stored("alice@localhost") != "" || len(indexed()) != 0 {
		t.Fatalf("setting kept after the account's deletion: %q, index %q", stored("alice@localhost"), indexed())
	}
}

// Without Deps.Service the command says it is not offered.
func TestRetentionCommandUnavailable(t *testing.T) {
	store := backends[0].open(t)
	m, err := mam.New(mam.Options{}, mam.Deps{Archive: store, KV: store})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.RetentionCommand().Handler(t.Context(), jid.MustParse("alice@localhost/phone"), adhoc.Request{Action: adhoc.Execute})
	if err != nil || resp.Status != adhoc.Completed || len(resp.Notes) != 1 || resp.Notes[0].Type != "error" {
		t.Fatalf("without a service store: %+v, %v", resp, err)
	}
}

// A server retention shorter than a day offers only the server's.
func TestRetentionCommandShortServer(t *testing.T) {
	store := backends[0].open(t)
	m, err := mam.New(mam.Options{Retention: 12 * time.Hour}, mam.Deps{Archive: store, KV: store, Service: store})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.RetentionCommand().Handler(t.Context(), jid.MustParse("alice@localhost/phone"), adhoc.Request{Action: adhoc.Execute})
	if err != nil || resp.Form == nil {
		t.Fatalf("%+v, %v", resp, err)
	}
	f := resp.Form.Field("retention")
	if f == nil || len(f.Options) != 1 || f.Options[0].Value != "server" || !strings.Contains(f.Options[0].Label, "12h0m0s") {
		t.Fatalf("field %+v", f)
	}
}

// The janitor applies the server's and the personal retentions in bounded
// batches: a backlog larger than a batch, and than a run's budget, is gone
// after enough runs, and nothing within its retention goes.
func TestRetentionBatches(t *testing.T) { each(t, testRetentionBatches) }

func testRetentionBatches(t *testing.T, open func(*testing.T) backend) {
	const day = 24 * time.Hour
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	store := open(t)
	mod, err := mam.New(mam.Options{Retention: 30 * day}, mam.Deps{Archive: store, KV: store, Service: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{Accounts: store, Modules: []server.Module{mod},
		Retention: server.Retention{Interval: -1, Batch: 7, Budget: 60}})
	ctx := t.Context()
	for u := range 10 {
		user := fmt.Sprintf("u%d@localhost", u)
		for _, base := range []time.Time{now.Add(-40 * day), now.Add(-3 * day)} { // IDs increase
			for i := range 10 {
				if _, err := store.AppendArchive(ctx, user, base.Add(time.Duration(i)*time.Minute), "peer@example.org", []byte("<message><body>secret</body></message>")); err != nil {
					t.Fatal(err)
				}
			}
		}
		if u < 5 { // a personal retention of one day
			if err := store.Put(ctx, user, "mam:retention", []byte((day).String())); err != nil {
				t.Fatal(err)
			}
			if err := store.PutServiceValue(ctx, mam.RetentionNamespace, user, nil, time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	total, runs := 0, 0
	for {
		rep := srv.RunJanitor(ctx, now)
		if rep.Err != nil {
			t.Fatal(rep.Err)
		}
		if rep.Total() > 60 {
			t.Fatalf("a run removed %d, over its budget", rep.Total())
		}
		total += rep.Removed["mam"]
		runs++
		if !rep.Backlog {
			break
		}
		if runs > 10 {
			t.Fatal("the backlog never ends")
		}
	}
	if total != 150 || runs < 3 {
		t.Errorf("the janitor removed %d in %d runs, want 150 in at least 3", total, runs)
	}
	for u := range 10 {
		st, err := store.ArchiveStats(ctx, fmt.Sprintf("u%d@localhost", u))
		want := 10
		if u < 5 {
			want = 0
		}
		if err != nil || st.Count != want {
			t.Errorf("u%d keeps %d messages, %v; want %d", u, st.Count, err, want)
		}
	}
}

// A pass over more personal retentions than one page of the index reaches
// them all, over calls.
func TestRetentionManyUsers(t *testing.T) {
	const day = 24 * time.Hour
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	store := memory.New()
	mod, err := mam.New(mam.Options{}, mam.Deps{Archive: store, KV: store, Service: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const users = 600
	for u := range users {
		user := fmt.Sprintf("u%03d@localhost", u)
		if _, err := store.AppendArchive(ctx, user, now.Add(-3*day), "peer@example.org", []byte("m")); err != nil {
			t.Fatal(err)
		}
		if err := store.Put(ctx, user, "mam:retention", []byte(day.String())); err != nil {
			t.Fatal(err)
		}
		if err := store.PutServiceValue(ctx, mam.RetentionNamespace, user, nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for calls := 0; ; calls++ {
		if calls > 100 {
			t.Fatal("the pass never ends")
		}
		n, more, err := mod.Expire(ctx, now, 100)
		if err != nil || n > 100 {
			t.Fatalf("Expire = %d, %v", n, err)
		}
		total += n
		if !more {
			break
		}
	}
	if total != users {
		t.Errorf("removed %d, want %d", total, users)
	}
}
