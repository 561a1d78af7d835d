package server

import (
	"context"
	"encoding/xml"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage/memory"
)

func TestIsImportant(t *testing.T) {
	msg := func(typ, inner string) *stanza.Stanza {
		d := xml.NewDecoder(strings.NewReader(`<message xmlns='jabber:client' type='` + typ + `'>` + inner + `</message>`))
		start, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		st, err := stanza.Read(d, start.(xml.StartElement), 0)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range []struct {
		name string
		st   *stanza.Stanza
		want bool
	}{
		{"body", msg("chat", `<body>hi</body>`), true},
		{"chat state", msg("chat", `<composing xmlns='http://jabber.org/protocol/chatstates'/>`), false},
		{"receipt", msg("chat", `<received xmlns='urn:xmpp:receipts' id='x'/>`), false},
		{"headline with body", msg("headline", `<body>news</body>`), false},
		{"error", msg("error", `<error type='cancel'/>`), true},
		{"omemo", msg("chat", `<encrypted xmlns='eu.siacs.conversations.axolotl'/>`), true},
		{"subject", msg("groupchat", `<subject>topic</subject>`), true},
		{"carbon of a body", msg("chat", `<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><body>hi</body></message></forwarded></sent>`), true},
		{"carbon of a chat state", msg("chat", `<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received>`), false},
		{"muc invite", msg("normal", `<x xmlns='http://jabber.org/protocol/muc#user'><invite from='a@b'/></x>`), true},
		{"stored", &stanza.Stanza{Kind: stanza.Message, Inner: []xml.Token{stanza.Raw(`<body>x</body>`)}}, true},
		{"presence", &stanza.Stanza{Kind: stanza.Presence}, false},
		{"unavailable", &stanza.Stanza{Kind: stanza.Presence, Type: "unavailable"}, false},
		{"subscribe", &stanza.Stanza{Kind: stanza.Presence, Type: "subscribe"}, true},
		{"iq", &stanza.Stanza{Kind: stanza.IQKind, Type: stanza.Get}, true},
	} {
		if got := isImportant(tc.st); got != tc.want {
			t.Errorf("%s: important = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSMAckWraps(t *testing.T) {
	sm := &smState{acked: 1<<32 - 2}
	for range 4 {
		sm.unacked = append(sm.unacked, outItem{st: &stanza.Stanza{}})
	}
	if !sm.ack(1) { // 2^32-2 + 3, modulo 2^32
		t.Fatal("an h that wrapped around was refused")
	}
	if len(sm.unacked) != 1 {
		t.Fatalf("%d unacked left, want 1", len(sm.unacked))
	}
	if sm.ack(3) {
		t.Fatal("acknowledging more than sent was accepted")
	}
}

// BenchmarkSMSessionMemory reports the heap an idle session with stream
// management (resumption enabled) keeps, beyond one without it, after a
// few stanzas were written and acknowledged.
func BenchmarkSMSessionMemory(b *testing.B) {
	srv, err := New(context.Background(), Config{Domains: []string{"localhost"}, Accounts: memory.New()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	const n = 2000
	measure := func(enable bool) float64 {
		sessions := make([]*Session, n)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range sessions {
			s := benchSession(srv, fmt.Sprintf("u%d@localhost/r", i))
			if enable {
				s.conn.smEnable(s, xml.StartElement{Attr: []xml.Attr{{Name: xml.Name{Local: "resume"}, Value: "true"}}})
				for range 3 {
					s.Send(&stanza.Stanza{Kind: stanza.Message, Type: "chat"})
				}
			}
			sessions[i] = s
		}
		for _, s := range sessions {
			for {
				s.qmu.Lock()
				idle := !s.writing
				if idle && s.sm != nil {
					s.sm.ack(s.sm.outH)
				}
				s.qmu.Unlock()
				if idle {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		for _, s := range sessions {
			srv.sessions.remove(s)
			srv.forgetSM(s)
		}
		runtime.KeepAlive(sessions)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	var plain, sm float64
	for range b.N {
		plain = measure(false)
		sm = measure(true)
	}
	b.ReportMetric(plain, "B/plain-session")
	b.ReportMetric(sm, "B/sm-session")
}
