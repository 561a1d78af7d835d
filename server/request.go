package server

import (
	"context"
	"errors"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/stanza"
)

// ErrNotRequest is returned by Host.Request for a stanza that is not an
// iq get or set with a from and a to address.
var ErrNotRequest = errors.New("server: a request is an iq get or set with from and to")

// requests are the iqs the server (for a module) sent and waits answers
// for, by id.
type requests struct {
	mu      sync.Mutex
	pending map[string]*pendingRequest
}

type pendingRequest struct {
	from, to jid.JID
	answer   chan *stanza.Stanza // buffered, one answer
}

// request sends iq and waits for its answer (see Host.Request).
func (r *router) request(ctx context.Context, iq *stanza.Stanza) (*stanza.Stanza, error) {
	if iq.Kind != stanza.IQKind || (iq.Type != stanza.Get && iq.Type != stanza.Set) || iq.From.String() == "" || iq.To.String() == "" {
		return nil, ErrNotRequest
	}
	req := iq.Clone()
	p := &pendingRequest{from: req.From, to: req.To, answer: make(chan *stanza.Stanza, 1)}
	rs := &r.srv.requests
	rs.mu.Lock()
	if rs.pending == nil {
		rs.pending = make(map[string]*pendingRequest)
	}
	for {
		req.ID = newID()
		if _, taken := rs.pending[req.ID]; !taken {
			break
		}
	}
	rs.pending[req.ID] = p
	rs.mu.Unlock()
	defer func() {
		rs.mu.Lock()
		delete(rs.pending, req.ID)
		rs.mu.Unlock()
	}()
	if err := r.Route(ctx, req); err != nil {
		return nil, err
	}
	select {
	case a := <-p.answer:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answer takes st if it answers a pending request: an iq result or error
// with the request's id, from the address the request went to (or, for a
// request to a bare JID or a domain, one of its resources) and to the
// address it came from.
func (r *router) answer(st *stanza.Stanza) bool {
	if st.Kind != stanza.IQKind || (st.Type != stanza.Result && st.Type != stanza.Error) {
		return false
	}
	rs := &r.srv.requests
	rs.mu.Lock()
	p, ok := rs.pending[st.ID]
	if ok && answers(p, st) {
		delete(rs.pending, st.ID)
	} else {
		ok = false
	}
	rs.mu.Unlock()
	if ok {
		p.answer <- st
	}
	return ok
}

func answers(p *pendingRequest, st *stanza.Stanza) bool {
	if !st.To.Equal(p.from) {
		return false
	}
	switch {
	case st.From.Equal(p.to):
		return true
	case p.to.Resourcepart() == "":
		// A bare JID or a domain: it, or one of its resources.
		return st.From.Bare().Equal(p.to)
	}
	return false
}
