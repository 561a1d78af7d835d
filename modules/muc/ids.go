package muc

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// occupantID is the XEP-0421 occupant id of the real bare JID user in
// room: stable per room and account, unlinkable across rooms, and not
// revealing the account (an HMAC with the service's secret).
func (m *Module) occupantID(room, user jid.JID) string {
	h := hmac.New(sha256.New, m.secret)
	h.Write([]byte(room.Bare().String()))
	h.Write([]byte{0})
	h.Write([]byte(user.Bare().String()))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}

// newStanzaID returns a XEP-0359 stanza id: the one place the service
// makes them, for the fan-out, history and the archive alike.
func newStanzaID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// forwardTTL is how long an iq forwarded to an occupant waits for its
// answer.
const forwardTTL = 2 * time.Minute

// forwards tracks iqs forwarded to occupants (XEP-0045 §7.9: vCard and
// other queries to room/nick), so that their answers go back to the
// asker under the original id.
type forwards struct {
	mu      sync.Mutex
	max     int
	pending map[string]forward
}

// forward is one iq awaiting its answer.
type forward struct {
	asker   jid.JID // the asker's real full JID
	id      string  // the asker's id
	target  jid.JID // the occupant's real full JID
	via     jid.JID // room/nick of the asker: where the answer comes
	as      jid.JID // room/nick of the target: whence the answer goes
	expires time.Time
}

// add records f and returns the id to forward under; ok is false when too
// many are pending.
func (fs *forwards) add(f forward, now time.Time) (string, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.pending == nil {
		fs.pending = make(map[string]forward)
	}
	if len(fs.pending) >= fs.max {
		for k, p := range fs.pending {
			if now.After(p.expires) {
				delete(fs.pending, k)
			}
		}
		if len(fs.pending) >= fs.max {
			return "", false
		}
	}
	id := "muc-" + newStanzaID()
	f.expires = now.Add(forwardTTL)
	fs.pending[id] = f
	return id, true
}

// take returns and forgets the forward answered by an iq with id from
// from (the target) to via.
func (fs *forwards) take(id string, from, via jid.JID) (forward, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f, ok := fs.pending[id]
	if !ok || !f.target.Equal(from) || !f.via.Equal(via) {
		return forward{}, false
	}
	delete(fs.pending, id)
	return f, true
}
