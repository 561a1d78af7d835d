// Package modtest holds what the module tests share: a server with the
// modules under test and a logged-in client, iq round trips, and readers
// for disco#info answers and stanza errors. It belongs in
// server/servertest; it lives here until that package grows it.
package modtest

import (
	"encoding/xml"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// NSDiscoInfo is the XEP-0030 disco#info namespace.
const NSDiscoInfo = server.NSDiscoInfo

// Start runs a test server with mods and logs in as alice@localhost.
func Start(t testing.TB, mods ...server.Module) (*servertest.Server, *servertest.Client) {
	t.Helper()
	srv := servertest.Start(t, server.Config{Modules: mods})
	alice := srv.AddUser(t, "alice", "pw-alice")
	return srv, srv.Connect(t, alice, "pw-alice")
}

// Must returns m, and panics if err is not nil. It takes a module
// constructor's results, as in Must(ping.New(ping.Options{}, ping.Deps{})),
// where the options are known to be valid.
func Must[M server.Module](m M, err error) M {
	if err != nil {
		panic(err)
	}
	return m
}

// IQ builds an iq of type typ to to (the zero JID for none) carrying
// payload.
func IQ(id, typ string, to jid.JID, payload xml.TokenReader) *stanza.Stanza {
	st := &stanza.Stanza{Kind: stanza.IQKind, ID: id, Type: typ, To: to}
	if payload != nil {
		st.AppendChild(payload)
	}
	return st
}

// Query returns an empty <local xmlns=space/> payload.
func Query(space, local string) xml.TokenReader {
	return stanza.Elem(xml.Name{Space: space, Local: local}, nil)
}

// Do sends iq and returns the answer with the same id.
func Do(t testing.TB, c *servertest.Client, iq *stanza.Stanza) *stanza.Stanza {
	t.Helper()
	c.Send(iq)
	return c.Expect(servertest.ByID(iq.ID))
}

// MustResult fails the test unless st is an iq result from from. The
// client library blanks a from that is the client's own bare JID, so
// answers from the client's own account are expected with the zero JID.
func MustResult(t testing.TB, st *stanza.Stanza, from jid.JID) {
	t.Helper()
	if st.Kind != stanza.IQKind || st.Type != stanza.Result {
		t.Fatalf("got %s type=%q (condition %q), want an iq result", st.Kind, st.Type, Condition(st))
	}
	if !st.From.Equal(from) {
		t.Fatalf("result from %q, want %q", st.From, from)
	}
}

// Condition returns the defined condition of a stanza error, or "" when st
// is not an error.
func Condition(st *stanza.Stanza) mstanza.Condition {
	if !st.IsError() {
		return ""
	}
	inError := false
	for _, tok := range st.Inner {
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case se.Name.Local == "error":
			inError = true
		case inError && se.Name.Space == mstanza.NSError && se.Name.Local != "text":
			return mstanza.Condition(se.Name.Local)
		}
	}
	return mstanza.UndefinedCondition
}

// DiscoInfo asks to for disco#info and returns the result.
func DiscoInfo(t testing.TB, c *servertest.Client, to jid.JID) *stanza.Stanza {
	t.Helper()
	res := Do(t, c, IQ("disco-"+to.String(), stanza.Get, to, Query(NSDiscoInfo, "query")))
	from := to
	if to.Equal(c.LocalAddr().Bare()) {
		from = jid.JID{}
	}
	MustResult(t, res, from)
	return res
}

// Features returns the var of every <feature/> in a disco#info result.
func Features(st *stanza.Stanza) []string {
	var out []string
	for _, tok := range st.Inner {
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "feature" {
			continue
		}
		for _, a := range se.Attr {
			if a.Name.Local == "var" {
				out = append(out, a.Value)
			}
		}
	}
	return out
}

// HasFeature reports whether a disco#info result lists feature.
func HasFeature(st *stanza.Stanza, feature string) bool {
	for _, f := range Features(st) {
		if f == feature {
			return true
		}
	}
	return false
}
