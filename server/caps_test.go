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
)

// TestServerCaps: the server's XEP-0115 <c/> in its stream features
// carries the hash of what its disco#info says, and disco#info answers
// for the caps node.
func TestServerCaps(t *testing.T) {
	srv := servertest.Start(t, server.Config{Modules: []server.Module{echoService{}, routeModule{name: "feat"}}})
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
	node, ver := m[1], m[2]

	a := srv.Connect(t, jid.MustParse("alice@localhost"), "pw")
	q := iq(stanza.Get, jid.MustParse("localhost"), "c1", xml.Name{Space: server.NSDiscoInfo, Local: "query"})
	q.Inner[0] = xml.StartElement{Name: xml.Name{Space: server.NSDiscoInfo, Local: "query"}, Attr: []xml.Attr{stanza.Attr("node", node+"#"+ver)}}
	a.Send(q)
	res := a.Expect(servertest.ByID("c1"))
	if res.Type != stanza.Result {
		t.Fatalf("disco#info of the caps node: %s", res.Type)
	}
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
}
