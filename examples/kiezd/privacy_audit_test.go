package main

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// Issue 13: a privacy audit. An account with data in every module (roster
// item, vCard, private XML, a PEP item, a block list entry, carbons on,
// messages offline and online so offline storage and both archives hold
// them, an upload PUT through the HTTPS listener) is deleted, with kiezd
// stopped (deluser on the database) and while kiezd serves (deluser
// through the control socket). Then nothing of it may be left: not in the
// database's live buckets, keys and values (nor the archive log's
// segments), not in a compacted copy of the file, not in any file under
// the data directory, and not in the debug log.
//
// The client address: every client connects from 127.0.0.1, which must
// never be stored. kiezd logs its own listeners' addresses (127.0.0.1:port)
// at each start, so the log check replaces exactly those strings first;
// any 127.0.0.1 left is a client's.
//
// What stays, by design: the contact keeps its own copy of the
// conversation (its archive names auditee@localhost and holds the
// messages) until the contact's account goes too; the test checks that
// every remaining trace lies in the contact's archive (its bucket, or a
// chunk its "msgs" index names) and that deleting the contact removes it.
//
// What stays in free pages: bbolt does not overwrite freed pages, so the
// raw kiez.db still holds deleted bytes (in runs so far the vCard and
// private XML markers, at times the upload's file name, after the
// account's deletion; the messages and both JIDs too after the contact's)
// until later writes reuse those pages. That is documented (README:
// `kiezd compact` removes them), so the test only logs it, and checks
// that a compacted copy (bolt.Compact, what `kiezd compact` runs through
// storage/bbolt's Compact) holds none.
//
// Group chat (issue 14): the account owns a persistent room (the contact
// is an admin there) and is a member of the contact's members-only room
// with a registered nick, and talks there. The MUC buckets (rooms,
// affiliations per room, the by-user index) are walked before and after:
// afterwards no room holds an entry of the account, the index has none,
// its room went to the contact (orphans = "admin") without a trace of it,
// and once the contact goes too no room is left (each had one owner and
// no admin left). What stays by design: what the account said in a room
// stays in that room's history and archive (the contact's room archives),
// under its nick and occupant id (an HMAC of room and address, which
// names no one), as its messages stay in a contact's archive: the test
// checks that its nick and message remain only in that room's archive,
// that no real address of the account is left in any room or room
// archive, and that the archive goes with the room.
//
// Found by this test: the upload module's daily quota counter (service
// data namespace "upload-day:<date>", keyed by the bare JID, with its
// index entry in "service-expiry") survives deluser until it expires, 25
// hours after the start of the day (UTC) of the upload, and the hourly
// housekeeping removes it.
func TestPrivacyAudit(t *testing.T) {
	pinBackend(t, backendBbolt) // the bbolt file itself; TestPrivacyAuditPostgres for PostgreSQL
	eachDeluser(t, privacyAudit)
}

// eachDeluser runs f as the subtests "deluser stopped" (deluser on the
// database) and "deluser via control socket" (viaSocket, through a
// running kiezd).
func eachDeluser(t *testing.T, f func(t *testing.T, viaSocket bool)) {
	for _, viaSocket := range []bool{false, true} {
		name := "deluser stopped"
		if viaSocket {
			name = "deluser via control socket"
		}
		t.Run(name, func(t *testing.T) { f(t, viaSocket) })
	}
}

const (
	auditUser     = "auditee@localhost"
	auditContact  = "contact@localhost"
	auditClient   = "127.0.0.1" // every client of the test connects from here
	auditPassword = "Audit-pw-7Qx"
)

// auditOwn are markers of data only the audited account owns; auditShared
// also lie in the contact's copy of the conversation.
var (
	auditOwn = []string{
		"auditrosterpal@example.net", "AuditRosterName",
		"AuditVcardMarker", "AuditPrivateMarker",
		"urn:example:auditpep", "AuditPepMarker",
		"auditblocked@example.net",
		"auditupload-marker.bin", "AuditFileMarker",
		"AuditPushNode", "AuditPushSecret",
	}
	auditShared = []string{"auditee", auditUser, "AuditOfflineMarker", "AuditOnlineMarker", "AuditReplyMarker"}
)

// The group chat rooms of the audit: the audited account owns the first
// (the contact is an admin there, and inherits it), and is a member with
// a registered nick of the second, the contact's, which archives.
const (
	auditOwnedRoom   = "handedroom@" + mucService
	auditContactRoom = "contactroom@" + mucService
)

// auditRoomKept are the audited account's registered nick (also the nick
// it talks under) and what it said in the contact's room: after its
// deletion they may remain only in that room's archive.
var auditRoomKept = []string{"AuditNickMember", "AuditRoomMessage"}

// inRoomArchive reports whether a hit of auditLive lies in the archive
// of room (its bucket, or a chunk its "msgs" index names).
func inRoomArchive(hit, room string) bool {
	return strings.HasPrefix(hit, "archive/"+room+"/") || strings.HasPrefix(hit, "archive-chunks[owner "+room+"]")
}

func privacyAudit(t *testing.T, viaSocket bool) {
	file, dir := testConfig(t, "[log]\nlevel = \"debug\"\n")
	data := filepath.Join(dir, "data")
	db := filepath.Join(data, "kiez.db")
	logs := new(syncBuffer)
	for _, u := range []string{auditUser, auditContact} {
		code, _, stderr := kiezd(t, auditPassword+"\n", "-config", file, "adduser", u)
		if code != 0 {
			t.Fatal(stderr)
		}
		logs.Write([]byte(stderr))
	}
	d := startServe(t, logs, "-config", file)
	if d.ended {
		t.Fatalf("serve exited:\n%s", logs)
	}
	listeners := [][]net.Addr{d.bound.C2S, d.bound.DirectTLS, d.bound.HTTPS, d.bound.HTTP, d.bound.S2S}
	fileBytes := auditSession(t, d)
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, logs)
	}

	// Everything was stored, or the test tests nothing.
	live := auditLive(t, db)
	for _, s := range slices.Concat(auditOwn, auditShared, auditRoomKept) {
		if s == "AuditFileMarker" {
			continue // the file is on disk, not in the database
		}
		if len(auditFind(live, s)) == 0 {
			t.Fatalf("%q was never stored; the test does not test anything", s)
		}
	}
	if auditFiles(t, data, fileBytes) == 0 {
		t.Fatal("the uploaded file is nowhere under the data directory")
	}
	mucBefore := auditMUC(t, db)
	if e := mucBefore.affs[auditOwnedRoom][auditUser]; len(e) < 2 || e[1] != 1 {
		t.Fatalf("the audited account does not own %s: %q", auditOwnedRoom, e)
	}
	if e := mucBefore.affs[auditContactRoom][auditUser]; len(e) < 2 || e[1] != 3 || !bytes.Contains(e, []byte("AuditNickMember")) {
		t.Fatalf("the audited account is no member of %s with its nick: %q", auditContactRoom, e)
	}
	if got := mucBefore.users[auditUser]; !slices.Equal(got, []string{auditContactRoom, auditOwnedRoom}) {
		t.Fatalf("the by-user index of the audited account: %q", got)
	}
	// The client's address is never stored, not even before deletion.
	if hits := auditFind(live, auditClient); len(hits) > 0 {
		t.Errorf("the database holds the client address %s: %q", auditClient, hits)
	}
	if raw := must(os.ReadFile(db)); bytes.Contains(raw, []byte(auditClient)) {
		t.Errorf("the database file holds the client address %s", auditClient)
	}

	if viaSocket {
		d2 := startServe(t, logs, "-config", file)
		if d2.ended {
			t.Fatalf("serve exited:\n%s", logs)
		}
		listeners = append(listeners, d2.bound.C2S, d2.bound.DirectTLS, d2.bound.HTTPS, d2.bound.HTTP, d2.bound.S2S)
		code, stdout, stderr := kiezd(t, "", "-config", file, "deluser", auditUser)
		logs.Write([]byte(stderr))
		if code != 0 || stdout != "deleted "+auditUser+" and all its data\n" {
			t.Fatalf("deluser while serving: exit %d, %q, %q", code, stdout, stderr)
		}
		if _, err := login(t, d2.bound.C2S[0], false, auditUser, auditPassword); err == nil {
			t.Error("the deleted account still logs in")
		}
		if code := d2.stop(t); code != 0 {
			t.Fatalf("serve exited with %d:\n%s", code, logs)
		}
	} else {
		code, stdout, stderr := kiezd(t, "", "-config", file, "deluser", auditUser)
		logs.Write([]byte(stderr))
		if code != 0 || stdout != "deleted "+auditUser+" and all its data\n" {
			t.Fatalf("deluser: exit %d, %q, %q", code, stdout, stderr)
		}
	}

	// Live data: nothing of the account's own; the conversation only in
	// the contact's own data.
	live = auditLive(t, db)
	for _, s := range auditOwn {
		if hits := auditFind(live, s); len(hits) > 0 {
			t.Errorf("%q is still stored after deluser: %q", s, hits)
		}
	}
	for _, s := range auditShared {
		for _, h := range auditFind(live, s) {
			if !strings.HasPrefix(h, "archive/"+auditContact+"/") && !strings.HasPrefix(h, "archive-chunks[owner "+auditContact+"]") {
				t.Errorf("%q is still stored after deluser, outside the contact's archive: %q", s, h)
			}
		}
	}
	if n := auditFiles(t, data, fileBytes); n != 0 {
		t.Errorf("%d files under %s still hold the uploaded bytes", n, data)
	}
	for _, s := range auditRoomKept {
		for _, h := range auditFind(live, s) {
			if !inRoomArchive(h, auditContactRoom) {
				t.Errorf("%q is still stored after deluser, outside the room archive of %s: %q", s, auditContactRoom, h)
			}
		}
	}
	if len(auditFind(live, "AuditRoomMessage")) == 0 {
		t.Errorf("what the deleted account said in %s went from the room's archive, which keeps it by design", auditContactRoom)
	}
	mucAfter := auditMUC(t, db)
	for room, entries := range mucAfter.affs {
		for who, e := range entries {
			if strings.Contains(who, "auditee") || bytes.Contains(e, []byte("auditee")) || bytes.Contains(e, []byte("AuditNick")) {
				t.Errorf("room %s keeps an entry of the deleted account: %s = %q", room, who, e)
			}
		}
	}
	if got, ok := mucAfter.users[auditUser]; ok {
		t.Errorf("the by-user index still lists the deleted account in %q", got)
	}
	if !mucAfter.rooms[auditContactRoom] {
		t.Errorf("the contact's room %s went with the audited account", auditContactRoom)
	}
	if e := mucAfter.affs[auditOwnedRoom][auditContact]; !mucAfter.rooms[auditOwnedRoom] || len(e) < 2 || e[1] != 1 {
		t.Errorf("the audited account's room was not handed to its admin, the contact: room kept %v, entry %q", mucAfter.rooms[auditOwnedRoom], e)
	}
	if uploads := filepath.Join(data, "uploads"); countFilesDeep(t, uploads) != 0 {
		t.Errorf("files left under %s after deluser", uploads)
	}
	auditRaw(t, db, live, auditOwn)

	// The contact goes too: now nothing may be left at all.
	if code, _, stderr := kiezd(t, "", "-config", file, "deluser", auditContact); code != 0 {
		t.Fatal(stderr)
	}
	live = auditLive(t, db)
	for _, s := range slices.Concat(auditOwn, auditShared, auditRoomKept, []string{auditContact}) {
		if hits := auditFind(live, s); len(hits) > 0 {
			t.Errorf("%q is still stored after both accounts were deleted: %q", s, hits)
		}
	}
	auditRaw(t, db, live, slices.Concat(auditOwn, auditShared, auditRoomKept, []string{auditContact}))
	if m := auditMUC(t, db); len(m.rooms)+len(m.affs)+len(m.users) > 0 {
		t.Errorf("group chat data left after both owners were deleted: rooms %v, entries %v, index %v", m.rooms, m.affs, m.users)
	}

	// The log: listener addresses are logged at each start and replaced
	// here; any other loopback address would be a client's.
	out := logs.String()
	if !strings.Contains(out, "kiezd starting") || !strings.Contains(out, "level=DEBUG") && !strings.Contains(out, `"level":"DEBUG"`) {
		t.Fatalf("the debug log was not captured:\n%s", out)
	}
	scrubbed := out
	for _, a := range slices.Concat(listeners...) {
		scrubbed = strings.ReplaceAll(scrubbed, a.String(), "LISTENER")
	}
	for _, s := range slices.Concat(auditOwn, auditShared, auditRoomKept, []string{auditContact, auditClient, "::1", auditPassword}) {
		if strings.Contains(scrubbed, s) {
			t.Errorf("the log contains %q:\n%s", s, out)
		}
	}
	if bytes.Contains([]byte(out), fileBytes[len(fileBytes)-64:]) {
		t.Error("the log contains the uploaded file's bytes")
	}
}

// auditSession logs in the audited account and its contact and makes
// data in every module; it returns the uploaded file's bytes.
func auditSession(t *testing.T, d *daemon) []byte {
	t.Helper()
	sess, err := login(t, d.bound.C2S[0], false, auditUser+"/phone", auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(sess.Conn().LocalAddr().String()); host != auditClient {
		t.Fatalf("the client connects from %s, not %s", host, auditClient)
	}
	a := servertest.NewClient(t, sess)
	iq := func(id string, to string, children ...xml.TokenReader) {
		t.Helper()
		st := &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Set, ID: id}
		if to != "" {
			st.To = jid.MustParse(to)
		}
		for _, c := range children {
			st.AppendChild(c)
		}
		a.Send(st)
		if res := a.Expect(servertest.ByID(id)); res.Type != stanza.Result {
			t.Fatalf("iq %s: %s", id, res.Type)
		}
	}
	n := func(space, local string) xml.Name { return xml.Name{Space: space, Local: local} }
	const ps = "http://jabber.org/protocol/pubsub"
	iq("roster", "", stanza.Elem(n("jabber:iq:roster", "query"), nil,
		stanza.Elem(n("jabber:iq:roster", "item"), []xml.Attr{stanza.Attr("jid", "auditrosterpal@example.net"), stanza.Attr("name", "AuditRosterName")})))
	iq("vcard", "", stanza.Elem(n("vcard-temp", "vCard"), nil, stanza.TextElem(n("vcard-temp", "FN"), "AuditVcardMarker")))
	iq("private", "", stanza.Elem(n("jabber:iq:private", "query"), nil,
		stanza.TextElem(n("urn:example:auditnotes", "note"), "AuditPrivateMarker")))
	iq("pep", "", stanza.Elem(n(ps, "pubsub"), nil, stanza.Elem(n(ps, "publish"), []xml.Attr{stanza.Attr("node", "urn:example:auditpep")},
		stanza.Elem(n(ps, "item"), []xml.Attr{stanza.Attr("id", "current")}, stanza.TextElem(n("urn:example:auditpep", "x"), "AuditPepMarker")))))
	iq("block", "", stanza.Elem(n("urn:xmpp:blocking", "block"), nil,
		stanza.Elem(n("urn:xmpp:blocking", "item"), []xml.Attr{stanza.Attr("jid", "auditblocked@example.net")})))
	iq("carbons", "", stanza.Elem(n("urn:xmpp:carbons:2", "enable"), nil))
	// A push registration (XEP-0357), its app server the contact.
	iq("push", "", stanza.Elem(n("urn:xmpp:push:0", "enable"), []xml.Attr{stanza.Attr("jid", auditContact), stanza.Attr("node", "AuditPushNode")},
		stanza.Elem(n("jabber:x:data", "x"), []xml.Attr{stanza.Attr("type", "submit")},
			stanza.Elem(n("jabber:x:data", "field"), []xml.Attr{stanza.Attr("var", "FORM_TYPE")},
				stanza.TextElem(n("jabber:x:data", "value"), "http://jabber.org/protocol/pubsub#publish-options")),
			stanza.Elem(n("jabber:x:data", "field"), []xml.Attr{stanza.Attr("var", "secret")},
				stanza.TextElem(n("jabber:x:data", "value"), "AuditPushSecret")))))
	a.Send(&stanza.Stanza{Kind: stanza.Presence})
	// To the contact while it is offline: offline storage and both
	// archives.
	msg := func(from *servertest.Client, to, id, body string) {
		m := &stanza.Stanza{Kind: stanza.Message, Type: "chat", To: jid.MustParse(to), ID: id}
		m.AppendChild(stanza.TextElem(n(stanza.NSClient, "body"), body))
		from.Send(m)
	}
	msg(a, auditContact, "m1", "AuditOfflineMarker")
	a.Sync()

	// An upload through the HTTPS listener.
	fileBytes := make([]byte, 64<<10)
	rand.Read(fileBytes)
	copy(fileBytes, "AuditFileMarker")
	a.Send(&stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "slot", To: jid.MustParse("upload.localhost"),
		Inner: stanza.Resolve(stanza.Elem(n("urn:xmpp:http:upload:0", "request"), []xml.Attr{
			stanza.Attr("filename", "auditupload-marker.bin"), stanza.Attr("size", strconv.Itoa(len(fileBytes))),
			stanza.Attr("content-type", "application/octet-stream")}), stanza.NSClient)})
	slot := a.Expect(servertest.ByID("slot"))
	var put string
	for _, tok := range slot.Inner {
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "put" {
			put = stanza.AttrValue(se.Attr, "url")
		}
	}
	if put == "" {
		t.Fatalf("no slot: %v", slot.Inner)
	}
	req, _ := http.NewRequest(http.MethodPut, put, bytes.NewReader(fileBytes))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := webClient(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s", put, resp.Status)
	}

	// The contact comes online, gets the offline message, and they talk.
	cs, err := login(t, d.bound.DirectTLS[0], true, auditContact, auditPassword)
	if err != nil {
		t.Fatal(err)
	}
	c := servertest.NewClient(t, cs)
	c.Send(&stanza.Stanza{Kind: stanza.Presence})
	c.Expect(servertest.Body("AuditOfflineMarker"))
	msg(a, auditContact, "m2", "AuditOnlineMarker")
	c.Expect(servertest.Body("AuditOnlineMarker"))
	msg(c, auditUser, "m3", "AuditReplyMarker")
	a.Expect(servertest.Body("AuditReplyMarker"))

	// Group chat: a persistent room of its own, with the contact as an
	// admin, and membership with a registered nick in the contact's
	// members-only room, where it talks.
	mucCreate(t, a, auditOwnedRoom, "AuditNickOwner", "muc#roomconfig_persistentroom", "1")
	mucAffiliate(t, a, auditOwnedRoom, auditContact, "admin")
	mucCreate(t, c, auditContactRoom, "Contact", "muc#roomconfig_persistentroom", "1", "muc#roomconfig_membersonly", "1",
		"muc#roomconfig_enablearchiving", "1")
	mucAffiliate(t, c, auditContactRoom, auditUser, "member")
	mucRegister(t, a, auditContactRoom, "AuditNickMember")
	if self := stanzaText(mucJoin(t, a, auditContactRoom, "AuditNickMember")); !strings.Contains(self, `affiliation="member"`) {
		t.Fatalf("joining the contact's room: %s", self)
	}
	mucSay(t, a, auditContactRoom, "AuditRoomMessage")
	c.Expect(servertest.Body("AuditRoomMessage"))
	a.Sync()
	c.Sync()
	logout(sess)
	logout(cs)
	return fileBytes
}

// auditLive returns every bucket name, key and value in the database
// file, each prefixed with its bucket path ("a/b: "), and the archive
// log's segments, prefixed with their file name. Unlike
// bbolttest.Everything it says where each lies.
func auditLive(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var all []string
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nested := b.Bucket(k); nested != nil {
					all = append(all, prefix+": "+string(k))
					return walk(prefix+"/"+string(k), nested)
				}
			}
			all = append(all, prefix+": "+string(k)+" = "+string(v))
			return nil
		})
	}
	err = db.View(func(tx *bolt.Tx) error {
		// The archive's chunks lie in one shared bucket; the owner's
		// "archive/<user>/msgs" names each (storage/bbolt/archive.go).
		owners := map[string]string{}
		if a := tx.Bucket([]byte("archive")); a != nil {
			a.ForEach(func(user, _ []byte) error {
				if msgs := a.Bucket(user).Bucket([]byte("msgs")); msgs != nil {
					msgs.ForEach(func(_, chunk []byte) error {
						owners[string(chunk)] = string(user)
						return nil
					})
				}
				return nil
			})
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			all = append(all, string(name))
			if string(name) != "archive-chunks" {
				return walk(string(name), b)
			}
			return b.ForEach(func(k, v []byte) error {
				owner, ok := owners[string(k)]
				if !ok {
					owner = "?"
				}
				all = append(all, "archive-chunks[owner "+owner+"]: "+string(k)+" = "+string(v))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	segments, _ := filepath.Glob(path + ".archive-wal/*")
	for _, f := range segments {
		all = append(all, f+": "+string(must(os.ReadFile(f))))
	}
	return all
}

// mucBuckets are the MUC store's buckets (storage/bbolt/muc.go): the
// stored rooms, each room's entries by affiliated JID (the record: a
// version byte, the affiliation's byte — 1 owner, 2 admin, 3 member, 4
// outcast —, the nick and the reason), and the rooms of each JID.
type mucBuckets struct {
	rooms map[string]bool
	affs  map[string]map[string][]byte
	users map[string][]string
}

// auditMUC reads every room, entry and index entry of the MUC store.
func auditMUC(t *testing.T, path string) mucBuckets {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := mucBuckets{rooms: map[string]bool{}, affs: map[string]map[string][]byte{}, users: map[string][]string{}}
	err = db.View(func(tx *bolt.Tx) error {
		top := tx.Bucket([]byte("muc"))
		if top == nil {
			t.Fatal("no muc bucket in the database")
		}
		top.Bucket([]byte("rooms")).ForEach(func(k, _ []byte) error {
			m.rooms[string(k)] = true
			return nil
		})
		affs := top.Bucket([]byte("affs"))
		affs.ForEach(func(room, _ []byte) error {
			m.affs[string(room)] = map[string][]byte{}
			return affs.Bucket(room).ForEach(func(who, rec []byte) error {
				m.affs[string(room)][string(who)] = slices.Clone(rec)
				return nil
			})
		})
		users := top.Bucket([]byte("users"))
		return users.ForEach(func(who, _ []byte) error {
			return users.Bucket(who).ForEach(func(room, _ []byte) error {
				m.users[string(who)] = append(m.users[string(who)], string(room))
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// auditFind returns the entries of all that hold s, shortened.
func auditFind(all []string, s string) []string {
	var hits []string
	for _, e := range all {
		if strings.Contains(e, s) {
			if len(e) > 200 {
				e = e[:200] + "…"
			}
			hits = append(hits, e)
		}
	}
	return hits
}

// auditRaw checks the raw bytes of the database file: markers may remain
// in pages bbolt has freed but not yet reused (logged, not an error, as
// the README documents); a compacted copy, as `kiezd compact` makes it,
// must hold none of them. Markers in live, the file's live entries, have
// been reported already and are not checked again.
func auditRaw(t *testing.T, path string, live []string, markers []string) {
	t.Helper()
	markers = slices.DeleteFunc(slices.Clone(markers), func(s string) bool { return len(auditFind(live, s)) > 0 })
	raw := must(os.ReadFile(path))
	var inFree []string
	for _, s := range markers {
		if bytes.Contains(raw, []byte(s)) {
			inFree = append(inFree, s)
		}
	}
	if len(inFree) > 0 {
		t.Logf("in freed pages of %s (until reused or compacted): %q", filepath.Base(path), inFree)
	}
	src, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	compacted := filepath.Join(t.TempDir(), "compacted.db")
	dst, err := bolt.Open(compacted, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := bolt.Compact(dst, src, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	raw = must(os.ReadFile(compacted))
	for _, s := range markers {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("%q is in the compacted database file", s)
		}
	}
}

// auditFiles counts the files under dir, the database included, that
// hold a piece of the uploaded file's random bytes.
func auditFiles(t *testing.T, dir string, fileBytes []byte) int {
	t.Helper()
	piece := fileBytes[len(fileBytes)-64:]
	n := 0
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && (bytes.Contains(b, piece) || bytes.Contains(b, []byte("AuditFileMarker"))) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// countFilesDeep counts the regular files under dir, in any depth; a
// missing dir has none.
func countFilesDeep(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err == nil && e.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
