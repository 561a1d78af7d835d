package caps_test

import (
	"context"
	"encoding/xml"
	"io"
	"strconv"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	capsinfo "github.com/kiez-im/kiez/stanza/caps"
)

// patience bounds every wait: no deadline a working server has to
// beat, only a guard that turns a hang into a failure.
const patience = 30 * time.Second

// client is a logged-in client that answers the server's disco#info
// queries as its test says: servertest.Client leaves iqs to mellium,
// which answers them at once with service-unavailable.
type client struct {
	t       *testing.T
	sess    *xmpp.Session
	jid     jid.JID
	queries chan *query         // disco#info gets, each waiting for its answer
	in      chan *stanza.Stanza // everything else
	closed  chan struct{}
	n       int
}

// query is a disco#info get the client received. Its handler waits
// until the test answers it (or gives nil: no answer, and mellium
// answers service-unavailable).
type query struct {
	iq    *stanza.Stanza
	reply chan *stanza.Stanza
}

// login connects as full, whose password is "pw-" + its localpart.
func login(t *testing.T, srv *servertest.Server, full string) *client {
	t.Helper()
	j := jid.MustParse(full)
	// The context outlives the login (see servertest.Connect).
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	sess, err := srv.Login(ctx, j, "pw-"+j.Localpart())
	if err != nil {
		t.Fatalf("login as %s: %v", full, err)
	}
	c := &client{t: t, sess: sess, jid: sess.LocalAddr(), queries: make(chan *query, 16),
		in: make(chan *stanza.Stanza, 1024), closed: make(chan struct{})}
	go sess.Serve(xmpp.HandlerFunc(c.handle))
	t.Cleanup(func() { close(c.closed); sess.Close(); sess.Conn().Close() })
	return c
}

func (c *client) handle(rw xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	st, err := stanza.Read(&closing{r: rw, name: start.Name}, *start, 0)
	if err != nil {
		return nil
	}
	if st.Kind == stanza.IQKind && st.Type == stanza.Get && st.HasChild(xml.Name{Space: capsinfo.NSDiscoInfo, Local: "query"}) {
		q := &query{iq: st, reply: make(chan *stanza.Stanza, 1)}
		c.queries <- q
		select {
		case r := <-q.reply:
			if r != nil {
				tr := r.TokenReader()
				for {
					tok, err := tr.Token()
					if err != nil {
						break
					}
					if err := rw.EncodeToken(tok); err != nil {
						return err
					}
				}
			}
		case <-c.closed:
		}
		return nil
	}
	select {
	case c.in <- st:
	default:
	}
	return nil
}

// closing ends mellium's inner-element reader with the stanza's end
// element, as stanza.Read expects (as in servertest).
type closing struct {
	r    xml.TokenReader
	name xml.Name
	done bool
}

func (c *closing) Token() (xml.Token, error) {
	if c.done {
		return nil, io.EOF
	}
	t, err := c.r.Token()
	if err == io.EOF || (t == nil && err == nil) {
		c.done = true
		return xml.EndElement{Name: c.name}, nil
	}
	return t, err
}

// send writes st (no cancellable context: see servertest.Client.Send).
func (c *client) send(st *stanza.Stanza) {
	c.t.Helper()
	if err := c.sess.Send(context.Background(), st.TokenReader()); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// presence broadcasts available presence with c's caps (none for the
// zero Caps).
func (c *client) presence(cs capsinfo.Caps) {
	c.t.Helper()
	p := &stanza.Stanza{Kind: stanza.Presence}
	if cs != (capsinfo.Caps{}) {
		p.AppendChild(cs.TokenReader())
	}
	c.send(p)
}

// sync returns once the server has handled everything the client sent
// before: the presence routes run on the session's path, in order.
func (c *client) sync() {
	c.t.Helper()
	c.n++
	id := "sync-" + strconv.Itoa(c.n)
	name := xml.Name{Space: "urn:kiez:test:sync", Local: "sync"}
	c.send(&stanza.Stanza{Kind: stanza.IQKind, ID: id, Type: stanza.Get, To: c.jid.Domain(),
		Inner: []xml.Token{xml.StartElement{Name: name}, xml.EndElement{Name: name}}})
	timeout := time.NewTimer(patience)
	defer timeout.Stop()
	for {
		select {
		case st := <-c.in:
			if st.ID == id {
				return
			}
		case <-timeout.C:
			c.t.Fatalf("%s: no answer to a sync: hung?", c.jid.Resourcepart())
		}
	}
}

// expectQuery waits for the server's disco#info query.
func (c *client) expectQuery() *query {
	c.t.Helper()
	select {
	case q := <-c.queries:
		return q
	case <-time.After(patience):
		c.t.Fatalf("%s: no disco#info query: hung?", c.jid.Resourcepart())
		return nil
	}
}

// noQuery fails the test if a query is waiting.
func (c *client) noQuery() {
	c.t.Helper()
	select {
	case q := <-c.queries:
		c.t.Fatalf("%s: unexpected query for %q", c.jid.Resourcepart(), q.node())
	default:
	}
}

// node returns the node the query asks about.
func (q *query) node() string {
	el, _ := q.iq.ChildElement(xml.Name{Space: capsinfo.NSDiscoInfo, Local: "query"})
	return el.Attr("node")
}

// answer answers with in, for the node asked about.
func (q *query) answer(in capsinfo.Info) { q.reply <- q.iq.ResultReply(in.Query(q.node())) }

// answerXML answers with a raw <query/> (for ill-formed answers).
func (q *query) answerXML(t *testing.T, s string) {
	toks, err := stanza.ParseElement([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	q.reply <- q.iq.ResultReply(stanza.Tokens(toks...))
}
