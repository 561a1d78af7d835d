package server_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"regexp"
	"sort"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/caps"
)

// TestServerCaps: the server's XEP-0115 <c/> in its stream features
// carries the hash of what its disco#info says, and disco#info answers
// for the caps node.
func TestServerCaps(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{echoService{}, routeModule{name: "feat"}}})
	node, ver, res := serverCaps(t, srv)
	// Recompute the verification string from the answer (XEP-0115 §5.1;
	// this server has no extended forms).
	var ids, features []string
	for _, tok := range res.Inner {
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		attr := func(n string) string {
			for _, a := range se.Attr {
				if a.Name.Local == n {
					return a.Value
				}
			}
			return ""
		}
		switch se.Name.Local {
		case "identity":
			ids = append(ids, attr("category")+"/"+attr("type")+"/"+attr("lang")+"/"+attr("name"))
		case "feature":
			features = append(features, attr("var"))
		}
	}
	sort.Strings(ids)
	sort.Strings(features)
	s := strings.Join(ids, "<") + "<" + strings.Join(features, "<") + "<"
	sum := sha1.Sum([]byte(s))
	if want := base64.StdEncoding.EncodeToString(sum[:]); ver != want {
		t.Fatalf("ver %s, disco#info hashes to %s (%s)", ver, want, s)
	}
	if node != "https://kiez.im" {
		t.Errorf("caps node %q", node)
	}
}

// serverCaps logs in as alice and returns the node and ver of the
// server's <c/> stream feature, and its disco#info answer for node#ver.
func serverCaps(t *testing.T, srv *servertest.Server) (node, ver string, res *stanza.Stanza) {
	t.Helper()
	srv.AddUser(t, "alice", "pw")
	r := dialRaw(t, srv.Addr)
	r.startTLS()
	r.authPlain("alice", "pw")
	r.send(header)
	feats := r.expect("</stream:features>")
	m := regexp.MustCompile(`<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='([^']+)' ver='([^']+)'/>`).FindStringSubmatch(feats)
	if m == nil {
		t.Fatalf("no caps in %s", feats)
	}
	node, ver = m[1], m[2]

	a := srv.Connect(t, jid.MustParse("alice@localhost"), "pw")
	q := iq(stanza.Get, jid.MustParse("localhost"), "c1", xml.Name{Space: server.NSDiscoInfo, Local: "query"})
	q.Inner[0] = xml.StartElement{Name: xml.Name{Space: server.NSDiscoInfo, Local: "query"}, Attr: []xml.Attr{stanza.Attr("node", node+"#"+ver)}}
	a.Send(q)
	res = a.Expect(servertest.ByID("c1"))
	if res.Type != stanza.Result {
		t.Fatalf("disco#info of the caps node: %s", res.Type)
	}
	return node, ver, res
}

// formModule adds XEP-0128 forms to the server's disco#info: one with a
// hidden FORM_TYPE, which the verification string covers, and one
// without, which verifying clients ignore (XEP-0115 §5.4).
type formModule struct{}

func (formModule) Name() string { return "forms" }

func (formModule) Forms(t server.Target) []xml.TokenReader {
	if t != server.TargetHost {
		return nil
	}
	field := func(v, typ string, values ...string) xml.TokenReader {
		attrs := []xml.Attr{stanza.Attr("var", v)}
		if typ != "" {
			attrs = append(attrs, stanza.Attr("type", typ))
		}
		var vals []xml.TokenReader
		for _, s := range values {
			vals = append(vals, stanza.TextElem(xml.Name{Local: "value"}, s))
		}
		return stanza.Elem(xml.Name{Local: "field"}, attrs, vals...)
	}
	x := xml.Name{Space: "jabber:x:data", Local: "x"}
	return []xml.TokenReader{
		stanza.Elem(x, []xml.Attr{stanza.Attr("type", "result")},
			field("FORM_TYPE", "hidden", "http://jabber.org/network/serverinfo"),
			field("admin-addresses", "list-multi", "xmpp:admin@localhost", "mailto:admin@localhost")),
		stanza.Elem(x, []xml.Attr{stanza.Attr("type", "result")}, field("note", "", "no FORM_TYPE")),
	}
}

// TestServerCapsForms: a client verifying the server's disco#info with
// extended forms (XEP-0115 §5.4) gets the server's ver.
func TestServerCapsForms(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{formModule{}, routeModule{name: "feat"}}})
	_, ver, res := serverCaps(t, srv)
	q, ok := res.ChildElement(xml.Name{Space: server.NSDiscoInfo, Local: "query"})
	if !ok {
		t.Fatal("no query in the answer")
	}
	in, err := caps.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Forms) != 1 || !in.Verify(caps.SHA1, ver) {
		t.Fatalf("ver %s not verified by %q", ver, in.Input())
	}
}
