// Package form reads and writes XEP-0004 data forms (<x
// xmlns='jabber:x:data'/>) on Kiez's stanza representation: elements as
// balanced []xml.Token with explicit namespaces (see package stanza).
//
// A Form is a plain value: build one as a literal and write it with
// TokenReader; read a submitted one with Parse, check it against the form
// that was shown with Validate, and read its values with Value, Bool,
// Field and the typed getters of Field. FormType and FormTypeField handle
// the hidden FORM_TYPE field of XEP-0068. Multi-item results (<reported/>
// and <item/>) are Reported and Items. Children of a field from other
// namespaces, such as XEP-0122 validation or XEP-0221 media, are kept as
// tokens in Field.Extra and written back as they are.
//
// Parse reports input that is not a data form with ErrNotForm and a form
// that breaks XEP-0004 with a *SyntaxError; Validate and the getters report
// bad values with a *FieldError. Both error types have a StanzaError method
// giving the bad-request error to answer.
//
// # Why not mellium.im/xmpp/form
//
// mellium's package (v0.22.0) was evaluated first and is not used, because:
//
//   - It reads forms only through encoding/xml's reflection decoder
//     (UnmarshalXML on an *xml.Decoder), so our tokens would need an
//     xml.NewTokenDecoder; reading the archive's query form that way took
//     5 times as long as Parse, with 69 allocations against 27.
//   - Its Data type has no accessor for the form's type, so a submission
//     of type cancel (XEP-0050 cancels a command with one) cannot be told
//     from a submit.
//   - It rejects <reported/> and <item/> ("unexpected element"), drops the
//     children of a field from other namespaces (XEP-0122 validation, which
//     the archive's query form needs), and turns a field without a type,
//     as submissions send them, into text-single, whose Get returns only
//     the first of several values.
//   - It does not round-trip: writing drops empty values (<value/>), every
//     value but the first of single-value types (including hidden fields),
//     and boolean and JID values it does not like, writes an empty label
//     on options, and writes options only for list types.
//   - Values are held in a map[string]interface{} read back with type
//     assertions, and errors are encoding/xml's or plain strings, with no
//     type a caller can turn into a stanza error.
//
// This package grew out of the ad-hoc commands module's copy and keeps its
// field names, so that code written against that copy reads the same.
package form
