package adhoc_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

var host = jid.MustParse("localhost")

func command(id, node, action, sid string, f *form.Form) *stanza.Stanza {
	attrs := []xml.Attr{stanza.Attr("node", node)}
	if action != "" {
		attrs = append(attrs, stanza.Attr("action", action))
	}
	if sid != "" {
		attrs = append(attrs, stanza.Attr("sessionid", sid))
	}
	var children []xml.TokenReader
	if f != nil {
		children = append(children, f.TokenReader())
	}
	return modtest.IQ(id, stanza.Set, host, stanza.Elem(xml.Name{Space: adhoc.NS, Local: "command"}, attrs, children...))
}

func text(st *stanza.Stanza) string {
	var b bytes.Buffer
	st.WriteTo(&b)
	return b.String()
}

// answer is a parsed <command/> answer.
type answer struct {
	status, sid, execute string
	notes                []string
	form                 *form.Form
}

func parse(t *testing.T, st *stanza.Stanza) answer {
	t.Helper()
	modtest.MustResult(t, st, host)
	start, r, ok := st.Child(xml.Name{Space: adhoc.NS, Local: "command"})
	if !ok {
		t.Fatalf("no command in %s", text(st))
	}
	var a answer
	for _, at := range start.Attr {
		switch at.Name.Local {
		case "status":
			a.status = at.Value
		case "sessionid":
			a.sid = at.Value
		}
	}
	toks := stanza.Resolve(r, adhoc.NS)
	for i, tok := range toks {
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case se.Name.Local == "actions":
			for _, at := range se.Attr {
				if at.Name.Local == "execute" {
					a.execute = at.Value
				}
			}
		case se.Name.Local == "note":
			if cd, ok := toks[i+1].(xml.CharData); ok {
				a.notes = append(a.notes, string(cd))
			}
		case se.Name.Space == form.NS && se.Name.Local == "x":
			f, err := form.Parse(stanza.Tokens(toks[i:]...))
			if err != nil {
				t.Fatal(err)
			}
			a.form = f
		}
	}
	return a
}

// clock is a fake clock that moves only when the test advances it. The
// module reads it from the server's goroutines.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestCommands(t *testing.T) {
	var gotForm *form.Form
	hello := adhoc.Command{Node: "urn:example:hello", Name: "Say hello", Handler: func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "hello " + user.Bare().String()}}}, nil
	}}
	ask := adhoc.Command{Node: "urn:example:ask", Name: "Ask", Handler: func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		return adhoc.Response{
			Status:  adhoc.Executing,
			Form:    &form.Form{Type: form.TypeForm, Title: "Question", Fields: []form.Field{{Var: "ok", Type: form.Boolean, Label: "OK?", Required: true}}},
			Actions: []adhoc.Action{adhoc.Complete},
			Next: func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
				gotForm = req.Form
				if req.Action != adhoc.Complete {
					t.Errorf("next stage got action %s", req.Action)
				}
				return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "done"}}}, nil
			},
		}, nil
	}}
	const timeout = 10 * time.Minute
	mod, err := adhoc.New(adhoc.Options{SessionTimeout: timeout}, adhoc.Deps{Commands: []adhoc.Command{hello, ask}})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)}
	adhoc.SetClock(mod, clk.Now)
	srv, alice := modtest.Start(t, mod)
	other := srv.Connect(t, jid.MustParse("alice@localhost/other"), "pw-alice")

	// Discovery (XEP-0050 §2).
	if !modtest.HasFeature(modtest.DiscoInfo(t, alice, host), adhoc.NS) {
		t.Fatal("no commands feature on the server")
	}
	items := modtest.Do(t, alice, modtest.IQ("items", stanza.Get, host, stanza.Elem(xml.Name{Space: server.NSDiscoItems, Local: "query"}, []xml.Attr{stanza.Attr("node", adhoc.NS)})))
	modtest.MustResult(t, items, host)
	for _, want := range []string{`jid="localhost" node="urn:example:hello" name="Say hello"`, `node="urn:example:ask"`} {
		if !strings.Contains(text(items), want) {
			t.Fatalf("items lack %s: %s", want, text(items))
		}
	}
	info := modtest.Do(t, alice, modtest.IQ("info", stanza.Get, host, stanza.Elem(xml.Name{Space: server.NSDiscoInfo, Local: "query"}, []xml.Attr{stanza.Attr("node", "urn:example:ask")})))
	modtest.MustResult(t, info, host)
	if !strings.Contains(text(info), `category="automation" type="command-node"`) || !modtest.HasFeature(info, adhoc.NS) || !modtest.HasFeature(info, form.NS) {
		t.Fatalf("command node info %s", text(info))
	}

	// A single-stage command.
	a := parse(t, modtest.Do(t, alice, command("c1", "urn:example:hello", "", "", nil)))
	if a.status != "completed" || len(a.notes) != 1 || a.notes[0] != "hello alice@localhost" || a.sid == "" {
		t.Fatalf("hello answered %+v", a)
	}

	// Two stages: the form, then the answer.
	a = parse(t, modtest.Do(t, alice, command("c2", "urn:example:ask", "execute", "", nil)))
	if a.status != "executing" || a.execute != "complete" || a.form == nil || a.form.Fields[0].Var != "ok" || !a.form.Fields[0].Required {
		t.Fatalf("ask answered %+v", a)
	}
	sid := a.sid
	// Another resource of the same account cannot continue the session.
	if c := modtest.Condition(modtest.Do(t, other, command("c3", "urn:example:ask", "complete", sid, nil))); c != "bad-request" {
		t.Fatalf("foreign session: %q", c)
	}
	// An action not offered is refused, and the session stays.
	if c := modtest.Condition(modtest.Do(t, alice, command("c4", "urn:example:ask", "next", sid, nil))); c != "bad-request" {
		t.Fatalf("next: %q", c)
	}
	submit := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "ok", Values: []string{"true"}}}}
	a = parse(t, modtest.Do(t, alice, command("c5", "urn:example:ask", "complete", sid, submit)))
	if a.status != "completed" || a.sid != sid || len(a.notes) != 1 || gotForm == nil || !gotForm.Bool("ok") {
		t.Fatalf("complete answered %+v, form %+v", a, gotForm)
	}
	// The session is over.
	if c := modtest.Condition(modtest.Do(t, alice, command("c6", "urn:example:ask", "complete", sid, submit))); c != "not-allowed" {
		t.Fatalf("finished session: %q", c)
	}

	// Cancel.
	gotForm = nil
	a = parse(t, modtest.Do(t, alice, command("c7", "urn:example:ask", "", "", nil)))
	a = parse(t, modtest.Do(t, alice, command("c8", "urn:example:ask", "cancel", a.sid, nil)))
	if a.status != "canceled" || gotForm != nil {
		t.Fatalf("cancel answered %+v", a)
	}
	// So does a submitted form of type cancel, whatever the action.
	a = parse(t, modtest.Do(t, alice, command("c8a", "urn:example:ask", "", "", nil)))
	sid = a.sid
	a = parse(t, modtest.Do(t, alice, command("c8b", "urn:example:ask", "complete", sid, &form.Form{Type: form.TypeCancel})))
	if a.status != "canceled" || gotForm != nil {
		t.Fatalf("cancel form answered %+v", a)
	}
	if c := modtest.Condition(modtest.Do(t, alice, command("c8c", "urn:example:ask", "complete", sid, submit))); c != "not-allowed" {
		t.Fatalf("cancelled session: %q", c)
	}

	// Expiry: a session lasts its whole timeout and no longer. "execute" on
	// a waiting session means its default action.
	a = parse(t, modtest.Do(t, alice, command("c9", "urn:example:ask", "", "", nil)))
	clk.Advance(timeout + time.Nanosecond)
	if c := modtest.Condition(modtest.Do(t, alice, command("c10", "urn:example:ask", "execute", a.sid, submit))); c != "not-allowed" {
		t.Fatalf("expired session: %q", c)
	}
	a = parse(t, modtest.Do(t, alice, command("c11", "urn:example:ask", "", "", nil)))
	clk.Advance(timeout)
	if a := parse(t, modtest.Do(t, alice, command("c12", "urn:example:ask", "execute", a.sid, submit))); a.status != "completed" {
		t.Fatalf("execute as default action, at the timeout: %+v", a)
	}

	// Errors.
	for _, tc := range []struct {
		st   *stanza.Stanza
		cond string
	}{
		{command("e1", "urn:example:none", "", "", nil), "item-not-found"},
		{command("e2", "urn:example:ask", "jump", "", nil), "bad-request"},
		{command("e3", "urn:example:ask", "complete", "", nil), "bad-request"},
		{command("e4", "urn:example:ask", "complete", "nosuchsession", nil), "not-allowed"},
		{command("e5", "urn:example:ask", "complete", "nosuchsession", &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Values: []string{"1"}}}}), "bad-request"},
	} {
		if c := modtest.Condition(modtest.Do(t, alice, tc.st)); string(c) != tc.cond {
			t.Errorf("%s: %q, want %q", tc.st.ID, c, tc.cond)
		}
	}
	// A malformed form is answered with what is wrong with it.
	if st := modtest.Do(t, alice, command("e6", "urn:example:ask", "complete", "nosuchsession",
		&form.Form{Type: "reply"})); !strings.Contains(text(st), `malformed data form: unknown form type "reply"`) {
		t.Errorf("malformed form answered %s", text(st))
	}
}

func TestNew(t *testing.T) {
	h := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		return adhoc.Response{Status: adhoc.Completed}, nil
	}
	for _, cmds := range [][]adhoc.Command{
		{{Node: "", Handler: h}},
		{{Node: adhoc.NS, Handler: h}},
		{{Node: "a"}},
		{{Node: "a", Handler: h}, {Node: "a", Handler: h}},
	} {
		if _, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: cmds}); err == nil {
			t.Errorf("commands %+v accepted", cmds)
		}
	}
}
