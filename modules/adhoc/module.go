// Package adhoc hosts XEP-0050 Ad-Hoc Commands at the server's address:
// other modules supply commands (such as the message archive's "Delete my
// message archive"), and local users discover and run them.
//
// A command is a Handler that runs one stage. A single-stage command
// answers Completed at once; a multi-stage one answers Executing with a
// data form and the Handler for the next stage, and the module keeps the
// session in memory, bound to the requester's full JID, until it
// completes, is cancelled or expires.
//
// Stages exchange XEP-0004 data forms as *form.Form values (package
// github.com/kiez-im/kiez/stanza/form); a Handler that showed a form can
// check the answer with req.Form.Validate(shown).
package adhoc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

// NS is the XEP-0050 namespace, also the disco node listing commands.
const NS = "http://jabber.org/protocol/commands"

// Action is what a requester asks of a command (XEP-0050 §3.4).
type Action string

// The actions of XEP-0050.
const (
	Execute  Action = "execute"
	Next     Action = "next"
	Prev     Action = "prev"
	Complete Action = "complete"
	Cancel   Action = "cancel"
)

// Status is the state of a command session after a stage.
type Status string

// The statuses of XEP-0050.
const (
	Executing Status = "executing"
	Completed Status = "completed"
	Canceled  Status = "canceled"
)

// Note is a message for the user in a command answer (XEP-0050 §3.4).
type Note struct {
	// Type is "info" (the default), "warn" or "error".
	Type string
	Text string
}

// Request is one stage's input.
type Request struct {
	// Action is Execute for the first stage, then the action the user
	// chose: Next or Complete (or Prev when offered).
	Action Action
	// Form is the data form the user submitted; nil in the first stage
	// and when the request carried none. It is well-formed (form.Parse
	// accepted it) but its values are unchecked: see form.Form.Validate.
	Form *form.Form
	// Lang is the requested language (xml:lang), possibly empty.
	Lang string
}

// Response is one stage's output.
type Response struct {
	// Status is Executing to show Form and wait for the user, Completed or
	// Canceled to end the session.
	Status Status
	// Form is the data form to show (Executing) or a result form.
	Form  *form.Form
	Notes []Note
	// Actions are the actions offered while Executing, the first being the
	// default; empty means Complete only.
	Actions []Action
	// Next runs the next stage while Executing (required then).
	Next Handler
}

// Handler runs one stage of a command for user, the requester's full JID
// (always a local account's session). An error that is a mstanza.Error is
// sent as it is and keeps the session; any other error ends it with
// internal-server-error.
type Handler func(ctx context.Context, user jid.JID, req Request) (Response, error)

// Command is an ad-hoc command the server offers.
type Command struct {
	// Node identifies the command, for example "urn:xmpp:mam#delete".
	Node string
	// Name is the human-readable name shown in command lists.
	Name string
	// Handler runs the first stage.
	Handler Handler
}

// Options configure the module.
type Options struct {
	// SessionTimeout is how long a multi-stage session waits for the
	// user's next step (default 5 minutes).
	SessionTimeout time.Duration
	// MaxSessions bounds the open sessions of one full JID; starting one
	// more drops the oldest (default 8).
	MaxSessions int
}

// Deps are what the module builds on: the commands it offers, which
// other modules supply (such as mam's DeleteArchiveCommand).
type Deps struct {
	// Commands are the commands offered, listed in this order. Nodes
	// must be unique and non-empty, and every command needs a Handler.
	// None is allowed: the module then lists an empty command node.
	Commands []Command
}

// Module implements XEP-0050. Create it with New.
type Module struct {
	cmds    []Command
	byNode  map[string]Command
	timeout time.Duration
	maxSess int
	now     func() time.Time
	host    server.Host

	mu       sync.Mutex
	sessions map[string]*session // by session ID
}

// session is a multi-stage command waiting for its requester.
type session struct {
	id      string
	node    string
	owner   string // full JID
	next    Handler
	actions []Action
	expires time.Time
	started time.Time
}

// New returns the module offering deps.Commands. It fails for a negative
// option, an empty or duplicate node, or a command without a Handler.
func New(opts Options, deps Deps) (*Module, error) {
	cmds := deps.Commands
	if opts.SessionTimeout < 0 || opts.MaxSessions < 0 {
		return nil, errors.New("adhoc: negative option")
	}
	if opts.SessionTimeout == 0 {
		opts.SessionTimeout = 5 * time.Minute
	}
	if opts.MaxSessions == 0 {
		opts.MaxSessions = 8
	}
	m := &Module{
		byNode:   make(map[string]Command, len(cmds)),
		timeout:  opts.SessionTimeout,
		maxSess:  opts.MaxSessions,
		now:      time.Now,
		sessions: make(map[string]*session),
	}
	for _, c := range cmds {
		switch {
		case c.Node == "" || c.Node == NS:
			return nil, fmt.Errorf("adhoc: invalid command node %q", c.Node)
		case c.Handler == nil:
			return nil, fmt.Errorf("adhoc: command %q has no handler", c.Node)
		}
		if _, dup := m.byNode[c.Node]; dup {
			return nil, fmt.Errorf("adhoc: two commands on node %q", c.Node)
		}
		m.byNode[c.Node] = c
		m.cmds = append(m.cmds, c)
	}
	return m, nil
}

// Name returns "adhoc".
func (*Module) Name() string { return "adhoc" }

// Init keeps the host, to tell local requesters from remote ones.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	m.host = h
	return nil
}

// Features advertises XEP-0050 on the server.
func (*Module) Features(t server.Target) []string {
	if t == server.TargetHost {
		return []string{NS}
	}
	return nil
}

// DiscoNode answers disco#items and disco#info for the command list node
// and for each command node at the server (XEP-0050 §2).
func (m *Module) DiscoNode(ctx context.Context, t server.Target, node string, from, to jid.JID) (server.DiscoNode, bool) {
	if t != server.TargetHost {
		return server.DiscoNode{}, false
	}
	if node == NS {
		n := server.DiscoNode{
			Identities: []server.Identity{{Category: "automation", Type: "command-list"}},
		}
		for _, c := range m.cmds {
			n.Items = append(n.Items, server.DiscoItem{JID: to, Node: c.Node, Name: c.Name})
		}
		return n, true
	}
	c, ok := m.byNode[node]
	if !ok {
		return server.DiscoNode{}, false
	}
	return server.DiscoNode{
		Identities: []server.Identity{{Category: "automation", Type: "command-node", Name: c.Name}},
		Features:   []string{NS, form.NS},
	}, true
}

// IQRoutes serves command execution at the server's address.
func (m *Module) IQRoutes() []server.IQRoute {
	return []server.IQRoute{
		{Type: mstanza.SetIQ, Payload: xml.Name{Space: NS, Local: "command"}, To: server.TargetHost, Handler: server.IQHandlerFunc(m.command)},
	}
}

// SessionEnded drops the command sessions of a stream that ended.
func (m *Module) SessionEnded(_ context.Context, s *server.Session) {
	owner := s.JID().String()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, sess := range m.sessions {
		if sess.owner == owner {
			delete(m.sessions, id)
		}
	}
}

func badRequest(text string) mstanza.Error {
	return stanza.NewError(mstanza.Modify, mstanza.BadRequest, text)
}

// command runs one stage of a command.
func (m *Module) command(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	if m.host != nil && (iq.From.Localpart() == "" || !m.host.IsLocal(iq.From.Domainpart())) {
		// Commands are for local accounts only.
		return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.Forbidden})
	}
	start, r, _ := iq.Payload()
	var node, sid string
	var action Action
	lang := iq.Lang
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "node":
			node = a.Value
		case a.Name.Space == "" && a.Name.Local == "action":
			action = Action(a.Value)
		case a.Name.Space == "" && a.Name.Local == "sessionid":
			sid = a.Value
		case a.Name.Local == "lang" && (a.Name.Space == stanza.NSXML || a.Name.Space == "xml"):
			lang = a.Value
		}
	}
	if action == "" {
		action = Execute
	}
	switch action {
	case Execute, Next, Prev, Complete, Cancel:
	default:
		return w.Error(badRequest("malformed action"))
	}
	cmd, ok := m.byNode[node]
	if !ok {
		return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ItemNotFound})
	}
	submitted, err := commandForm(r)
	if err != nil {
		var se *form.SyntaxError
		if errors.As(err, &se) {
			return w.Error(se.StanzaError())
		}
		return w.Error(badRequest("bad payload"))
	}
	cancel := action == Cancel || (submitted != nil && submitted.Type == form.TypeCancel)
	user := iq.From
	if sid == "" {
		if action != Execute {
			return w.Error(badRequest("bad action: no session"))
		}
		return m.run(ctx, w, cmd, nil, user, Request{Action: Execute, Lang: lang})
	}

	m.mu.Lock()
	sess, ok := m.sessions[sid]
	if ok && m.now().After(sess.expires) {
		delete(m.sessions, sid)
		ok = false
	}
	if ok && (sess.owner != user.String() || sess.node != node) {
		m.mu.Unlock()
		return w.Error(badRequest("bad sessionid"))
	}
	if ok && cancel {
		delete(m.sessions, sid)
	}
	m.mu.Unlock()
	if !ok {
		return w.Error(stanza.NewError(mstanza.Cancel, mstanza.NotAllowed, "session expired"))
	}
	if cancel {
		return w.Result(m.answer(node, sid, Response{Status: Canceled}))
	}
	if action == Execute {
		action = sess.actions[0]
	}
	if !slices.Contains(sess.actions, action) {
		return w.Error(badRequest("bad action"))
	}
	return m.run(ctx, w, cmd, sess, user, Request{Action: action, Form: submitted, Lang: lang})
}

// run calls the stage's handler (the command's, or the session's next)
// and answers with its response, keeping or dropping the session.
func (m *Module) run(ctx context.Context, w server.ResponseWriter, cmd Command, sess *session, user jid.JID, req Request) error {
	h := cmd.Handler
	if sess != nil {
		h = sess.next
	}
	resp, err := h(ctx, user, req)
	if err != nil {
		var se mstanza.Error
		if errors.As(err, &se) {
			return w.Error(se)
		}
		if sess != nil {
			m.drop(sess.id)
		}
		return fmt.Errorf("adhoc: command %s: %w", cmd.Node, err)
	}
	switch resp.Status {
	case Executing:
		if resp.Next == nil {
			if sess != nil {
				m.drop(sess.id)
			}
			return fmt.Errorf("adhoc: command %s: executing without a next stage", cmd.Node)
		}
		if len(resp.Actions) == 0 {
			resp.Actions = []Action{Complete}
		}
		if sess == nil {
			sess = &session{id: newID(), node: cmd.Node, owner: user.String(), started: m.now()}
		}
		m.keep(sess, resp)
		return w.Result(m.answer(cmd.Node, sess.id, resp))
	case Completed, Canceled:
		id := ""
		if sess != nil {
			id = sess.id
			m.drop(id)
		} else {
			id = newID()
		}
		return w.Result(m.answer(cmd.Node, id, resp))
	}
	if sess != nil {
		m.drop(sess.id)
	}
	return fmt.Errorf("adhoc: command %s: invalid status %q", cmd.Node, resp.Status)
}

// keep stores or updates a waiting session, expiring old ones and
// bounding the sessions per requester.
func (m *Module) keep(sess *session, resp Response) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	sess.next = resp.Next
	sess.actions = resp.Actions
	sess.expires = now.Add(m.timeout)
	var mine []*session
	for id, s := range m.sessions {
		switch {
		case now.After(s.expires):
			delete(m.sessions, id)
		case s.owner == sess.owner && s.id != sess.id:
			mine = append(mine, s)
		}
	}
	if len(mine) >= m.maxSess {
		slices.SortFunc(mine, func(a, b *session) int { return a.started.Compare(b.started) })
		for _, s := range mine[:len(mine)-m.maxSess+1] {
			delete(m.sessions, s.id)
		}
	}
	m.sessions[sess.id] = sess
}

func (m *Module) drop(id string) {
	m.mu.Lock()
	delete(m.sessions, id)
	m.mu.Unlock()
}

// answer builds the <command/> element of a response.
func (m *Module) answer(node, sid string, resp Response) xml.TokenReader {
	attrs := []xml.Attr{stanza.Attr("node", node), stanza.Attr("sessionid", sid), stanza.Attr("status", string(resp.Status))}
	var children []xml.TokenReader
	if resp.Status == Executing {
		var acts []xml.TokenReader
		for _, a := range []Action{Prev, Next, Complete} {
			if slices.Contains(resp.Actions, a) {
				acts = append(acts, stanza.Elem(xml.Name{Space: NS, Local: string(a)}, nil))
			}
		}
		children = append(children, stanza.Elem(xml.Name{Space: NS, Local: "actions"},
			[]xml.Attr{stanza.Attr("execute", string(resp.Actions[0]))}, acts...))
	}
	for _, n := range resp.Notes {
		typ := n.Type
		if typ == "" {
			typ = "info"
		}
		children = append(children, stanza.Elem(xml.Name{Space: NS, Local: "note"}, []xml.Attr{stanza.Attr("type", typ)},
			stanza.Tokens(xml.CharData(n.Text))))
	}
	if resp.Form != nil {
		children = append(children, resp.Form.TokenReader())
	}
	return stanza.Elem(xml.Name{Space: NS, Local: "command"}, attrs, children...)
}

// commandForm returns the data form among the children of <command/>
// (r reads the whole command element), or nil.
func commandForm(r xml.TokenReader) (*form.Form, error) {
	for cmd := range stanza.Elements(stanza.Resolve(r, NS)) {
		if x, ok := cmd.Child(xml.Name{Space: form.NS, Local: "x"}); ok {
			return form.Parse(stanza.Tokens(x.Tokens()...))
		}
	}
	return nil, nil
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	_ server.Module          = (*Module)(nil)
	_ server.Initializer     = (*Module)(nil)
	_ server.IQProvider      = (*Module)(nil)
	_ server.FeatureProvider = (*Module)(nil)
	_ server.NodeProvider    = (*Module)(nil)
	_ server.SessionEnder    = (*Module)(nil)
)
