package server

import (
	"fmt"
	"strings"
)

// Stream error conditions of RFC 6120 §4.9.3 used by the server.
const (
	condBadFormat           = "bad-format"
	condConflict            = "conflict"
	condConnectionTimeout   = "connection-timeout"
	condHostUnknown         = "host-unknown"
	condInternalServerError = "internal-server-error"
	condInvalidNamespace    = "invalid-namespace"
	condInvalidXML          = "invalid-xml"
	condNotAuthorized       = "not-authorized"
	condNotWellFormed       = "not-well-formed"
	condPolicyViolation     = "policy-violation"
	condResourceConstraint  = "resource-constraint"
	condRestrictedXML       = "restricted-xml"
	condSystemShutdown      = "system-shutdown"
	condUnsupportedEncoding = "unsupported-encoding"
	condUnsupportedStanza   = "unsupported-stanza-type"
	condUnsupportedVersion  = "unsupported-version"
	condUndefined           = "undefined-condition"
)

// StreamError is a stream-level error (RFC 6120 §4.9) that ends a stream.
type StreamError struct {
	Condition string
	Text      string
	app       string // an application-specific condition element, serialised
}

func (e *StreamError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("stream error %s: %s", e.Condition, e.Text)
	}
	return "stream error " + e.Condition
}

func streamErr(cond, text string) *StreamError { return &StreamError{Condition: cond, Text: text} }

// bytes renders the <stream:error/> element.
func (e *StreamError) bytes() []byte {
	var b strings.Builder
	b.WriteString("<stream:error><")
	b.WriteString(e.Condition)
	b.WriteString(` xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`)
	if e.Text != "" {
		b.WriteString(`<text xmlns="urn:ietf:params:xml:ns:xmpp-streams">`)
		b.WriteString(escapeString(e.Text))
		b.WriteString("</text>")
	}
	b.WriteString(e.app)
	b.WriteString("</stream:error>")
	return []byte(b.String())
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;")

func escapeString(s string) string { return xmlEscaper.Replace(s) }
