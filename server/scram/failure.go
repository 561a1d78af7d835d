package scram

import "errors"

// SASL failure conditions (RFC 6120 §6.5) that Failure.Condition takes.
const (
	// EncryptionRequired: a -PLUS mechanism was requested without TLS.
	EncryptionRequired = "encryption-required"
	// InvalidAuthzid: the authorization identity names someone else.
	InvalidAuthzid = "invalid-authzid"
	// InvalidMechanism: the mechanism name is not one of ours.
	InvalidMechanism = "invalid-mechanism"
	// MalformedRequest: bad syntax, bad base64, missing attributes, an
	// unsupported channel binding type or a mandatory extension.
	MalformedRequest = "malformed-request"
	// NotAuthorized: a wrong proof, an unknown user, a wrong nonce, channel
	// binding data that does not match, or a downgrade ('y' flag).
	NotAuthorized = "not-authorized"
	// CredentialsExpired: the credential was right but is no longer
	// valid (an expired XEP-0484 token).
	CredentialsExpired = "credentials-expired"
	// TemporaryAuthFailure: the credential lookup failed.
	TemporaryAuthFailure = "temporary-auth-failure"
)

// ErrUnsupportedBinding is wrapped by the Failure for a -PLUS exchange
// whose channel binding type this connection cannot provide (such as
// tls-unique over TLS 1.3, which RFC 9266 leaves undefined).
var ErrUnsupportedBinding = errors.New("scram: unsupported channel binding type")

// Failure is an authentication failure to report with a SASL <failure/>
// element.
type Failure struct {
	// Condition is the RFC 6120 §6.5 condition, one of the constants above.
	Condition string
	// Text is a short explanation that is safe to send to the client in
	// <text/>: it never tells an unknown user from a wrong password.
	Text string
	// Err is the underlying error, if any, for logs only: never send it.
	Err error
}

// Error returns the condition, the text and the underlying error.
func (f *Failure) Error() string {
	s := "scram: " + f.Condition
	if f.Text != "" {
		s += ": " + f.Text
	}
	if f.Err != nil {
		s += ": " + f.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (f *Failure) Unwrap() error { return f.Err }

func fail(condition, text string) *Failure {
	return &Failure{Condition: condition, Text: text}
}

func malformed(text string) *Failure { return fail(MalformedRequest, text) }

// errAuthFailed is shared by every failure that could otherwise reveal
// whether the user exists.
func errAuthFailed() *Failure { return fail(NotAuthorized, "authentication failed") }
