package scram

import (
	"bytes"
	"unicode/utf8"
)

// maxPlainField is the longest authzid, username or password ParsePlain
// accepts, the size RFC 4616 §2 requires servers to support.
const maxPlainField = 255

// ParsePlain parses a PLAIN message (RFC 4616 §2):
//
//	message = [authzid] UTF8NUL authcid UTF8NUL passwd
//
// The username (authcid) and password must not be empty; every field must be
// valid UTF-8 of at most 255 bytes. Errors are *Failure values with
// MalformedRequest. Check the password with VerifyPlain and the authzid as
// ServerConfig.Domain describes.
func ParsePlain(msg []byte) (authzid, username, password string, err error) {
	if len(msg) > 3*maxPlainField+2 {
		return "", "", "", malformed("PLAIN message too long")
	}
	fields := bytes.Split(msg, []byte{0})
	if len(fields) != 3 {
		return "", "", "", malformed("PLAIN message needs exactly three fields")
	}
	for _, f := range fields {
		if len(f) > maxPlainField {
			return "", "", "", malformed("PLAIN field too long")
		}
		if !utf8.Valid(f) {
			return "", "", "", malformed("PLAIN field is not UTF-8")
		}
	}
	if len(fields[1]) == 0 || len(fields[2]) == 0 {
		return "", "", "", malformed("empty PLAIN username or password")
	}
	return string(fields[0]), string(fields[1]), string(fields[2]), nil
}
