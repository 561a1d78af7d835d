package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
)

// addrPattern matches anything shaped like an XMPP address with a
// localpart (local@domain, with an optional /resource): the characters
// RFC 7622 forbids in localparts, and list separators, end it on the left.
var addrPattern = regexp.MustCompile(`[^\s"&'/:<>@,;]+@[\p{L}\p{N}.\-]+(?:/[^\s"'<>]*)?`)

// Redacted is what log messages show instead of an account's address.
const Redacted = "[user]"

// RedactAddresses replaces every account address in text (local@domain,
// with or without a resource) by "[user]". A log line naming a user
// carries its timestamp, which would tell when that user was active, so
// text that may name users (errors from storage, for example) must pass
// through it before it is logged. Module loggers (Host.Logger) apply it
// to every message and attribute by themselves.
func RedactAddresses(text string) string {
	return addrPattern.ReplaceAllLiteralString(text, Redacted)
}

// PrivacyHandler wraps h so that nothing it writes names a user: account
// addresses in the message and in string, error and other attribute
// values become "[user]" (see RedactAddresses), and the network addresses
// in *net.OpError values anywhere in an error's tree are left out ("read
// tcp 192.0.2.1:5222->198.51.100.7:40000: connection reset by peer" is
// written "read tcp: connection reset by peer"). The server wraps
// Config.Logger with it; programs that embed Kiez can use it for their own
// logs too.
func PrivacyHandler(h slog.Handler) slog.Handler {
	if r, ok := h.(redactHandler); ok {
		return r
	}
	return redactHandler{h}
}

// redactHandler is the handler PrivacyHandler returns.
type redactHandler struct {
	h slog.Handler
}

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return r.h.Enabled(ctx, l)
}

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, RedactAddresses(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redactAttr(a)
	}
	return redactHandler{r.h.WithAttrs(clean)}
}

func (r redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{r.h.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, RedactAddresses(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = redactAttr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, RedactAddresses(redactNetError(x)))
		default:
			return slog.String(a.Key, RedactAddresses(fmt.Sprint(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// redactNetError returns err's text without the addresses of the
// *net.OpErrors in its tree.
func redactNetError(err error) string {
	msg := err.Error()
	var walk func(error)
	walk = func(e error) {
		if oe, ok := e.(*net.OpError); ok && (oe.Source != nil || oe.Addr != nil) {
			safe := &net.OpError{Op: oe.Op, Net: oe.Net, Err: oe.Err}
			msg = strings.ReplaceAll(msg, oe.Error(), safe.Error())
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if x := u.Unwrap(); x != nil {
				walk(x)
			}
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return msg
}
