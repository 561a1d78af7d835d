package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

const nsNotes = "urn:example:notes"

// notes keeps text notes per user: a data owner that exports and imports.
type notes struct {
	mu   sync.Mutex
	m    map[string][]string
	fail string // a note that makes the import fail
}

func newNotes() *notes { return &notes{m: map[string][]string{}} }

func (n *notes) Name() string { return "notes" }

func (n *notes) add(user jid.JID, text string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.m[user.Bare().String()] = append(n.m[user.Bare().String()], text)
}

func (n *notes) get(user jid.JID) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[user.Bare().String()]
}

func (n *notes) DeleteUser(ctx context.Context, user jid.JID) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.m, user.Bare().String())
	return nil
}

func (n *notes) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	for _, text := range n.get(user) {
		if _, err := xmlstream.Copy(w, stanza.TextElem(xml.Name{Space: nsNotes, Local: "note"}, text)); err != nil {
			return err
		}
	}
	return nil
}

func (n *notes) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name != (xml.Name{Space: nsNotes, Local: "note"}) {
		return false, nil
	}
	text, err := el.Text()
	if err != nil {
		return true, err
	}
	if text == n.fail {
		return true, errors.New("notes: refusing " + text)
	}
	n.add(user, text)
	return true, nil
}

var _ server.UserDataImporter = (*notes)(nil)

func export(t *testing.T, srv *servertest.Server, opts server.ExportOptions, users ...jid.JID) string {
	t.Helper()
	var buf bytes.Buffer
	if err := srv.ExportUsers(t.Context(), xml.NewEncoder(&buf), opts, users...); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestImportRoundTrip: an exported account, deleted, comes back from the
// export with its data, and logs in with its old password.
func TestImportRoundTrip(t *testing.T) {
	n := newNotes()
	srv := servertest.Start(t, server.Config{Modules: []server.Module{n}})
	alice := srv.AddUser(t, "alice", "old secret")
	bob := srv.AddUser(t, "bob", "bob's")
	n.add(alice, "first")
	n.add(alice, "second & last")
	doc := export(t, srv, server.ExportOptions{}, alice, bob)
	for _, want := range []string{`<scram-credentials xmlns="urn:xmpp:pie:0#scram" mechanism="SCRAM-SHA-1">`, `mechanism="SCRAM-SHA-256"`, `<iter-count xmlns="urn:xmpp:pie:0#scram">4096</iter-count>`, `<user name="bob">`} {
		if !strings.Contains(doc, want) {
			t.Fatalf("export lacks %s:\n%s", want, doc)
		}
	}
	for _, u := range []jid.JID{alice, bob} {
		if err := srv.DeleteUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	// Something a later version, or another server, may write.
	doc = strings.Replace(doc, `<user name="bob">`, `<user name="bob"><extra xmlns="urn:example:other">x</extra>`, 1)
	// Host names are compared as domains.
	doc = strings.Replace(doc, `<host jid="localhost">`, `<host jid="LocalHost">`, 1)
	report, err := srv.ImportUsers(t.Context(), strings.NewReader(doc), server.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Failed(); err != nil {
		t.Fatal(err)
	}
	if len(report.Users) != 2 || report.Users[0].JID != alice.String() || report.Users[0].Elements != 2 ||
		strings.Join(report.Users[0].Credentials, ",") != "SHA-1,SHA-256,SHA-512" {
		t.Fatalf("report: %+v", report.Users)
	}
	if got := report.Users[1].Unknown; got["{urn:example:other}extra"] != 1 {
		t.Fatalf("unknown elements of bob: %v", got)
	}
	if got := n.get(alice); strings.Join(got, "|") != "first|second & last" {
		t.Fatalf("notes: %q", got)
	}
	sess, err := srv.Login(t.Context(), alice, "old secret")
	if err != nil {
		t.Fatalf("login with the old password: %v", err)
	}
	sess.Close()
	if _, err := srv.Login(t.Context(), alice, "wrong"); err == nil {
		t.Fatal("login with a wrong password worked")
	}

	// Without credentials, the export has no keys.
	if doc := export(t, srv, server.ExportOptions{OmitCredentials: true}, alice); strings.Contains(doc, "scram") {
		t.Fatalf("export without credentials: %s", doc)
	}
}

// TestImportErrors: what the import refuses, and what stays afterwards.
func TestImportErrors(t *testing.T) {
	n := newNotes()
	n.fail = "poison"
	srv := servertest.Start(t, server.Config{Modules: []server.Module{n}})
	alice := srv.AddUser(t, "alice", "pw")
	n.add(alice, "mine")
	doc := export(t, srv, server.ExportOptions{}, alice)
	carolDoc := strings.ReplaceAll(doc, `name="alice"`, `name="carol"`)
	carol := jid.MustParse("carol@localhost")

	for _, tc := range []struct {
		name, doc string
		opts      server.ImportOptions
		fatal     string // in the error ImportUsers returns
		user      string // in the report's Failed
	}{
		{name: "malformed", doc: `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol'>`, fatal: "malformed XML: XML syntax error on line 1: unexpected EOF"},
		{name: "broken tag", doc: `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'></user></host></server-data>`, fatal: "malformed XML"},
		{name: "not xml", doc: "\x00\x01", fatal: "malformed XML"},
		{name: "empty", doc: "", fatal: "ends before"},
		{name: "root", doc: `<data xmlns='urn:example'/>`, fatal: "not XEP-0227"},
		{name: "unknown host", doc: `<server-data xmlns='urn:xmpp:pie:0'><host jid='elsewhere.example'/></server-data>`, fatal: `host "elsewhere.example" is not served here`},
		{name: "xinclude", doc: `<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='a.xml'/></server-data>`, fatal: "XInclude"},
		{name: "exists", doc: doc, user: "the account exists"},
		{name: "no credentials", doc: `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol'/></host></server-data>`, user: "no credentials"},
		{name: "bad scram", doc: strings.Replace(carolDoc, "<iter-count", "<iter-count>x</iter-count><iter-count", 1), user: "bad iter-count"},
		{name: "module fails", doc: strings.Replace(carolDoc, ">mine<", ">poison<", 1), user: "refusing poison"},
		{name: "too large", doc: strings.Replace(carolDoc, ">mine<", ">"+strings.Repeat("x", 64<<10)+"<", 1), opts: server.ImportOptions{MaxElementBytes: 16 << 10}, fatal: "larger than 16384 bytes"},
		{name: "bad name", doc: `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='a@b'/></host></server-data>`, user: "not a valid address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			report, err := srv.ImportUsers(t.Context(), strings.NewReader(tc.doc), tc.opts)
			if tc.fatal != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fatal) {
					t.Fatalf("error %v, want one with %q", err, tc.fatal)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tc.user != "" {
				if err := report.Failed(); err == nil || !strings.Contains(err.Error(), tc.user) {
					t.Fatalf("user error %v, want one with %q", err, tc.user)
				}
			}
			// No half account, and alice untouched.
			if users, _ := srv.Users(t.Context(), "localhost"); strings.Join(users, ",") != "alice@localhost" {
				t.Fatalf("accounts after a failed import: %v", users)
			}
			if false {
				t.Fatal("carol exists after a failed import")
			}
			if got := n.get(carol); len(got) != 0 {
				t.Fatalf("carol's notes stayed: %q", got)
			}
			if got := n.get(alice); strings.Join(got, "|") != "mine" {
				t.Fatalf("alice's notes: %q", got)
			}
		})
	}

	// Merging into an account that exists keeps its password.
	merge := strings.Replace(doc, ">mine<", ">merged<", 1)
	report, err := srv.ImportUsers(t.Context(), strings.NewReader(merge), server.ImportOptions{Merge: true})
	if err != nil || report.Failed() != nil || !report.Users[0].Merged {
		t.Fatalf("merge: %v, %+v", err, report)
	}
	if got := n.get(alice); strings.Join(got, "|") != "mine|merged" {
		t.Fatalf("alice's notes after the merge: %q", got)
	}

	// An account without credentials, when asked for, cannot log in
	// until it gets a password.
	report, err = srv.ImportUsers(t.Context(), strings.NewReader(`<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol'/></host></server-data>`), server.ImportOptions{NoCredentials: true})
	if err != nil || report.Failed() != nil || len(report.Users[0].Credentials) != 0 {
		t.Fatalf("no credentials: %v, %+v", err, report)
	}
	if _, err := srv.Login(t.Context(), carol, ""); err == nil {
		t.Fatal("an account without credentials logged in")
	}
	if err := srv.SetPassword(t.Context(), carol, "new"); err != nil {
		t.Fatal(err)
	}
	sess, err := srv.Login(t.Context(), carol, "new")
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()

	// A plain password (XEP-0227's old form) gives the account keys.
	report, err = srv.ImportUsers(t.Context(), strings.NewReader(`<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='dave' password='s3cret'/></host></server-data>`), server.ImportOptions{})
	if err != nil || report.Failed() != nil {
		t.Fatalf("password: %v, %+v", err, report)
	}
	sess, err = srv.Login(t.Context(), jid.MustParse("dave@localhost"), "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()
}

// FuzzImportUsers: no input makes the import panic.
func FuzzImportUsers(f *testing.F) {
	f.Add(`<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol' password='x'><note xmlns='urn:example:notes'>a</note></user></host></server-data>`)
	f.Add(`<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol'><scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><iter-count>1</iter-count></scram-credentials></user></host></server-data>`)
	srv := servertest.Start(f, server.Config{Modules: []server.Module{newNotes()}})
	f.Fuzz(func(t *testing.T, doc string) {
		report, _ := srv.ImportUsers(context.Background(), strings.NewReader(doc), server.ImportOptions{MaxElementBytes: 4096})
		for _, u := range report.Users {
			if j, err := jid.Parse(u.JID); err == nil && u.Err == nil {
				srv.DeleteUser(context.Background(), j)
			}
		}
	})
}

// ExampleServer_ImportUsers moves an account through an export: the
// account comes back with its data and its password.
func ExampleServer_ImportUsers() {
	ctx := context.Background()
	cert, _, _, err := server.SelfSigned("localhost")
	if err != nil {
		log.Fatal(err)
	}
	n := newNotes()
	srv, err := server.New(ctx, server.Config{
		Domains:  []string{"localhost"},
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}},
		Accounts: memory.New(),
		Modules:  []server.Module{n},
	})
	if err != nil {
		log.Fatal(err)
	}
	alice := jid.MustParse("alice@localhost")
	if err := srv.CreateUser(ctx, alice, "correct horse battery"); err != nil {
		log.Fatal(err)
	}
	n.add(alice, "buy milk")

	var doc bytes.Buffer
	if err := srv.ExportUser(ctx, alice, xml.NewEncoder(&doc)); err != nil {
		log.Fatal(err)
	}
	if err := srv.DeleteUser(ctx, alice); err != nil {
		log.Fatal(err)
	}
	report, err := srv.ImportUsers(ctx, &doc, server.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := report.Failed(); err != nil {
		log.Fatal(err)
	}
	u := report.Users[0]
	fmt.Println(u.JID, u.Credentials, u.Elements, n.get(alice))
	// Output: alice@localhost [SHA-1 SHA-256 SHA-512] 1 [buy milk]
}

// ExampleServer_ExportUsers writes two accounts of one host as a XEP-0227
// document, without their credentials, as for users taking their data
// elsewhere.
func ExampleServer_ExportUsers() {
	ctx := context.Background()
	cert, _, _, err := server.SelfSigned("localhost")
	if err != nil {
		log.Fatal(err)
	}
	n := newNotes()
	srv, err := server.New(ctx, server.Config{
		Domains:  []string{"localhost"},
		TLS:      &tls.Config{Certificates: []tls.Certificate{cert}},
		Accounts: memory.New(),
		Modules:  []server.Module{n},
	})
	if err != nil {
		log.Fatal(err)
	}
	alice, bob := jid.MustParse("alice@localhost"), jid.MustParse("bob@localhost")
	for _, u := range []jid.JID{alice, bob} {
		if err := srv.CreateUser(ctx, u, "correct horse battery"); err != nil {
			log.Fatal(err)
		}
	}
	n.add(alice, "buy milk")
	var doc strings.Builder
	if err := srv.ExportUsers(ctx, xml.NewEncoder(&doc), server.ExportOptions{OmitCredentials: true}, alice, bob); err != nil {
		log.Fatal(err)
	}
	fmt.Println(doc.String())
	// Output: <server-data xmlns="urn:xmpp:pie:0"><host jid="localhost"><user name="alice"><note xmlns="urn:example:notes">buy milk</note></user><user name="bob"></user></host></server-data>
}
