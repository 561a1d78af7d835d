package stanza

import (
	"encoding/xml"

	mstanza "mellium.im/xmpp/stanza"
)

// Failure is a stanza error as a Go error, for filters and handlers that
// refuse a stanza: a defined condition (RFC 6120 §8.3.3) and, optionally,
// an application-specific condition element (§8.3.2), such as XEP-0191's
// <blocked xmlns='urn:xmpp:blocking:errors'/>.
type Failure struct {
	// Err is the defined condition, its type and text.
	Err mstanza.Error
	// App names the application-specific condition element; the zero
	// Name means none.
	App xml.Name
	// AppAttrs are the attributes of the App element, such as the
	// feature of XEP-0060's <unsupported feature='…'/>.
	AppAttrs []xml.Attr
	// AppInner are the App element's children, with explicit namespaces,
	// such as XEP-0363's <max-file-size/> inside <file-too-large/>.
	AppInner []xml.Token
}

// NewError returns a stanza error with the type, condition and (if not
// empty) a text for humans, without a language tag: the one constructor
// modules use, so every error the server sends is built alike.
func NewError(typ mstanza.ErrorType, cond mstanza.Condition, text string) mstanza.Error {
	e := mstanza.Error{Type: typ, Condition: cond}
	if text != "" {
		e.Text = map[string]string{"": text}
	}
	return e
}

// NewFailure returns a Failure with the type, condition and text, as
// NewError builds them.
func NewFailure(typ mstanza.ErrorType, cond mstanza.Condition, text string) Failure {
	return Failure{Err: NewError(typ, cond, text)}
}

// Error implements error.
func (f Failure) Error() string {
	if f.App.Local != "" {
		return f.Err.Error() + " (" + f.App.Local + ")"
	}
	return f.Err.Error()
}

// FailureReply returns the error stanza answering s with f, as
// ErrorReply does, with f's application-specific condition element after
// the defined condition.
func (s *Stanza) FailureReply(f Failure) *Stanza {
	r := s.ErrorReply(f.Err)
	if f.App.Local == "" {
		return r
	}
	// Insert <app/> before </error>, the last token.
	end := r.Inner[len(r.Inner)-1]
	r.Inner = append(r.Inner[:len(r.Inner)-1], xml.StartElement{Name: f.App, Attr: f.AppAttrs})
	r.Inner = append(r.Inner, f.AppInner...)
	r.Inner = append(r.Inner, xml.EndElement{Name: f.App}, end)
	return r
}
