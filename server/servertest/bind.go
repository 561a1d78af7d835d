package servertest

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"

	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

const nsBind = "urn:ietf:params:xml:ns:xmpp-bind"

// BindResource is a client-side resource binding feature that requests the
// resourcepart of the session's origin JID (mellium v0.22's BindResource
// sends an empty <resource/>, so the server always picks one).
func BindResource() xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: nsBind, Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(ctx context.Context, d *xml.Decoder, start *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(ctx context.Context, session *xmpp.Session, data any) (xmpp.SessionState, io.ReadWriter, error) {
			w := session.TokenWriter()
			defer w.Close()
			r := session.TokenReader()
			defer r.Close()
			bind := xml.Name{Space: nsBind, Local: "bind"}
			var children []xml.TokenReader
			if res := session.LocalAddr().Resourcepart(); res != "" {
				children = append(children, stanza.TextElem(xml.Name{Local: "resource"}, res))
			}
			req := &stanza.Stanza{Kind: stanza.IQKind, ID: "bind-1", Type: stanza.Set}
			req.AppendChild(stanza.Elem(bind, nil, children...))
			if err := copyTokens(w, req.TokenReader()); err != nil {
				return 0, nil, err
			}
			if err := w.Flush(); err != nil {
				return 0, nil, err
			}
			var start xml.StartElement
			for {
				t, err := r.Token()
				if err != nil {
					return 0, nil, err
				}
				if se, ok := t.(xml.StartElement); ok {
					start = se
					break
				}
			}
			resp, err := stanza.Read(r, start, 0)
			if err != nil {
				return 0, nil, err
			}
			if resp.Type != stanza.Result {
				return 0, nil, fmt.Errorf("bind failed: %s", resp.Type)
			}
			_, br, ok := resp.Child(bind)
			if !ok {
				return 0, nil, fmt.Errorf("bind result without <bind/>")
			}
			b := &stanza.Stanza{Kind: stanza.IQKind}
			b.Inner = collectInner(br)
			text, _ := b.ChildText(xml.Name{Local: "jid"})
			j, err := jid.Parse(text)
			if err != nil {
				return 0, nil, fmt.Errorf("bind result: %w", err)
			}
			session.UpdateAddr(j)
			return xmpp.Ready, nil, nil
		},
	}
}

// collectInner returns the tokens inside the element r yields.
func collectInner(r xml.TokenReader) []xml.Token {
	var toks []xml.Token
	for {
		t, err := r.Token()
		if err != nil {
			break
		}
		toks = append(toks, xml.CopyToken(t))
	}
	if len(toks) >= 2 {
		return toks[1 : len(toks)-1]
	}
	return nil
}

func copyTokens(w interface{ EncodeToken(xml.Token) error }, r xml.TokenReader) error {
	for {
		t, err := r.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
}
