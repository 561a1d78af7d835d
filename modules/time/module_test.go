package time_test

import (
	"encoding/xml"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	kieztime "github.com/kiez-im/kiez/modules/time"
	"github.com/kiez-im/kiez/stanza"
)

// answer returns the text of <tzo/> and <utc/> in a result.
func answer(t *testing.T, res *stanza.Stanza) (tzo, utc string) {
	t.Helper()
	_, r, ok := res.Child(xml.Name{Space: kieztime.NS, Local: "time"})
	if !ok {
		t.Fatalf("result has no {%s}time", kieztime.NS)
	}
	var cur string
	for tok, err := r.Token(); err == nil; tok, err = r.Token() {
		switch tt := tok.(type) {
		case xml.StartElement:
			cur = tt.Name.Local
		case xml.EndElement:
			cur = ""
		case xml.CharData:
			switch cur {
			case "tzo":
				tzo += string(tt)
			case "utc":
				utc += string(tt)
			}
		}
	}
	return tzo, utc
}

func query(id, typ string, to jid.JID) *stanza.Stanza {
	return modtest.IQ(id, typ, to, modtest.Query(kieztime.NS, "time"))
}

func TestTime(t *testing.T) {
	tests := []struct {
		name    string
		loc     *time.Location
		wantTZO string
	}{
		{name: "default UTC", wantTZO: "+00:00"},
		{name: "east", loc: time.FixedZone("IST", 5*3600+30*60), wantTZO: "+05:30"},
		{name: "west", loc: time.FixedZone("BRT", -3*3600), wantTZO: "-03:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := modtest.Start(t, modtest.Must(kieztime.New(kieztime.Options{Location: tt.loc}, kieztime.Deps{})))
			domain := jid.MustParse(srv.Domain)
			before := time.Now().Truncate(time.Second)
			res := modtest.Do(t, c, query("t1", stanza.Get, domain))
			after := time.Now()
			modtest.MustResult(t, res, domain)
			tzo, utc := answer(t, res)
			if tzo != tt.wantTZO {
				t.Errorf("tzo = %q, want %q", tzo, tt.wantTZO)
			}
			got, err := time.Parse("2006-01-02T15:04:05Z", utc)
			if err != nil {
				t.Fatalf("utc %q is not a UTC date-time: %v", utc, err)
			}
			if got.Before(before) || got.After(after) {
				t.Errorf("utc = %s, want between %s and %s", got, before.UTC(), after.UTC())
			}
			if info := modtest.DiscoInfo(t, c, domain); !modtest.HasFeature(info, kieztime.NS) {
				t.Fatalf("disco#info features %v lack %s", modtest.Features(info), kieztime.NS)
			}
		})
	}
}

func TestNotAnswered(t *testing.T) {
	srv, c := modtest.Start(t, modtest.Must(kieztime.New(kieztime.Options{}, kieztime.Deps{})))
	domain := jid.MustParse(srv.Domain)
	tests := []struct {
		name string
		iq   *stanza.Stanza
	}{
		{name: "set", iq: query("t-set", stanza.Set, domain)},
		{name: "own account", iq: query("t-self", stanza.Get, c.LocalAddr().Bare())},
		{name: "unknown payload", iq: modtest.IQ("t-unknown", stanza.Get, domain, modtest.Query("urn:example:nothing", "time"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := modtest.Do(t, c, tt.iq)
			if got := modtest.Condition(res); got != mstanza.ServiceUnavailable {
				t.Fatalf("condition = %q, want %q", got, mstanza.ServiceUnavailable)
			}
		})
	}
}

func TestNotAdvertisedOnAccounts(t *testing.T) {
	_, c := modtest.Start(t, modtest.Must(kieztime.New(kieztime.Options{}, kieztime.Deps{})))
	if info := modtest.DiscoInfo(t, c, c.LocalAddr().Bare()); modtest.HasFeature(info, kieztime.NS) {
		t.Fatalf("account disco#info advertises %s", kieztime.NS)
	}
}
