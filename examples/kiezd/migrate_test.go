package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/bbolt"
	"github.com/kiez-im/kiez/storage/postgres"
)

// TestMigrateStorage: data made by real clients through a kiezd on bbolt
// (roster, vCard, private XML, PEP, blocking, push, both archives, an
// upload, two rooms with affiliations, a room archive, and a message
// waiting offline) is copied by migrate-storage into PostgreSQL: every
// kind compares equal through the storage interfaces, archive IDs
// included; a kiezd on PostgreSQL then lets the users log in with their
// old passwords, delivers the offline message and answers MAM with the
// old stanza-ids. migrate-storage refuses while kiezd runs, and into a
// database that is not empty.
func TestMigrateStorage(t *testing.T) {
	pinBackend(t, backendBbolt) // the source is the bbolt file
	file, dir := testConfig(t, "")
	db := filepath.Join(dir, "data", "kiez.db")
	for _, u := range []string{auditUser, auditContact} {
		if code, _, stderr := kiezd(t, auditPassword+"\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	auditSession(t, d)
	// A message that waits offline for the contact.
	sess, err := login(t, d.bound.C2S[0], false, auditUser, auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	a := servertest.NewClient(t, sess)
	m := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: jid.MustParse(auditContact), ID: "waiting"}
	m.AppendChild(stanza.TextElem(xml.Name{Space: stanza.NSClient, Local: "body"}, "MigrateWaitingMarker"))
	a.Send(m)
	a.Sync()
	logout(sess)

	target := newPostgresSchema(t)
	if code, _, stderr := kiezd(t, "", "-config", file, "migrate-storage", "--to", target); code != 1 || !strings.Contains(stderr, "kiezd is running") {
		t.Errorf("migrate-storage while serving: exit %d, %q", code, stderr)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}

	code, stdout, stderr := kiezd(t, "", "-config", file, "migrate-storage", "--to", target)
	if code != 0 {
		t.Fatalf("migrate-storage: exit %d, %s", code, stderr)
	}
	t.Logf("migrate-storage:\n%s", stdout)
	for _, want := range []string{"       2 accounts", "       1 offline messages", "       2 rooms", " archived messages", " PEP items", "       1 uploads (records)", " secrets"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the output lacks %q:\n%s", want, stdout)
		}
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "migrate-storage", "--to", target); code != 1 || !strings.Contains(stderr, "is not empty: ") {
		t.Errorf("migrate-storage into the filled database: exit %d, %q", code, stderr)
	}

	// Every kind, compared through the interfaces.
	from, err := bbolt.Open(db, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	to, err := postgres.Open(t.Context(), target, postgres.Options{})
	if err != nil {
		from.Close()
		t.Fatal(err)
	}
	namespaces, err := from.ServiceNamespaces(t.Context())
	if err != nil || len(namespaces) == 0 {
		t.Errorf("service namespaces: %q, %v", namespaces, err)
	}
	got, want := dumpStore(t, to, namespaces), dumpStore(t, from, namespaces)
	secrets, err := from.Secrets(t.Context())
	if err != nil || len(secrets) < 2 {
		t.Errorf("secrets: %d, %v", len(secrets), err)
	}
	for name, v := range secrets {
		if got, err := to.Secret(t.Context(), name, len(v)); err != nil || !bytes.Equal(got, v) {
			t.Errorf("secret %s differs after the migration (%v)", name, err)
		}
	}
	from.Close()
	to.Close()
	for kind, w := range want {
		if w == "" && kind != "archive "+auditOwnedRoom { // that room does not archive
			t.Errorf("the bbolt database has no %s; the test tests nothing there", kind)
		}
		if got[kind] != w {
			t.Errorf("%s differs after the migration:\n got %s\nwant %s", kind, got[kind], w)
		}
	}

	// kiezd on PostgreSQL: the old passwords, the waiting message, the
	// archive with its old ids.
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text = append(text, "\n[storage]\nbackend = \"postgres\"\ndsn = \""+target+"\"\n"...)
	if err := os.WriteFile(file, text, 0o600); err != nil {
		t.Fatal(err)
	}
	d = startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve on PostgreSQL exited:\n%s", d.stderr)
	}
	cs, err := login(t, d.bound.C2S[0], false, auditContact, auditPassword)
	if err != nil {
		t.Fatalf("login with the old password on PostgreSQL: %v", err)
	}
	c := servertest.NewClient(t, cs)
	c.Send(&stanza.Stanza{Kind: stanza.Presence})
	waiting := c.Expect(servertest.Body("MigrateWaitingMarker"))
	sid, _, ok := waiting.Child(xml.Name{Space: "urn:xmpp:sid:0", Local: "stanza-id"})
	if !ok || !strings.Contains(want["archive "+auditContact], "id="+attrValue(sid, "id")+" ") {
		t.Errorf("the offline message's stanza-id %q is not an id of the migrated archive", attrValue(sid, "id"))
	}
	logout(cs)
	as, err := login(t, d.bound.C2S[0], false, auditUser, auditPassword)
	if err != nil {
		t.Fatalf("login with the old password on PostgreSQL: %v", err)
	}
	a = servertest.NewClient(t, as)
	q := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "vc"}
	q.AppendChild(stanza.Elem(xml.Name{Space: "vcard-temp", Local: "vCard"}, nil))
	a.Send(q)
	if res := a.Expect(servertest.ByID("vc")); !strings.Contains(stanzaText(res), "AuditVcardMarker") {
		t.Errorf("the vCard after the migration: %s", stanzaText(res))
	}
	q = &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "ros"}
	q.AppendChild(stanza.Elem(xml.Name{Space: "jabber:iq:roster", Local: "query"}, nil))
	a.Send(q)
	if res := a.Expect(servertest.ByID("ros")); !strings.Contains(stanzaText(res), "auditrosterpal@example.net") {
		t.Errorf("the roster after the migration: %s", stanzaText(res))
	}
	logout(as)
}

// dumpStore renders every kind a kiezd store holds as text, by kind (and
// owner), for comparing two stores.
func dumpStore(t *testing.T, s kiezStore, namespaces []string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := make(map[string]string)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	users, err := s.Accounts(ctx, "")
	check(err)
	rooms, err := s.Rooms(ctx, "")
	check(err)
	var b strings.Builder
	for _, u := range users {
		a, err := s.Account(ctx, u)
		check(err)
		fmt.Fprintf(&b, "%s %v %v %v %v; ", a.JID, reflect.ValueOf(a.Keys).Len(), a.Keys[storage.SHA256], a.Created, a.LastLogin)
	}
	out["accounts"] = b.String()
	for _, u := range append(append([]string{}, users...), rooms...) {
		b.Reset()
		for after := uint64(0); ; {
			page, err := s.QueryArchive(ctx, u, storage.ArchiveQuery{After: after, Max: 100})
			check(err)
			for _, m := range page.Messages {
				fmt.Fprintf(&b, "id=%d %s %x; ", m.ID, m.With, m.Data)
				after = m.ID
			}
			if page.Complete || len(page.Messages) == 0 {
				break
			}
		}
		out["archive "+u] = b.String()
	}
	for _, u := range users {
		b.Reset()
		items, _, err := s.Roster(ctx, u)
		check(err)
		fmt.Fprintf(&b, "roster %v; ", items)
		keys, err := s.Keys(ctx, u)
		check(err)
		for _, k := range keys {
			v, err := s.Get(ctx, u, k)
			check(err)
			fmt.Fprintf(&b, "kv %s=%x; ", k, v)
		}
		msgs, err := s.OfflineMessages(ctx, u)
		check(err)
		for _, m := range msgs {
			fmt.Fprintf(&b, "offline %v %x; ", m.Stored, m.Data)
		}
		nodes, err := s.PEPNodes(ctx, u)
		check(err)
		for _, n := range nodes {
			items, err := s.PEPItems(ctx, u, n.Name, nil, 0)
			check(err)
			fmt.Fprintf(&b, "pep %s %x %d %d %v; ", n.Name, n.Config, n.Items, n.Bytes, items)
		}
		ups, err := s.UserUploads(ctx, u)
		check(err)
		fmt.Fprintf(&b, "uploads %v", ups)
		out["user "+u] = b.String()
	}
	b.Reset()
	for _, r := range rooms {
		room, err := s.Room(ctx, r)
		check(err)
		affs, err := s.Affiliations(ctx, r)
		check(err)
		fmt.Fprintf(&b, "%s %x %v %v %v; ", room.JID, room.Config, room.Created, room.LastActive, affs)
	}
	out["rooms"] = b.String()
	b.Reset()
	for _, ns := range namespaces {
		keys, err := s.ServiceKeys(ctx, ns, storage.ServiceKeysQuery{Max: 1000})
		check(err)
		for _, k := range keys {
			v, exp, err := s.ServiceValue(ctx, ns, k)
			check(err)
			fmt.Fprintf(&b, "%s %q=%x %v; ", ns, k, v, exp)
		}
	}
	out["service"] = b.String()
	return out
}

// migrate-storage refuses what it cannot do, saying why, and never
// shows a password.
func TestMigrateStorageBadInput(t *testing.T) {
	pinBackend(t, backendBbolt)
	file, dir := testConfig(t, "")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"migrate-storage"}, 2, "--to is required"},
		{[]string{"migrate-storage", "--to", "postgres://kiez:pw-s3cr3t@localhost/kiez"}, 2, "--to holds a password"},
		{[]string{"migrate-storage", "--to", "host=/nonexistent dbname=kiez", "--password-file", "a", "--password-env", "B"}, 2, "one of --password-file and --password-env"},
		{[]string{"migrate-storage", "--to", "host=/nonexistent dbname=kiez"}, 1, "cannot open the PostgreSQL database"},
		{[]string{"migrate-storage", "--to", "host=/nonexistent dbname=kiez", "--password-env", "KIEZ_TEST_UNSET_PW"}, 1, "KIEZ_TEST_UNSET_PW is not set"},
	} {
		code, _, stderr := kiezd(t, "", append([]string{"-config", file}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || strings.Contains(stderr, "s3cr3t") {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
	if err := os.Remove(filepath.Join(dir, "data", "kiez.db")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "migrate-storage", "--to", "host=/nonexistent dbname=kiez"); code != 1 || !strings.Contains(stderr, "there is no database") {
		t.Errorf("without a bbolt database: exit %d, %q", code, stderr)
	}
}

// failingSource is a migration source whose Rooms, read after the
// accounts were copied, interrupts the copy as SIGINT would.
type failingSource struct {
	migrationSource
	cancel context.CancelFunc
}

func (f failingSource) Rooms(ctx context.Context, domain string) ([]string, error) {
	f.cancel()
	return nil, ctx.Err()
}

// A copy interrupted midway empties the target again, keeping its
// schema: a database serve takes as new, and migrate-storage as empty.
func TestMigrateStorageInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src, err := bbolt.Open(filepath.Join(t.TempDir(), "kiez.db"), bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Secret(ctx, "s", 32); err != nil {
		t.Fatal(err)
	}
	if err := src.CreateAccount(ctx, storage.Account{JID: auditUser, Keys: map[storage.Hash]storage.SCRAMKeys{
		storage.SHA256: {Salt: []byte("s"), Iterations: 4096, StoredKey: []byte("k"), ServerKey: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}
	dsn := newPostgresSchema(t)
	to, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	_, err = copyAll(ctx, failingSource{src, cancel}, to)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "emptied again") {
		t.Fatalf("copy: %v; want interrupted, emptied", err)
	}
	counts, err := to.RowCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range counts {
		if n != 0 {
			t.Errorf("table %s holds %d rows after the interrupted copy", table, n)
		}
	}
	if _, ok := counts["accounts"]; !ok {
		t.Errorf("tables after the copy: %v; want them kept", counts)
	}
	again, err := postgres.Open(t.Context(), dsn, postgres.Options{})
	if err != nil {
		t.Fatalf("open after the interrupted copy: %v", err)
	}
	again.Close()
}
