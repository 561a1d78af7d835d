package server

import (
	"context"
	"encoding/xml"
	"time"

	"github.com/kiez-im/kiez/stanza"
)

const nsPing = "urn:xmpp:ping"

// keepalive pings sessions that have been silent for PingAfter and closes
// those that do not answer within PingTimeout (XEP-0199 §4.2).
func (s *Server) keepalive(ctx context.Context) {
	every := min(s.limits.PingAfter, s.limits.PingTimeout) / 4
	t := time.NewTicker(max(every, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for _, sess := range s.sessions.all() {
			if sess.detached() {
				continue // waiting for its client to resume it
			}
			sent := sess.pingSent.Load()
			switch {
			case sent != 0 && now.Sub(time.Unix(0, sent)) > s.limits.PingTimeout:
				if sess.resumable() {
					// The connection is dead: keep the session for its
					// client to resume (XEP-0198).
					sess.connLost()
					continue
				}
				sess.close(streamErr(condConnectionTimeout, ""))
			case sent == 0 && now.Sub(time.Unix(0, sess.lastActive.Load())) > s.limits.PingAfter:
				sess.pingSent.Store(now.UnixNano())
				sess.Send(&stanza.Stanza{
					Kind: stanza.IQKind, ID: "ka-" + newID()[:8], Type: stanza.Get,
					From: sess.jid.Domain(), To: sess.jid,
					Inner: []xml.Token{xml.StartElement{Name: xml.Name{Space: nsPing, Local: "ping"}}, xml.EndElement{Name: xml.Name{Space: nsPing, Local: "ping"}}},
				})
			}
		}
	}
}
