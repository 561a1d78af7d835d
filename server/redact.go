package server

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
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

// redactHandler is a slog.Handler that removes account addresses from the
// message and from string, error and other attribute values.
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
			return slog.String(a.Key, RedactAddresses(x.Error()))
		default:
			return slog.String(a.Key, RedactAddresses(fmt.Sprint(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
