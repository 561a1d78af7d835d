package server

import (
	"context"
	"log/slog"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// host is the Host a module receives.
type host struct {
	srv    *Server
	module string
}

func (h *host) Domains() []jid.JID         { return h.srv.Domains() }
func (h *host) IsLocal(domain string) bool { return h.srv.IsLocal(domain) }
func (h *host) Logger() *slog.Logger {
	// The server's logger already removes user addresses.
	return h.srv.log.With("module", h.module)
}
func (h *host) Router() Router { return h.srv.router }

func (h *host) Go(f func(ctx context.Context)) {
	h.srv.wg.Add(1)
	go func() {
		defer h.srv.wg.Done()
		f(h.srv.ctx)
	}()
}

func (h *host) SendTo(ctx context.Context, sess *Session, st *stanza.Stanza) error {
	return h.srv.router.sendTo(ctx, sess, st)
}

func (h *host) Request(ctx context.Context, iq *stanza.Stanza) (*stanza.Stanza, error) {
	return h.srv.router.request(ctx, iq)
}

func (h *host) Sessions(user jid.JID) []*Session {
	return h.srv.sessions.userSessions(user.Bare().String())
}

func (h *host) UserExists(ctx context.Context, user jid.JID) bool {
	return h.srv.local[user.Domainpart()] && user.Localpart() != "" && h.srv.userExists(ctx, user.Bare().String())
}

func (h *host) HTTPURL(domain, path string) string {
	if h.srv.cfg.HTTPBaseURL == nil {
		return ""
	}
	base := h.srv.cfg.HTTPBaseURL(domain)
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/" + strings.TrimLeft(path, "/")
}

var _ Host = (*host)(nil)
