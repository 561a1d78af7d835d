package main

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

// kiezd serves HTTP file upload out of the box: a slot over XMPP, the
// file PUT and fetched over the HTTPS listener; deleting the account
// deletes the file from disk, also with the service switched off since.
func TestUploadOutOfTheBox(t *testing.T) { onBothBackends(t, testUploadOutOfTheBox) }

func testUploadOutOfTheBox(t *testing.T) {
	file, dir := testConfig(t, "")
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatal(err)
	}
	a := servertest.NewClient(t, sess)
	data := make([]byte, 100<<10)
	rand.Read(data)
	a.Send(&stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get, ID: "slot", To: jid.MustParse("upload.localhost"),
		Inner: stanza.Resolve(stanza.Elem(xml.Name{Space: "urn:xmpp:http:upload:0", Local: "request"}, []xml.Attr{
			stanza.Attr("filename", "photo.jpg"), stanza.Attr("size", strconv.Itoa(len(data))), stanza.Attr("content-type", "image/jpeg")}), stanza.NSClient)})
	slot := a.Expect(servertest.ByID("slot"))
	var put, get string
	for _, tok := range slot.Inner {
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "put":
				put = stanza.AttrValue(se.Attr, "url")
			case "get":
				get = stanza.AttrValue(se.Attr, "url")
			}
		}
	}
	if put == "" || get == "" {
		t.Fatalf("no slot: %v", slot.Inner)
	}
	c := webClient(t, false)
	req, _ := http.NewRequest(http.MethodPut, put, bytes.NewReader(data))
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s", put, resp.Status)
	}
	resp, err = c.Get(get)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET %s: %s, %d bytes, same %v", get, resp.Status, len(body), bytes.Equal(body, data))
	}
	logout(sess)
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}
	uploads := filepath.Join(dir, "data", "uploads")
	if n := countFiles(t, uploads); n != 1 {
		t.Fatalf("%d files under %s, want 1", n, uploads)
	}
	// Switched off, the files kept still go with their account.
	if err := os.WriteFile(file, append(must(os.ReadFile(file)), "\n[modules]\nupload = false\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := kiezd(t, "", "-config", file, "deluser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	if n := countFiles(t, uploads); n != 0 {
		t.Errorf("%d files left under %s after deleting the account", n, uploads)
	}
}

// countFiles counts the regular files directly in dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() {
			n++
		}
	}
	return n
}
