package offline_test

import (
	"encoding/xml"
	"testing"

	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage/memory"
)

// TestImport: stored messages come back from an export, in order, with
// the time they first arrived, and are delivered with it once.
func TestImport(t *testing.T) {
	e := start(t, memory.New(), offline.Options{})
	b := e.online(t, bob, 0)
	b.Send(msg(alice, "m1", "chat", "first"))
	b.Send(msg(alice, "m2", "chat", "second"))
	b.Sync()
	stored, err := e.store.OfflineMessages(t.Context(), alice.String())
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored: %d, %v", len(stored), err)
	}
	before, after, report := e.srv.ReImport(t, alice)
	if before != after || report.Elements != 1 {
		t.Fatalf("export after the import (%+v):\n%s\ndiffers from the one before:\n%s", report, after, before)
	}
	got, err := e.store.OfflineMessages(t.Context(), alice.String())
	if err != nil || len(got) != 2 {
		t.Fatalf("after the import: %d, %v", len(got), err)
	}
	for i := range got {
		if !got[i].Stored.Equal(stored[i].Stored.Truncate(1e9)) {
			t.Errorf("message %d stored at %v, first at %v", i, got[i].Stored, stored[i].Stored)
		}
	}
	a := e.online(t, alice, 1)
	for _, body := range []string{"first", "second"} {
		m := a.Expect(servertest.Body(body))
		n := 0
		for el := range m.Children() {
			if el.Name == (xml.Name{Space: offline.NSDelay, Local: "delay"}) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%q delivered with %d delays, want 1", body, n)
		}
	}
}
