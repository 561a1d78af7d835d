// Package vcard stores and serves XEP-0054 vcard-temp vCards: each user
// sets their own vCard, and anyone may read the vCard of a local account.
// The vCard is kept as the XML the user sent, in a storage.KV under the
// key "vcard".
//
// With Deps.Avatar (modules/pep), the vCard's PHOTO is the account's
// XEP-0084 PEP avatar instead (XEP-0398): a PHOTO set is published there
// and shown from there, and the hash of XEP-0153 is added to the
// presence the account's clients send.
package vcard

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// NS is the vcard-temp namespace, advertised as a disco#info feature of
// the server and of accounts.
const NS = "vcard-temp"

// Key is the storage.KV key under which a user's vCard is kept.
const Key = "vcard"

// DefaultMaxSize is the largest vCard accepted when Options.MaxSize is
// zero: 128 KiB of serialised XML, photo included.
const DefaultMaxSize = 128 << 10

// Options configure the module. The zero value is ready to use.
type Options struct {
	// MaxSize is the largest vCard, in bytes of serialised XML including
	// an embedded photo, that a user may store. Larger ones are refused
	// with not-acceptable. Zero means DefaultMaxSize; the server's
	// Limits.MaxStanzaSize caps it too.
	MaxSize int
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the vCards (required), under Key. It may be shared with
	// other modules.
	Store storage.KV
	// Avatar, if set, keeps the vCard's PHOTO: pep's Module.Avatars, whose
	// module must be in Config.Modules too.
	Avatar Avatar
}

// Avatar keeps an account's avatar elsewhere (its XEP-0084 PEP nodes);
// modules/pep's Avatars implements it. A stanza.Failure returned is the
// answer to the client.
type Avatar interface {
	// Avatar returns user's avatar, its MIME type and bytes, if requester
	// may see it; ok is false if there is none or requester may not.
	Avatar(ctx context.Context, user, requester jid.JID) (typ string, data []byte, ok bool, err error)
	// AvatarHash returns the SHA-1 of user's avatar in hex, "" if user
	// has none. It is asked for every available presence.
	AvatarHash(ctx context.Context, user jid.JID) (string, error)
	// SetAvatar makes data (of MIME type typ, "" if unknown) user's
	// avatar, or removes it for empty data.
	SetAvatar(ctx context.Context, user jid.JID, typ string, data []byte) error
}

// Module stores vCards. Create it with New.
type Module struct {
	maxSize int
	store   storage.KV
	avatar  Avatar
	log     *slog.Logger
	// moved holds the accounts whose stored vCard was looked at for a
	// PHOTO since the server started (see SessionStarted).
	moved sync.Map
}

// New returns the vCard module keeping vCards in deps.Store. It fails
// without a store or for a negative MaxSize.
func New(opts Options, deps Deps) (*Module, error) {
	if deps.Store == nil {
		return nil, errors.New("vcard: no store")
	}
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("vcard: MaxSize %d is negative", opts.MaxSize)
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	return &Module{maxSize: opts.MaxSize, store: deps.Store, avatar: deps.Avatar, log: slog.New(slog.DiscardHandler)}, nil
}

// Name returns "vcard".
func (*Module) Name() string { return "vcard" }

// Init keeps the logger.
func (m *Module) Init(_ context.Context, h server.Host) error {
	m.log = h.Logger()
	return nil
}

var vCardName = xml.Name{Space: NS, Local: "vCard"}

// IQRoutes answers <vCard xmlns='vcard-temp'/> gets and sets:
//   - a set without 'to' or to one's own bare JID stores the vCard;
//   - a set to another account is refused with forbidden;
//   - a get to oneself or to any local account returns the stored vCard,
//     or an empty one if there is none (XEP-0054 §3.1);
//   - a get to the server's domain returns an empty vCard: the server
//     has none.
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.SetIQ, Payload: vCardName, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.set)},
		{Type: mstanza.SetIQ, Payload: vCardName, To: server.TargetBare, Handler: server.IQHandlerFunc(forbidden)},
		{Type: mstanza.GetIQ, Payload: vCardName, To: server.TargetSelf, Handler: server.IQHandlerFunc(m.get)},
		{Type: mstanza.GetIQ, Payload: vCardName, To: server.TargetBare, Handler: server.IQHandlerFunc(m.get)},
		{Type: mstanza.GetIQ, Payload: vCardName, To: server.TargetHost, Handler: server.IQHandlerFunc(empty)},
	}
}

// FeatureConversion is XEP-0398's feature, advertised on accounts with
// Deps.Avatar.
const FeatureConversion = "urn:xmpp:pep-vcard-conversion:0"

// Features advertises vcard-temp on the server's domain and on accounts,
// as Prosody does, and with Deps.Avatar the conversion on accounts.
func (m *Module) Features(t server.Target) []string {
	switch {
	case t == server.TargetBare && m.avatar != nil:
		return []string{NS, FeatureConversion}
	case t == server.TargetHost || t == server.TargetBare:
		return []string{NS}
	}
	return nil
}

// UserData names what the module keeps per user.
func (*Module) UserData() []string { return []string{"vCard"} }

// DeleteUser deletes the user's vCard, and nothing else of theirs in the
// store.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	m.moved.Delete(user.Bare().String())
	if err := m.store.Delete(ctx, user.Bare().String(), Key); err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	return nil
}

// ExportUser writes the user's stored vCard element, if any, as XEP-0227
// puts it inside <user/>.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	toks, err := m.load(ctx, user.Bare())
	if err != nil || toks == nil {
		return err
	}
	for _, t := range toks {
		if err := w.EncodeToken(t); err != nil {
			return err
		}
	}
	return nil
}

// owner returns the account an iq concerns: the addressee, or the sender
// when the iq has no 'to'.
func owner(iq stanza.IQ) jid.JID {
	if iq.To.Localpart() != "" {
		return iq.To.Bare()
	}
	return iq.From.Bare()
}

func (m *Module) set(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	card, _ := iq.PayloadElement()
	var buf bytes.Buffer
	if err := stanza.WriteTokens(&buf, card.Tokens(), ""); err != nil {
		return err
	}
	if buf.Len() > m.maxSize {
		return w.Error(stanza.NewError(mstanza.Modify, mstanza.NotAcceptable, "vCard of "+strconv.Itoa(buf.Len())+" bytes exceeds the limit of "+strconv.Itoa(m.maxSize)))
	}
	if m.avatar != nil {
		toks, err := m.setAvatar(ctx, iq.From.Bare(), card.Tokens(), true)
		if err != nil {
			return err
		}
		buf.Reset()
		if err := stanza.WriteTokens(&buf, toks, ""); err != nil {
			return err
		}
	}
	if err := m.store.Put(ctx, iq.From.Bare().String(), Key, buf.Bytes()); err != nil {
		return fmt.Errorf("vcard: %w", err)
	}
	return w.Result(nil)
}

func (m *Module) get(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	user := owner(iq)
	toks, err := m.load(ctx, user)
	if err != nil {
		return err
	}
	if m.avatar != nil {
		if toks, err = m.withAvatar(ctx, user, iq.From, toks); err != nil {
			return err
		}
	}
	if toks == nil {
		return empty(ctx, iq, w)
	}
	return w.Result(stanza.Tokens(toks...))
}

// empty answers with an empty vCard.
func empty(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	return w.Result(stanza.Elem(vCardName, nil))
}

// forbidden refuses to change another user's vCard.
func forbidden(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	return w.Error(mstanza.Error{Type: mstanza.Auth, Condition: mstanza.Forbidden})
}

// load returns the tokens of user's stored vCard element, or nil if
// there is none.
func (m *Module) load(ctx context.Context, user jid.JID) ([]xml.Token, error) {
	data, err := m.store.Get(ctx, user.String(), Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vcard: %w", err)
	}
	toks, err := stanza.ParseElement(data)
	if err != nil {
		return nil, fmt.Errorf("vcard: stored vCard: %w", err)
	}
	return toks, nil
}

var (
	_ server.Module           = (*Module)(nil)
	_ server.Initializer      = (*Module)(nil)
	_ server.SessionStarter   = (*Module)(nil)
	_ server.RouteProvider    = (*Module)(nil)
	_ server.IQProvider       = (*Module)(nil)
	_ server.FeatureProvider  = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
)
