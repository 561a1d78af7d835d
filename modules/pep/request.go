package pep

import (
	"encoding/xml"
	"strconv"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/stanza/form"
)

// Namespaces of XEP-0060.
const (
	nsPubSub = "http://jabber.org/protocol/pubsub"
	nsOwner  = nsPubSub + "#owner"
	nsEvent  = nsPubSub + "#event"
	nsErrors = nsPubSub + "#errors"
)

// op is what a pubsub request asks for.
type op int

const (
	opPublish op = iota + 1
	opRetract
	opItems
	opCreate
	opSubscriptions // the requester's subscriptions
	opAffiliations  // the requester's affiliations
	opSubscribe     // explicit subscriptions: not supported in PEP
	opConfigure     // owner: get or set a node's configuration
	opDefault       // owner: the default configuration
	opPurge         // owner
	opDelete        // owner
	opNodeAffiliations
	opNodeSubscriptions
)

// request is a parsed pubsub iq.
type request struct {
	op      op
	set     bool
	node    string
	item    item       // opPublish
	ids     []string   // opItems (by id), opRetract (one)
	max     int        // opItems: max_items, 0 for all
	notify  bool       // opRetract
	options *form.Form // opPublish: publish-options; opCreate, opConfigure (set): the configuration
}

// item is a published item: its id ("" for one the server names) and its
// payload element's tokens.
type item struct {
	id      string
	payload []xml.Token
}

// failure builds a pubsub error with an optional #errors condition.
func failure(typ mstanza.ErrorType, cond mstanza.Condition, app string) stanza.Failure {
	f := stanza.Failure{Err: stanza.NewError(typ, cond, "")}
	if app != "" {
		f.App = xml.Name{Space: nsErrors, Local: app}
	}
	return f
}

// unsupported is feature-not-implemented with <unsupported feature='…'/>.
func unsupported(feature string) stanza.Failure {
	f := failure(mstanza.Cancel, mstanza.FeatureNotImplemented, "unsupported")
	f.AppAttrs = []xml.Attr{{Name: xml.Name{Local: "feature"}, Value: feature}}
	return f
}

func badRequest(app string) stanza.Failure { return failure(mstanza.Modify, mstanza.BadRequest, app) }

// parseRequest reads the <pubsub/> element of an iq get or set. An error
// is a stanza.Failure to answer with.
func parseRequest(iq *stanza.Stanza) (request, error) {
	root, ok := iq.PayloadElement()
	if !ok {
		return request{}, badRequest("")
	}
	r := request{set: iq.Type == stanza.Set}
	owner := root.Start().Name.Space == nsOwner
	var action, extra stanza.Element
	n := 0
	for c := range root.Children() {
		if c.Start().Name.Space != root.Start().Name.Space {
			continue // foreign elements (such as XEP-0059 paging) are ignored
		}
		switch l := c.Start().Name.Local; {
		case !owner && (l == "publish-options" || l == "configure"):
			extra = c
		default:
			action = c
			n++
		}
	}
	if n != 1 {
		return request{}, badRequest("")
	}
	r.node = action.Attr("node")
	name := action.Start().Name.Local
	if owner {
		return parseOwner(r, name, action)
	}
	switch name {
	case "publish":
		return parsePublish(r, action, extra)
	case "retract":
		if !r.set {
			return r, badRequest("")
		}
		r.op = opRetract
		if r.node == "" {
			return r, badRequest("nodeid-required")
		}
		r.notify = action.Attr("notify") == "1" || action.Attr("notify") == "true"
		for it := range action.Children() {
			if it.Start().Name.Local == "item" && it.Attr("id") != "" {
				r.ids = append(r.ids, it.Attr("id"))
			}
		}
		if len(r.ids) != 1 {
			return r, badRequest("item-required")
		}
	case "items":
		if r.set {
			return r, badRequest("")
		}
		r.op = opItems
		if r.node == "" {
			return r, badRequest("nodeid-required")
		}
		if v, ok := action.LookupAttr("max_items"); ok {
			m, err := strconv.Atoi(v)
			if err != nil || m < 1 {
				return r, badRequest("")
			}
			r.max = m
		}
		for it := range action.Children() {
			if it.Start().Name.Local == "item" {
				id := it.Attr("id")
				if id == "" {
					return r, badRequest("item-required")
				}
				r.ids = append(r.ids, id)
			}
		}
	case "create":
		if !r.set {
			return r, badRequest("")
		}
		r.op = opCreate
		if r.node == "" {
			// Instant nodes make no sense for PEP, whose node names are
			// namespaces.
			return r, failure(mstanza.Modify, mstanza.NotAcceptable, "nodeid-required")
		}
		if extra.Start().Name.Local == "configure" {
			f, err := configForm(extra, formNodeConfig)
			if err != nil {
				return r, err
			}
			r.options = f
		}
	case "subscriptions":
		r.op = opSubscriptions
	case "affiliations":
		r.op = opAffiliations
	case "subscribe", "unsubscribe", "options":
		r.op = opSubscribe
		return r, unsupported("subscribe")
	default:
		return r, failure(mstanza.Cancel, mstanza.FeatureNotImplemented, "")
	}
	if (r.op == opSubscriptions || r.op == opAffiliations) && r.set {
		return r, badRequest("")
	}
	return r, nil
}

func parsePublish(r request, action, extra stanza.Element) (request, error) {
	r.op = opPublish
	if !r.set {
		return r, badRequest("")
	}
	if r.node == "" {
		return r, badRequest("nodeid-required")
	}
	items := 0
	for it := range action.Children() {
		if it.Start().Name.Local != "item" {
			continue
		}
		items++
		r.item.id = it.Attr("id")
		payloads := 0
		for p := range it.Children() {
			payloads++
			r.item.payload = p.Tokens()
		}
		switch {
		case payloads == 0:
			return r, badRequest("payload-required")
		case payloads > 1:
			return r, badRequest("invalid-payload")
		}
	}
	if items != 1 {
		return r, badRequest("item-required")
	}
	if extra.Start().Name.Local == "publish-options" {
		f, err := configForm(extra, formPublishOptions)
		if err != nil {
			return r, err
		}
		r.options = f
	}
	return r, nil
}

func parseOwner(r request, name string, action stanza.Element) (request, error) {
	switch name {
	case "configure":
		r.op = opConfigure
		if r.node == "" {
			return r, badRequest("nodeid-required")
		}
		if r.set {
			f, err := configForm(action, formNodeConfig)
			if err != nil {
				return r, err
			}
			if f == nil {
				return r, badRequest("")
			}
			r.options = f
		}
	case "default":
		r.op = opDefault
		if r.set {
			return r, badRequest("")
		}
	case "purge", "delete":
		r.op = opPurge
		if name == "delete" {
			r.op = opDelete
		}
		if !r.set {
			return r, badRequest("")
		}
		if r.node == "" {
			return r, badRequest("nodeid-required")
		}
	case "affiliations", "subscriptions":
		r.op = opNodeAffiliations
		if name == "subscriptions" {
			r.op = opNodeSubscriptions
		}
		if r.node == "" {
			return r, badRequest("nodeid-required")
		}
	default:
		return r, failure(mstanza.Cancel, mstanza.FeatureNotImplemented, "")
	}
	return r, nil
}

// configForm reads the data form inside el (publish-options, configure),
// if there is one, which must be a submission of formType. A form of type
// cancel counts as none.
func configForm(el stanza.Element, formType string) (*form.Form, error) {
	x, ok := el.Child(xml.Name{Space: form.NS, Local: "x"})
	if !ok {
		return nil, nil
	}
	f, err := form.Parse(stanza.Tokens(x.Tokens()...))
	if err != nil {
		return nil, badRequest("")
	}
	if f.Type == form.TypeCancel {
		return nil, nil
	}
	if f.Type != form.TypeSubmit || f.FormType() != formType {
		return nil, badRequest("invalid-options")
	}
	return f, nil
}
