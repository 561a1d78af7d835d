package version_test

import (
	"encoding/xml"
	"runtime"
	"runtime/debug"
	"testing"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/version"
	"github.com/kiez-im/kiez/stanza"
)

// answer returns the text of each child of the jabber:iq:version query in
// an iq result.
func answer(t *testing.T, res *stanza.Stanza) map[string]string {
	t.Helper()
	_, r, ok := res.Child(xml.Name{Space: version.NS, Local: "query"})
	if !ok {
		t.Fatalf("result has no {%s}query", version.NS)
	}
	out := make(map[string]string)
	depth, cur := 0, ""
	for tok, err := r.Token(); err == nil; tok, err = r.Token() {
		switch tt := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				cur = tt.Name.Local
				out[cur] = ""
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 2 {
				out[cur] += string(tt)
			}
		}
	}
	return out
}

func query(id, typ string, to jid.JID) *stanza.Stanza {
	return modtest.IQ(id, typ, to, modtest.Query(version.NS, "query"))
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name string
		opts version.Options
		want map[string]string
	}{
		{name: "defaults", opts: version.Options{}, want: map[string]string{"name": "Kiez", "version": modtest.Must(version.New(version.Options{}, version.Deps{})).Version()}},
		{name: "explicit version", opts: version.Options{Version: "1.2.3"}, want: map[string]string{"name": "Kiez", "version": "1.2.3"}},
		{name: "os shown", opts: version.Options{Version: "1.2.3", ShowOS: true}, want: map[string]string{"name": "Kiez", "version": "1.2.3", "os": runtime.GOOS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := modtest.Start(t, modtest.Must(version.New(tt.opts, version.Deps{})))
			domain := jid.MustParse(srv.Domain)
			res := modtest.Do(t, c, query("v1", stanza.Get, domain))
			modtest.MustResult(t, res, domain)
			got := answer(t, res)
			if len(got) != len(tt.want) {
				t.Fatalf("answer %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("answer %v, want %v", got, tt.want)
				}
			}
			if info := modtest.DiscoInfo(t, c, domain); !modtest.HasFeature(info, version.NS) {
				t.Fatalf("disco#info features %v lack %s", modtest.Features(info), version.NS)
			}
		})
	}
}

func TestDefaultVersion(t *testing.T) {
	// The test binary's main module is Kiez itself; it carries a version
	// only when the go command stamps one from version control.
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Path != "github.com/kiez-im/kiez" {
		t.Fatalf("main module is not Kiez: %v", bi)
	}
	want := bi.Main.Version
	if want == "" || want == "(devel)" {
		want = "devel"
	}
	if v := modtest.Must(version.New(version.Options{}, version.Deps{})).Version(); v != want {
		t.Fatalf("default version %q, want %q", v, want)
	}
}

func TestNotAnswered(t *testing.T) {
	tests := []struct {
		name string
		opts version.Options
		typ  string
		self bool // ask the own account instead of the server
	}{
		{name: "hidden", opts: version.Options{Hide: true, Version: "1.2.3"}, typ: stanza.Get},
		{name: "set", typ: stanza.Set},
		{name: "own account", typ: stanza.Get, self: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := modtest.Start(t, modtest.Must(version.New(tt.opts, version.Deps{})))
			to := jid.MustParse(srv.Domain)
			if tt.self {
				to = c.LocalAddr().Bare()
			}
			res := modtest.Do(t, c, query("v1", tt.typ, to))
			if got := modtest.Condition(res); got != mstanza.ServiceUnavailable {
				t.Fatalf("condition = %q, want %q", got, mstanza.ServiceUnavailable)
			}
		})
	}
}

func TestHiddenNotAdvertised(t *testing.T) {
	srv, c := modtest.Start(t, modtest.Must(version.New(version.Options{Hide: true}, version.Deps{})))
	if info := modtest.DiscoInfo(t, c, jid.MustParse(srv.Domain)); modtest.HasFeature(info, version.NS) {
		t.Fatalf("hidden module advertises %s", version.NS)
	}
}
