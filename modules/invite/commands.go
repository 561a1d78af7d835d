package invite

import (
	"context"
	"errors"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

// InviteNode is the node of the ad-hoc command "Invite a friend"
// (XEP-0401 §5.2).
const InviteNode = "urn:xmpp:invite#invite"

// Commands returns the ad-hoc commands for modules/adhoc: "Invite a
// friend", unless Options.AllowUsers is false.
func (m *Module) Commands() []adhoc.Command {
	if !m.allowUsers {
		return nil
	}
	return []adhoc.Command{{Node: InviteNode, Name: "Invite a friend", Handler: m.inviteCommand}}
}

// inviteCommand creates a contact invitation from the user and answers
// XEP-0401's result form: uri, landing-url and expire.
func (m *Module) inviteCommand(ctx context.Context, user jid.JID, _ adhoc.Request) (adhoc.Response, error) {
	inv, err := m.Create(ctx, CreateOptions{Domain: user.Domainpart(), Creator: user.Bare(), Contact: true})
	if errors.Is(err, ErrTooMany) {
		return adhoc.Response{}, stanza.NewError(mstanza.Wait, mstanza.ResourceConstraint,
			"you have too many unused invitations: wait until they are used or expire")
	}
	if err != nil {
		return adhoc.Response{}, err
	}
	f := &form.Form{Type: form.TypeResult, Title: "Invitation created",
		Instructions: "Send this link to the person you invite. It works once, until it expires.",
		Fields: []form.Field{
			{Var: "uri", Type: form.TextSingle, Label: "Invitation URI", Values: []string{inv.URI}},
			{Var: "expire", Type: form.TextSingle, Label: "Valid until", Values: []string{inv.Expires.UTC().Format(time.RFC3339)}},
		}}
	if inv.LandingURL != "" {
		f.Fields = append(f.Fields, form.Field{Var: "landing-url", Type: form.TextSingle, Label: "Invitation web page", Values: []string{inv.LandingURL}})
	}
	return adhoc.Response{Status: adhoc.Completed, Form: f}, nil
}
