package main

import (
	"encoding/xml"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt/bbolttest"
)

// Deleting an account deletes everything of it even when the modules
// that stored it have been switched off since.
func TestDeluserWithModulesSwitchedOff(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself
	file, dir := testConfig(t, "")
	for _, u := range []string{"alice@localhost", "bob@localhost", "carol@localhost"} {
		if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	a := servertest.NewClient(t, sess)
	iq := func(id string, payload *stanza.Stanza) {
		t.Helper()
		payload.Kind, payload.Type, payload.ID = stanza.IQKind, stanza.Set, id
		a.Send(payload)
		if res := a.Expect(servertest.ByID(id)); res.Type != stanza.Result {
			t.Fatalf("iq %s: %s", id, res.Type)
		}
	}
	// Roster, vCard and private storage of alice; a message to bob, who
	// is offline (offline storage, both archives).
	roster := &stanza.Stanza{}
	roster.AppendChild(stanza.Elem(xml.Name{Space: "jabber:iq:roster", Local: "query"}, nil,
		stanza.Elem(xml.Name{Space: "jabber:iq:roster", Local: "item"}, []xml.Attr{stanza.Attr("jid", "rosterfriend@example.net")})))
	iq("roster", roster)
	vc := &stanza.Stanza{}
	vc.AppendChild(stanza.Elem(xml.Name{Space: "vcard-temp", Local: "vCard"}, nil,
		stanza.TextElem(xml.Name{Space: "vcard-temp", Local: "FN"}, "Alice Vcardname")))
	iq("vcard", vc)
	priv := &stanza.Stanza{}
	priv.AppendChild(stanza.Elem(xml.Name{Space: "jabber:iq:private", Local: "query"}, nil,
		stanza.TextElem(xml.Name{Space: "urn:example:notes", Local: "note"}, "alice private note")))
	iq("private", priv)
	pub := &stanza.Stanza{}
	pubsub := xml.Name{Space: "http://jabber.org/protocol/pubsub", Local: "pubsub"}
	pub.AppendChild(stanza.Elem(pubsub, nil, stanza.Elem(xml.Name{Space: pubsub.Space, Local: "publish"}, []xml.Attr{stanza.Attr("node", "urn:example:pep")},
		stanza.Elem(xml.Name{Space: pubsub.Space, Local: "item"}, nil, stanza.TextElem(xml.Name{Space: "urn:example:pep", Local: "x"}, "alice pep item")))))
	iq("pep", pub)
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	msg := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: jid.MustParse("bob@localhost"), ID: "m1"}
	msg.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "alice says hi to bob"))
	a.Send(msg)
	a.Sync()
	logout(sess)
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}

	// Everything that stored it is switched off now.
	off := "\n[modules]\nroster = false\nvcard = false\nprivate = false\noffline = false\narchive = false\ncarbons = false\nblocking = false\npep = false\n"
	if err := os.WriteFile(file, append(must(os.ReadFile(file)), off...), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "data", "kiez.db")
	before := bbolttest.Everything(t, db)
	for _, s := range []string{"rosterfriend", "Alice Vcardname", "alice private note", "alice says hi to bob", "alice pep item", "urn:example:pep"} {
		if !bbolttest.Contains(before, s) {
			t.Fatalf("%q was never stored; the test does not test anything", s)
		}
	}
	for _, u := range []string{"alice@localhost", "bob@localhost"} {
		if code, stdout, stderr := kiezd(t, "", "-config", file, "deluser", u); code != 0 || stdout != "deleted "+u+" and all its data\n" {
			t.Fatalf("deluser %s: exit %d, %q, %q", u, code, stdout, stderr)
		}
	}
	after := bbolttest.Everything(t, db)
	for _, s := range []string{"alice", "bob", "rosterfriend", "Vcardname", "private note", "says hi", "pep item", "urn:example:pep"} {
		if bbolttest.Contains(after, s) {
			t.Errorf("%q is still in the database after both accounts were deleted", s)
		}
	}
	if !bbolttest.Contains(after, "carol@localhost") {
		t.Error("carol's account is gone too")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// housekeepingFixture opens a kiezd database with a server built as serve
// builds it from config text, for housekeeper tests.
func housekeepingFixture(t *testing.T, extra string) (*housekeeper, kiezStore, *syncBuffer) {
	t.Helper()
	file, _ := testConfig(t, extra)
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logs := new(syncBuffer)
	log := newLogger(cfg.Log, logs)
	// The tests run the janitor themselves, at the times they choose.
	target, err := newServer(t.Context(), cfg, store, log, nil, func(c *server.Config) { c.Retention.Interval = -1 })
	srv := target.srv
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &housekeeper{cfg: cfg, srv: srv, store: store, log: log}, store, logs
}

// Offline messages and archives of switched-off modules still expire with
// the configured retention, through the server's janitor; newer ones stay,
// and the log has counts only.
func TestHousekeepingExpiresSwitchedOff(t *testing.T) {
	h, store, logs := housekeepingFixture(t, "\n[modules]\noffline = false\narchive = false\noffline_retention = \"10d\"\narchive_retention = \"20d\"\n")
	ctx := t.Context()
	now := time.Now()
	const u = "alice@localhost"
	for _, age := range []int{25, 15, 5} { // days, oldest first as stores expect
		at := now.Add(-time.Duration(age) * 24 * time.Hour)
		if err := store.PushOffline(ctx, u, storage.OfflineMessage{Stored: at, Data: []byte("<message/>")}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := store.AppendArchive(ctx, u, at, "bob@localhost", []byte("<message/>")); err != nil {
			t.Fatal(err)
		}
	}
	rep := h.srv.RunJanitor(ctx, now)
	if rep.Err != nil || rep.Removed["offline-leftovers"] != 2 || rep.Removed["archive-leftovers"] != 1 {
		t.Errorf("janitor: %+v", rep)
	}
	if n, _ := store.CountOffline(ctx, u); n != 1 {
		t.Errorf("offline messages left: %d, want 1 (the one of 5 days; retention 10d)", n)
	}
	if st, _ := store.ArchiveStats(ctx, u); st.Count != 2 {
		t.Errorf("archived messages left: %d, want 2 (of 5 and 15 days; retention 20d)", st.Count)
	}
	out := logs.String()
	if !strings.Contains(out, "offline-leftovers") || !strings.Contains(out, "archive-leftovers") || strings.Contains(out, "alice") || strings.Contains(out, "bob") {
		t.Errorf("the janitor did not log its counts, or logged more:\n%s", out)
	}
}

// createAged creates an account as if made created days ago and last
// logged in to lastLogin days ago (-1: never).
func createAged(t *testing.T, store kiezStore, user string, created, lastLogin int) {
	t.Helper()
	day := func(n int) time.Time { return storage.Day(time.Now().Add(-time.Duration(n) * 24 * time.Hour)) }
	a := storage.Account{JID: user, Created: day(created), Keys: map[storage.Hash]storage.SCRAMKeys{
		storage.SHA256: {Salt: []byte("salt"), Iterations: 4096, StoredKey: make([]byte, 32), ServerKey: make([]byte, 32)},
	}}
	if lastLogin >= 0 {
		a.LastLogin = day(lastLogin)
	}
	if err := store.CreateAccount(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(t.Context(), user, "vcard", []byte("<vCard/>")); err != nil {
		t.Fatal(err)
	}
}

// With accounts.remove_unused, accounts unused for longer than
// remove_unused_after are deleted with their data; without it, none is.
func TestHousekeepingRemovesUnused(t *testing.T) {
	accounts := func(t *testing.T, store kiezStore) {
		createAged(t, store, "old@localhost", 400, 100)     // last login 100 days ago
		createAged(t, store, "never@localhost", 100, -1)    // created 100 days ago, never used
		createAged(t, store, "recent@localhost", 400, 10)   // logged in 10 days ago
		createAged(t, store, "newcomer@localhost", 10, -1)  // created 10 days ago
		createAged(t, store, "boundary@localhost", 400, 60) // exactly the limit: kept
	}
	list := func(t *testing.T, h *housekeeper) string {
		users, err := h.srv.Users(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(users, " ")
	}
	t.Run("off by default", func(t *testing.T) {
		h, store, _ := housekeepingFixture(t, "")
		accounts(t, store)
		h.once(t.Context(), time.Now())
		if got := list(t, h); strings.Count(got, "@") != 5 {
			t.Errorf("accounts after housekeeping without remove_unused: %s", got)
		}
	})
	t.Run("on", func(t *testing.T) {
		h, store, logs := housekeepingFixture(t, "\n[accounts]\nremove_unused = true\nremove_unused_after = \"60d\"\n")
		accounts(t, store)
		h.once(t.Context(), time.Now())
		if got, want := list(t, h), "boundary@localhost newcomer@localhost recent@localhost"; got != want {
			t.Errorf("accounts left: %s, want %s", got, want)
		}
		for _, u := range []string{"old@localhost", "never@localhost"} {
			if keys, _ := store.Keys(t.Context(), u); len(keys) > 0 {
				t.Errorf("%s was removed but its data is left: %v", u, keys)
			}
		}
		if !strings.Contains(logs.String(), "removed accounts unused for 60d") || !strings.Contains(logs.String(), "count=2") {
			t.Errorf("log: %s", logs)
		}
	})
}

// kiezd users shows each account's creation and last-login day, and a
// login through kiezd records the day.
func TestUsersShowsLastLogin(t *testing.T) {
	file, _ := testConfig(t, "")
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	day := time.Now().UTC().Format(time.DateOnly)
	d := startServe(t, nil, "-config", file)
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	logout(sess)
	d.stop(t)
	_, stdout, _ := kiezd(t, "", "-config", file, "users")
	if now := time.Now().UTC().Format(time.DateOnly); now != day {
		t.Skip("the day changed during the test")
	}
	if want := "alice@localhost  created " + day + "  last login " + day + "\n"; stdout != want {
		t.Errorf("users: %q, want %q", stdout, want)
	}
}

// Bans and invitations expire through the server's janitor, as service
// data; the log has the count and neither the address nor the token.
func TestJanitorExpiresBansAndInvites(t *testing.T) {
	file, _ := testConfig(t, "\n[registration]\npolicy = \"invite\"\n")
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logs := new(syncBuffer)
	target, err := newServer(t.Context(), cfg, store, newLogger(cfg.Log, logs), nil, func(c *server.Config) { c.Retention.Interval = -1 })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.srv.Close() })
	ctx := t.Context()
	if err := target.filter.Ban(ctx, netip.MustParsePrefix("198.51.100.7/32"), time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	if target.invites == nil {
		t.Fatal("no invite module")
	}
	inv, err := target.invites.Create(ctx, invite.CreateOptions{Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep := target.srv.RunJanitor(ctx, time.Now()); rep.Removed[server.KindServiceData] != 0 {
		t.Fatalf("janitor before the expiry: %+v", rep)
	}
	rep := target.srv.RunJanitor(ctx, time.Now().Add(2*time.Hour))
	if rep.Err != nil || rep.Removed[server.KindServiceData] != 2 {
		t.Fatalf("janitor after the expiry: %+v; want the ban and the invitation", rep)
	}
	out := logs.String()
	if !strings.Contains(out, "servicedata") || strings.Contains(out, "198.51.100") || strings.Contains(out, inv.Token) {
		t.Errorf("log:\n%s", out)
	}
}
