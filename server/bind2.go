package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kiez-im/kiez/stanza"
	"mellium.im/xmpp/jid"
)

// XEP-0386 Bind 2: resource binding inside SASL2's <authenticate/>, with
// features the client enables in the same round trip: stream management
// (the server's own) and the modules' InlineEnablers (carbons).

const nsBind2 = "urn:xmpp:bind:0"

// InlineEnabler is implemented by modules with a per-session feature a
// client can enable inside a Bind 2 request, as Prosody's modules hook
// "advertise-bind-features" and "enable-bind-features": the client sends
// <enable xmlns=InlineFeature()/> in <bind/>, and the server calls
// EnableInline for the new session before the client learns its JID.
type InlineEnabler interface {
	// InlineFeature is the namespace of the feature, advertised in
	// Bind 2's <inline/>.
	InlineFeature() string
	// EnableInline enables the feature for sess. An error is logged and
	// leaves the feature off; the login goes on.
	EnableInline(ctx context.Context, sess *Session) error
}

// bind2Table is what New learns of the modules for Bind 2.
type bind2Table struct {
	enablers []InlineEnabler
	feature  string // the <bind/> inline feature of SASL2's <authentication/>
}

// buildBind2 computes the <bind/> advertised in SASL2's inline features:
// stream management, client state indication (XEP-0352: the session
// starts in the state the client gives) and the modules' inline
// features.
func (s *Server) buildBind2() {
	b := `<bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:sm:3'/><feature var='urn:xmpp:csi:0'/>`
	for _, e := range s.bind2.enablers {
		b += `<feature var='` + escapeString(e.InlineFeature()) + `'/>`
	}
	s.bind2.feature = b + `</inline></bind>`
}

// bind2Request is a client's Bind 2 <bind/>.
type bind2Request struct {
	tag      string
	enable   []string // namespaces of the <enable/> elements, but stream management's
	sm       bool     // <enable xmlns='urn:xmpp:sm:3'/>
	smResume bool     // with resume='true'
	smMax    string   // and its max
	inactive bool     // <inactive xmlns='urn:xmpp:csi:0'/>: the session starts inactive
}

// parseBind2 reads the inner tokens of <bind/>.
func parseBind2(toks []xml.Token) *bind2Request {
	req := &bind2Request{}
	depth := 0
	var tag []xml.Token
	inTag := false
	for _, t := range toks {
		switch tt := t.(type) {
		case xml.StartElement:
			depth++
			if depth != 1 {
				break
			}
			switch {
			case tt.Name == xml.Name{Space: nsBind2, Local: "tag"}:
				inTag = true
			case tt.Name == xml.Name{Space: nsSM, Local: "enable"}:
				req.sm = true
				v, _ := stanza.LookupAttr(tt.Attr, "resume")
				req.smResume = v == "true" || v == "1"
				req.smMax, _ = stanza.LookupAttr(tt.Attr, "max")
			case tt.Name.Space == nsCSI && (tt.Name.Local == "inactive" || tt.Name.Local == "active"):
				req.inactive = tt.Name.Local == "inactive"
			case tt.Name.Local == "enable":
				req.enable = append(req.enable, tt.Name.Space)
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				inTag = false
			}
		case xml.CharData:
			if inTag {
				tag = append(tag, tt)
			}
		}
	}
	req.tag = textOf(tag)
	return req
}

// bind2Resource returns the resource for a Bind 2 request with tag from
// user's device: the server picks it (XEP-0386 §3) as the tag, which names
// the client software, a dot and a suffix; only the suffix without a
// usable tag. With the client's <user-agent id/> (XEP-0388), the suffix
// is a hash of the account and that id, so the same installation gets the
// same resource at every login and its new session replaces the one it
// left behind (XEP-0386: a server should end a client's old sessions when
// it binds anew), while contacts learn nothing of the id; without one it
// is random.
func bind2Resource(tag string, user jid.JID, userAgent string) string {
	var r string
	if userAgent == "" {
		r = newID()[:12]
	} else {
		sum := sha256.Sum256([]byte(user.String() + "\x00" + userAgent))
		r = base64.RawURLEncoding.EncodeToString(sum[:9])
	}
	if tag == "" || len(tag) > 64 || strings.IndexFunc(tag, func(r rune) bool {
		return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '/'
	}) >= 0 {
		return r
	}
	return tag + "." + r
}

// bind2 starts the session a Bind 2 request asks for after SASL2 success,
// enables the features it names and answers with SASL2's <success/> with
// <bound/>.
func (c *conn) bind2(req *bind2Request, userAgent string, addl []byte) (stepResult, error) {
	full, err := c.user.WithResource(bind2Resource(req.tag, c.user, userAgent))
	if err != nil {
		if full, err = c.user.WithResource(bind2Resource("", c.user, userAgent)); err != nil {
			return stepResult{}, err
		}
	}
	return c.startSession(full, func(sess *Session) error {
		ctx := c.ctx
		for _, ns := range req.enable {
			for _, e := range c.srv.bind2.enablers {
				if e.InlineFeature() != ns {
					continue
				}
				if err := e.EnableInline(ctx, sess); err != nil {
					c.srv.log.Warn("enabling a feature inline failed", "feature", ns, "err", err)
				}
			}
		}
		if req.inactive {
			sess.qmu.Lock()
			if sess.csi == nil {
				sess.csi = &csiState{}
			}
			sess.csi.inactive = true
			sess.qmu.Unlock()
		}
		bound := `<bound xmlns='urn:xmpp:bind:0'>`
		var sm *smState
		if req.sm {
			var enabled string
			sm, enabled = c.smInline(req.smResume, req.smMax)
			bound += enabled
			sess.qmu.Lock()
			sess.sm = sm
			sess.qmu.Unlock()
		}
		bound += `</bound>`
		c.t.writeNonza(c.bw, sasl2Success(addl, full.String(), bound+c.fastToken))
		if err := c.bw.Flush(); err != nil {
			return err
		}
		if sm != nil && sm.id != "" {
			c.srv.smMu.Lock()
			if c.srv.smIDs == nil {
				c.srv.smIDs = make(map[string]*Session)
			}
			c.srv.smIDs[sm.id] = sess
			c.srv.smMu.Unlock()
		}
		return nil
	})
}

// smInline returns the stream management state of a session enabled
// inside Bind 2, and its <enabled/>. That element is written inside
// <bound/>, before anything the session queues, so counting starts at
// once.
func (c *conn) smInline(resume bool, max string) (*smState, string) {
	sm := &smState{timeout: c.srv.limits.ResumeTimeout, counting: true}
	if !resume {
		return sm, `<enabled xmlns='urn:xmpp:sm:3'/>`
	}
	if n, err := strconv.ParseUint(max, 10, 32); err == nil && n > 0 && time.Duration(n)*time.Second < sm.timeout {
		sm.timeout = time.Duration(n) * time.Second
	}
	sm.id = newSMID()
	secs := int64((sm.timeout + time.Second - 1) / time.Second)
	return sm, `<enabled xmlns='urn:xmpp:sm:3' id='` + sm.id + `' resume='true' max='` + strconv.FormatInt(secs, 10) + `'/>`
}
