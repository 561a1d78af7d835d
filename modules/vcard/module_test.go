package vcard_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/vcard"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/memory"
)

// store is what the tests need of a backend: accounts for the server,
// KV for the module.
type store interface {
	storage.Accounts
	storage.KV
}

func memoryStore(t *testing.T) store { return memory.New() }

func bboltStore(t *testing.T) store {
	s, err := bbolt.Open(filepath.Join(t.TempDir(), "kiez.db"), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start runs a server with the vCard module on st and adds alice and bob.
func start(t *testing.T, st store, opts vcard.Options) (srv *servertest.Server, alice, bob jid.JID) {
	t.Helper()
	m, err := vcard.New(opts, vcard.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv = servertest.Start(t, server.Config{Accounts: st, Modules: []server.Module{m}})
	return srv, srv.AddUser(t, "alice", "pw-alice"), srv.AddUser(t, "bob", "pw-bob")
}

// card returns a vCard with a full name and, if photo > 0, a PHOTO of
// photo random-looking bytes, base64-encoded as XEP-0153 clients send it.
func card(fn string, photo int) string {
	var b strings.Builder
	b.WriteString(`<vCard xmlns='vcard-temp'><FN>` + fn + `</FN><N><FAMILY>Liddell</FAMILY><GIVEN>` + fn + `</GIVEN></N>`)
	b.WriteString(`<EMAIL><INTERNET/><PREF/><USERID>alice@example.org</USERID></EMAIL>`)
	if photo > 0 {
		img := make([]byte, photo)
		for i := range img {
			img[i] = byte(i*31 + i/97)
		}
		b.WriteString(`<PHOTO><TYPE>image/png</TYPE><BINVAL>` + base64.StdEncoding.EncodeToString(img) + `</BINVAL></PHOTO>`)
	}
	b.WriteString(`<DESC xml:lang='en'>a &amp; b &lt;c&gt;</DESC></vCard>`)
	return b.String()
}

// element parses the first element of s (which may be a whole document)
// named name, or the first element at all for the zero name, into tokens
// with explicit namespaces.
func element(t *testing.T, s string, name xml.Name) []xml.Token {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("no element %v in %.200s: %v", name, s, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || (name != xml.Name{} && se.Name != name) {
			continue
		}
		inner, err := stanza.ReadElement(d, 0)
		if err != nil {
			t.Fatal(err)
		}
		toks := stanza.Resolve(stanza.Tokens(se.Copy(), se.End()), "")[:1]
		toks = append(toks, inner...)
		return append(toks, se.End())
	}
}

// serialise writes tokens as a stand-alone element.
func serialise(t *testing.T, toks []xml.Token) string {
	t.Helper()
	var b bytes.Buffer
	if err := stanza.WriteTokens(&b, toks, ""); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func readAll(r xml.TokenReader) []xml.Token {
	var toks []xml.Token
	for {
		t, err := r.Token()
		if err == io.EOF || t == nil {
			return toks
		}
		toks = append(toks, t)
	}
}

var vCardName = xml.Name{Space: vcard.NS, Local: "vCard"}

// vCardOf returns the vCard in an iq result, serialised.
func vCardOf(t *testing.T, res *stanza.Stanza) string {
	t.Helper()
	_, r, ok := res.Child(vCardName)
	if !ok {
		t.Fatal("result without <vCard xmlns='vcard-temp'/>")
	}
	return serialise(t, readAll(r))
}

func setIQ(t *testing.T, id string, to jid.JID, vCard string) *stanza.Stanza {
	return modtest.IQ(id, stanza.Set, to, stanza.Tokens(element(t, vCard, xml.Name{})...))
}

func getIQ(id string, to jid.JID) *stanza.Stanza {
	return modtest.IQ(id, stanza.Get, to, modtest.Query(vcard.NS, "vCard"))
}

const emptyVCard = `<vCard xmlns="vcard-temp"/>`

// TestRoundTrip: alice stores a vCard with a photo, she and bob read it
// back unchanged; accounts without one have an empty vCard.
func TestRoundTrip(t *testing.T) {
	for _, backend := range []struct {
		name string
		new  func(t *testing.T) store
	}{{"memory", memoryStore}, {"bbolt", bboltStore}} {
		t.Run(backend.name, func(t *testing.T) {
			st := backend.new(t)
			srv, alice, bob := start(t, st, vcard.Options{})
			a := srv.Connect(t, alice, "pw-alice")
			b := srv.Connect(t, bob, "pw-bob")
			domain := jid.MustParse(srv.Domain)

			// Before anything is set, a vCard is empty.
			res := modtest.Do(t, b, getIQ("before", alice))
			modtest.MustResult(t, res, alice)
			if got := vCardOf(t, res); got != emptyVCard {
				t.Fatalf("vCard before set = %s", got)
			}

			sent := card("Alice", 60<<10) // 80 KiB of base64
			want := serialise(t, element(t, sent, xml.Name{}))
			res = modtest.Do(t, a, setIQ(t, "set", jid.JID{}, sent))
			modtest.MustResult(t, res, jid.JID{})
			if len(res.Inner) != 0 {
				t.Fatalf("set result has %d child tokens, want none", len(res.Inner))
			}
			if stored, err := st.Get(t.Context(), alice.String(), vcard.Key); err != nil || string(stored) != want {
				t.Fatalf("stored %.100q, %v; want %.100q", stored, err, want)
			}

			for _, tc := range []struct {
				name string
				c    *servertest.Client
				to   jid.JID
				from jid.JID
				want string
			}{
				{"own without to", a, jid.JID{}, jid.JID{}, want},
				{"own bare JID", a, alice, jid.JID{}, want},
				{"other reads", b, alice, alice, want},
				{"other's own empty", b, jid.JID{}, jid.JID{}, emptyVCard},
				{"alice reads bob", a, bob, bob, emptyVCard},
				{"server", a, domain, domain, emptyVCard},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res := modtest.Do(t, tc.c, getIQ("get-"+tc.name, tc.to))
					modtest.MustResult(t, res, tc.from)
					if got := vCardOf(t, res); got != tc.want {
						t.Fatalf("vCard = %.200s (%d bytes), want %.200s (%d bytes)", got, len(got), tc.want, len(tc.want))
					}
				})
			}

			// A new set replaces the vCard.
			modtest.MustResult(t, modtest.Do(t, a, setIQ(t, "set2", alice, card("Al", 0))), jid.JID{})
			if got, want := vCardOf(t, modtest.Do(t, b, getIQ("after", alice))), serialise(t, element(t, card("Al", 0), xml.Name{})); got != want {
				t.Fatalf("vCard after replacing = %s, want %s", got, want)
			}

			// An account that does not exist is answered by the server
			// core, not with an empty vCard.
			res = modtest.Do(t, a, getIQ("nobody", jid.MustParse("nobody@"+srv.Domain)))
			if got := modtest.Condition(res); got != mstanza.ServiceUnavailable {
				t.Fatalf("vCard of a missing account: condition %q", got)
			}
		})
	}
}

// TestTooBig: a vCard over MaxSize is refused and the stored one kept.
func TestTooBig(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		st := memoryStore(t)
		srv, alice, _ := start(t, st, vcard.Options{})
		a := srv.Connect(t, alice, "pw-alice")
		res := modtest.Do(t, a, setIQ(t, "big", jid.JID{}, card("Alice", 100<<10))) // 133 KiB of base64
		if got := modtest.Condition(res); got != mstanza.NotAcceptable {
			t.Fatalf("condition = %q, want not-acceptable", got)
		}
		if !strings.Contains(errorXML(t, res), `type="modify"`) || !strings.Contains(errorXML(t, res), "exceeds the limit of 131072") {
			t.Fatalf("error %s lacks type modify or its text", errorXML(t, res))
		}
		if _, err := st.Get(t.Context(), alice.String(), vcard.Key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("refused vCard stored: %v", err)
		}
	})
	t.Run("boundary", func(t *testing.T) {
		fits := card("Alice", 1000)
		limit := len(serialise(t, element(t, fits, xml.Name{})))
		st := memoryStore(t)
		srv, alice, _ := start(t, st, vcard.Options{MaxSize: limit})
		a := srv.Connect(t, alice, "pw-alice")
		modtest.MustResult(t, modtest.Do(t, a, setIQ(t, "fits", jid.JID{}, fits)), jid.JID{})
		over := strings.Replace(fits, "<FN>Alice</FN>", "<FN>Alice!</FN>", 1)
		if n := len(serialise(t, element(t, over, xml.Name{}))); n != limit+1 {
			t.Fatalf("over is %d bytes, want %d", n, limit+1)
		}
		res := modtest.Do(t, a, setIQ(t, "one-more", jid.JID{}, over))
		if got := modtest.Condition(res); got != mstanza.NotAcceptable {
			t.Fatalf("one byte over: condition %q, want not-acceptable", got)
		}
		if got := vCardOf(t, modtest.Do(t, a, getIQ("get", jid.JID{}))); got != serialise(t, element(t, fits, xml.Name{})) {
			t.Fatalf("refused set changed the vCard: %.200s", got)
		}
	})
}

func errorXML(t *testing.T, st *stanza.Stanza) string {
	t.Helper()
	var b bytes.Buffer
	if err := st.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestOtherUserCannotSet: bob may read alice's vCard but not set it.
func TestOtherUserCannotSet(t *testing.T) {
	st := memoryStore(t)
	srv, alice, bob := start(t, st, vcard.Options{})
	a := srv.Connect(t, alice, "pw-alice")
	b := srv.Connect(t, bob, "pw-bob")
	modtest.MustResult(t, modtest.Do(t, a, setIQ(t, "own", jid.JID{}, card("Alice", 0))), jid.JID{})

	res := modtest.Do(t, b, setIQ(t, "forge", alice, card("Mallory", 0)))
	if got := modtest.Condition(res); got != mstanza.Forbidden {
		t.Fatalf("condition = %q, want forbidden", got)
	}
	stored, err := st.Get(t.Context(), alice.String(), vcard.Key)
	if err != nil || strings.Contains(string(stored), "Mallory") || !strings.Contains(string(stored), "Alice") {
		t.Fatalf("alice's stored vCard %q, %v", stored, err)
	}
	if _, err := st.Get(t.Context(), bob.String(), vcard.Key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the forged set stored a vCard for bob: %v", err)
	}
}

// TestDeleteAndExport: the export holds the vCard; deleting the account
// removes it from the store.
func TestDeleteAndExport(t *testing.T) {
	for _, backend := range []struct {
		name string
		new  func(t *testing.T) store
	}{{"memory", memoryStore}, {"bbolt", bboltStore}} {
		t.Run(backend.name, func(t *testing.T) {
			st := backend.new(t)
			srv, alice, bob := start(t, st, vcard.Options{})
			a := srv.Connect(t, alice, "pw-alice")
			b := srv.Connect(t, bob, "pw-bob")
			sent := card("Alice", 2000)
			modtest.MustResult(t, modtest.Do(t, a, setIQ(t, "a", jid.JID{}, sent)), jid.JID{})
			modtest.MustResult(t, modtest.Do(t, b, setIQ(t, "b", jid.JID{}, card("Bob", 0))), jid.JID{})

			var buf bytes.Buffer
			enc := xml.NewEncoder(&buf)
			if err := srv.ExportUser(t.Context(), alice, enc); err != nil {
				t.Fatal(err)
			}
			enc.Flush()
			user := element(t, buf.String(), xml.Name{Space: server.NSPIE, Local: "user"})
			if got, want := serialise(t, element(t, serialise(t, user), vCardName)), serialise(t, element(t, sent, xml.Name{})); got != want {
				t.Fatalf("exported vCard\n%.300s\nwant\n%.300s", got, want)
			}

			if err := srv.DeleteUser(t.Context(), alice); err != nil {
				t.Fatal(err)
			}
			if v, err := st.Get(context.Background(), alice.String(), vcard.Key); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("vCard after deleting the account: %.50q, %v", v, err)
			}
			if _, err := st.Get(context.Background(), bob.String(), vcard.Key); err != nil {
				t.Fatalf("bob's vCard after deleting alice: %v", err)
			}
			// A new account with the same name starts without a vCard.
			alice = srv.AddUser(t, "alice", "pw2")
			res := modtest.Do(t, b, getIQ("new-alice", alice))
			if got := vCardOf(t, res); got != emptyVCard {
				t.Fatalf("new alice has vCard %.100s", got)
			}
		})
	}
}

// TestDeleteUserOnlyOwnKey: the module deletes its key, not what other
// modules keep for the user in the same store.
func TestDeleteUserOnlyOwnKey(t *testing.T) {
	st := memory.New()
	m, err := vcard.New(vcard.Options{}, vcard.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	const user = "alice@example.org"
	for _, k := range []string{vcard.Key, "private:{storage:bookmarks}storage", "vcard2"} {
		if err := st.Put(t.Context(), user, k, []byte("<x/>")); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.DeleteUser(t.Context(), jid.MustParse(user+"/res")); err != nil {
		t.Fatal(err)
	}
	keys, _ := st.Keys(t.Context(), user)
	if strings.Join(keys, ",") != "private:{storage:bookmarks}storage,vcard2" {
		t.Fatalf("keys after DeleteUser: %q", keys)
	}
	// Exporting a user without a vCard writes nothing.
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := m.ExportUser(t.Context(), jid.MustParse("bob@example.org"), enc); err != nil {
		t.Fatal(err)
	}
	enc.Flush()
	if buf.Len() != 0 {
		t.Fatalf("export of a user without vCard: %s", buf.String())
	}
}

func TestFeatures(t *testing.T) {
	srv, alice, bob := start(t, memoryStore(t), vcard.Options{})
	a := srv.Connect(t, alice, "pw-alice")
	for _, to := range []jid.JID{jid.MustParse(srv.Domain), bob, alice} {
		if info := modtest.DiscoInfo(t, a, to); !modtest.HasFeature(info, vcard.NS) {
			t.Errorf("disco#info of %s: features %v lack %s", to, modtest.Features(info), vcard.NS)
		}
	}
}

func TestNew(t *testing.T) {
	if _, err := vcard.New(vcard.Options{}, vcard.Deps{}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := vcard.New(vcard.Options{MaxSize: -1}, vcard.Deps{Store: memory.New()}); err == nil {
		t.Error("New with a negative MaxSize succeeded")
	}
	m, err := vcard.New(vcard.Options{}, vcard.Deps{Store: memory.New()})
	if err != nil || m.Name() != "vcard" || len(m.UserData()) == 0 {
		t.Fatalf("New: %v", err)
	}
}
