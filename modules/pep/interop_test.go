package pep_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/pep"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
)

const (
	nsAvatarData = "urn:xmpp:avatar:data"
	nsAxolotl    = "eu.siacs.conversations.axolotl"
)

// TestSlixmppPEP: Debian's slixmpp, as alice, publishes an avatar (data
// and metadata, through its xep_0084 plugin) and an OMEMO bundle with
// publish-options access_model=open (through xep_0060), fetches them back
// through its plugins and waits for the event of its own metadata (so the
// server must have verified slixmpp's entity capabilities). On the Go
// side bob, a contact whose caps ask for metadata notifications, gets the
// metadata event (and no other) and fetches the avatar data it points
// to, as XEP-0084 clients do; dave, a stranger whose caps ask for the
// same, gets no event, can fetch the open bundle, and is refused the
// avatar metadata and data with not-authorized.
func TestSlixmppPEP(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp.plugins.xep_0084, slixmpp.plugins.xep_0163").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	const (
		device      = "31415"
		identityKey = "BRuQZ8v0e2Nv5lJvQk1HdGVzdGlkZW50aXR5a2V5"
	)
	bundleNode := nsAxolotl + ".bundles:" + device
	avatar := []byte("\x89PNG\r\n\x1a\n kiez interop avatar")
	sum := sha1.Sum(avatar)
	avatarID := hex.EncodeToString(sum[:])

	e := start(t, pep.Options{})
	e.share(t, e.alice, e.bob)
	b := e.online(t, e.bob, nodeMeta)
	d := e.online(t, e.dave, nodeMeta, bundleNode)

	host, port, _ := net.SplitHostPort(e.srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, py, "../../testdata/interop/slixmpp_pep.py",
		e.alice.String(), host, port, e.bob.String(), device, identityKey, base64.StdEncoding.EncodeToString(avatar))
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=pw")
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	// However the test ends, the script is gone before the server stops
	// (cleanups run last-registered first).
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() || waitErr != nil {
			t.Logf("slixmpp client (exit: %v) wrote:\n%s", waitErr, out.String())
		}
	})
	// A script that fails ends bob's stream, so that the test stops
	// waiting for its stanzas at once.
	go func() {
		<-exited
		if waitErr != nil {
			b.Conn().Close()
		}
	}()

	otherEvent := func(st *stanza.Stanza) bool {
		return isEvent(e.alice, nsAvatarData)(st) || isEvent(e.alice, bundleNode)(st)
	}
	ev := b.ExpectNoneUntil(otherEvent, isEvent(e.alice, nodeMeta))
	if got := itemIDs(ev); ev.Type != "headline" || strings.Join(got, ",") != avatarID {
		t.Errorf("bob's metadata event: type %q items %q, want headline [%s]", ev.Type, got, avatarID)
	}
	if info, ok := findElem(ev, nodeMeta, "info"); !ok || stanza.AttrValue(info.Attr, "id") != avatarID ||
		stanza.AttrValue(info.Attr, "type") != "image/png" || stanza.AttrValue(info.Attr, "bytes") != strconv.Itoa(len(avatar)) {
		t.Errorf("bob's metadata event has info %v", info.Attr)
	}
	done := b.ExpectNoneUntil(otherEvent, servertest.Body("pep published "+avatarID))
	if !done.From.Bare().Equal(e.alice) {
		t.Errorf("slixmpp's message came from %s", done.From)
	}
	<-exited // bounded by ctx
	if waitErr != nil {
		t.Fatalf("slixmpp client: %v", waitErr)
	}

	// Bob fetches the avatar the metadata points to.
	r := modtest.Do(t, b, itemsIQ("data", e.alice, nsAvatarData, 0, avatarID))
	if r.Type != stanza.Result {
		t.Fatalf("bob fetching the avatar data: %v %q", modtest.Condition(r), appCondition(r))
	}
	if got, _ := base64.StdEncoding.DecodeString(elemText(r, nsAvatarData, "data")); !bytes.Equal(got, avatar) {
		t.Errorf("avatar data %q, want %q", got, avatar)
	}

	// The stranger: no event, the open bundle, no avatar.
	d.SyncNone(isEvent(e.alice, nodeMeta))
	r = modtest.Do(t, d, itemsIQ("bundle", e.alice, bundleNode, 0))
	if r.Type != stanza.Result || strings.Join(itemIDs(r), ",") != "current" {
		t.Fatalf("dave fetching the open bundle: %v %q, items %q", modtest.Condition(r), appCondition(r), itemIDs(r))
	}
	if got := elemText(r, nsAxolotl, "identityKey"); got != identityKey {
		t.Errorf("bundle identityKey %q, want %q", got, identityKey)
	}
	if n := countElems(r, nsAxolotl, "preKeyPublic"); n != 3 {
		t.Errorf("bundle has %d pre keys, want 3", n)
	}
	for _, n := range []string{nodeMeta, nsAvatarData} {
		r := modtest.Do(t, d, itemsIQ("x-"+n, e.alice, n, 0))
		if modtest.Condition(r) != mstanza.NotAuthorized || appCondition(r) != "presence-subscription-required" {
			t.Errorf("dave fetching %s: %v %q, want not-authorized presence-subscription-required", n, modtest.Condition(r), appCondition(r))
		}
	}
}

// findElem returns the first element space:local at any depth of st.
func findElem(st *stanza.Stanza, space, local string) (xml.StartElement, bool) {
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == space && se.Name.Local == local {
			return se, true
		}
	}
	return xml.StartElement{}, false
}

// elemText returns the text directly inside the first element
// space:local at any depth of st.
func elemText(st *stanza.Stanza, space, local string) string {
	for i, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == space && se.Name.Local == local {
			var text strings.Builder
			for _, t := range st.Inner[i+1:] {
				cd, ok := t.(xml.CharData)
				if !ok {
					break
				}
				text.Write(cd)
			}
			return text.String()
		}
	}
	return ""
}

// countElems counts the elements space:local at any depth of st.
func countElems(st *stanza.Stanza, space, local string) int {
	n := 0
	for _, t := range st.Inner {
		if se, ok := t.(xml.StartElement); ok && se.Name.Space == space && se.Name.Local == local {
			n++
		}
	}
	return n
}
