package invite

import (
	"html/template"
	"net/http"
	"strings"

	"github.com/kiez-im/kiez/modules/invite/internal/qr"
	"github.com/kiez-im/kiez/server"
)

// Path is where the landing pages are served: Path + token.
const Path = "/invite/"

// HTTPRoutes serves the landing pages, GET Path + token.
func (m *Module) HTTPRoutes() []server.HTTPRoute {
	return []server.HTTPRoute{{Pattern: "GET " + Path + "{token}", Handler: http.HandlerFunc(m.serveHTTP)}}
}

// client is a recommended XMPP client.
type client struct{ Platform, Name, URL string }

// clients are the clients the page recommends, per platform.
var clients = []client{
	{"Android", "Conversations", "https://conversations.im/"},
	{"Android", "Monocles Chat", "https://f-droid.org/packages/de.monocles.chat/"},
	{"iPhone and iPad", "Monal", "https://monal-im.org/"},
	{"iPhone and iPad", "Siskin IM", "https://siskin.im/"},
	{"macOS", "Monal", "https://monal-im.org/"},
	{"Linux", "Dino", "https://dino.im/"},
	{"Linux and Windows", "Gajim", "https://gajim.org/"},
	{"Web browser", "Converse.js (if your server offers it)", "https://conversejs.org/"},
}

type page struct {
	Domain, Inviter, Username, Token, Expires string
	URI                                       template.URL  // xmpp:, which html/template would refuse otherwise
	QR                                        template.HTML // the URI as an inline SVG QR code, or empty
	Clients                                   []client
}

var pageTmpl = template.Must(template.New("invite").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Invitation to {{.Domain}}</title></head>
<body>
<h1>{{if .Inviter}}{{.Inviter}} invites you to chat{{else}}You are invited to {{.Domain}}{{end}}</h1>
<p>This invitation lets you create an account on {{.Domain}}{{if .Username}} with the username <strong>{{.Username}}</strong>{{end}}{{if .Inviter}} and adds {{.Inviter}} to your contacts{{end}}. It works once, until {{.Expires}}.</p>
<h2>1. Install a chat app</h2>
<ul>
{{range .Clients}}<li>{{.Platform}}: <a href="{{.URL}}" rel="noopener noreferrer">{{.Name}}</a></li>
{{end}}</ul>
<h2>2. Open the invitation in it</h2>
<p><a href="{{.URI}}">Open the invitation</a></p>
{{if .QR}}<p>Or scan this code with the app on your phone:</p>
<p>{{.QR}}</p>
{{end}}<p>If nothing happens, create an account on <strong>{{.Domain}}</strong> in the app and enter this invitation token when asked: <code>{{.Token}}</code></p>
</body></html>
`))

var notFoundTmpl = template.Must(template.New("notfound").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invitation not found</title></head>
<body><h1>Invitation not found</h1>
<p>This invitation does not exist, has expired or was used already. Ask the person who invited you for a new one.</p>
</body></html>
`))

// serveHTTP answers the landing page of a valid invitation and 404 for
// any other token. It shows only the invitation's stored data.
func (m *Module) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // the token is in the URL
	h.Set("Cache-Control", "no-store")
	token := r.PathValue("token")
	rec, expires, err := m.lookup(r.Context(), token)
	if err != nil {
		w.WriteHeader(http.StatusNotFound)
		notFoundTmpl.Execute(w, nil)
		return
	}
	p := page{Domain: rec.Domain, Username: rec.Username, Token: token,
		Expires: expires.UTC().Format("2 January 2006, 15:04 MST"),
		URI:     template.URL(uri(token, rec)), Clients: clients}
	if rec.Kind == KindContact {
		p.Inviter = rec.Creator
	}
	p.QR = qrSVG(string(p.URI))
	if err := pageTmpl.Execute(w, p); err != nil {
		m.log.Debug("writing a landing page failed", "err", err)
	}
}

// qrLevel and qrModule are the error correction level and the module
// size in pixels of the landing page's QR code.
const (
	qrLevel  = qr.M
	qrModule = 5
)

// qrSVG returns uri as an inline SVG QR code, or nothing if it does not
// fit in one (no invitation URI is that long).
func qrSVG(uri string) template.HTML {
	code, err := qr.Encode([]byte(uri), qrLevel)
	if err != nil {
		return ""
	}
	var b strings.Builder
	code.SVG(&b, qrModule, "QR code of the invitation")
	return template.HTML(b.String()) // our own markup; the label is escaped
}
