package server

import (
	"context"
	"encoding/xml"
	"sort"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/filter"
	"github.com/kiez-im/kiez/stanza"
)

// XEP-0030 namespaces.
const (
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"
	NSDiscoItems = "http://jabber.org/protocol/disco#items"
)

func builtinFeatures(t Target) []string {
	return []string{NSDiscoInfo, NSDiscoItems}
}

// addBuiltinRoutes adds the server's own disco#info and disco#items.
// Modules claiming the same routes make New fail.
func (s *Server) addBuiltinRoutes() {
	add := func(payload string, t Target, h IQHandlerFunc) {
		k := routeKey{typ: mstanza.GetIQ, payload: xmlName{payload, "query"}, to: t}
		if _, taken := s.iqRoutes[k]; !taken {
			s.iqRoutes[k] = routeEntry{handler: h, module: "disco"}
		}
	}
	add(NSDiscoInfo, TargetHost, func(ctx context.Context, iq stanza.IQ, w ResponseWriter) error {
		return s.discoInfo(ctx, iq, w, TargetHost)
	})
	add(NSDiscoInfo, TargetBare, func(ctx context.Context, iq stanza.IQ, w ResponseWriter) error {
		return s.discoInfo(ctx, iq, w, TargetBare)
	})
	add(NSDiscoItems, TargetHost, func(ctx context.Context, iq stanza.IQ, w ResponseWriter) error {
		if n := node(iq); n != "" {
			return s.nodeItems(ctx, iq, w, TargetHost, n)
		}
		var items []xml.TokenReader
		svcs := append([]Service(nil), s.serviceList...)
		sort.Slice(svcs, func(i, j int) bool { return svcs[i].Subdomain < svcs[j].Subdomain })
		for _, svc := range svcs {
			attrs := []xml.Attr{stanza.Attr("jid", svc.Subdomain+"."+iq.To.Domainpart())}
			if svc.Name != "" {
				attrs = append(attrs, stanza.Attr("name", svc.Name))
			}
			items = append(items, stanza.Elem(xml.Name{Local: "item"}, attrs))
		}
		for _, it := range s.componentItems(iq.To.Domainpart()) {
			items = append(items, itemElem(it))
		}
		return w.Result(stanza.Elem(xml.Name{Space: NSDiscoItems, Local: "query"}, nil, items...))
	})
	add(NSDiscoItems, TargetBare, func(ctx context.Context, iq stanza.IQ, w ResponseWriter) error {
		if n := node(iq); n != "" {
			return s.nodeItems(ctx, iq, w, TargetBare, n)
		}
		return w.Result(stanza.Elem(xml.Name{Space: NSDiscoItems, Local: "query"}, nil))
	})
}

func node(iq stanza.IQ) string {
	p, _ := iq.PayloadElement()
	return p.Attr("node")
}

// identitiesFor lists the disco identities of the server or of accounts.
func (s *Server) identitiesFor(t Target) []Identity {
	ids := []Identity{{Category: "server", Type: "im", Name: "Kiez"}}
	if t == TargetBare {
		ids = []Identity{{Category: "account", Type: "registered"}}
	}
	for _, p := range s.identities {
		ids = append(ids, p.Identities(t)...)
	}
	return ids
}

// lookupNode asks the NodeProviders about a disco node.
func (s *Server) lookupNode(ctx context.Context, iq stanza.IQ, t Target, n string) (DiscoNode, bool) {
	to := iq.To
	if to.String() == "" {
		to = iq.From.Bare()
	}
	for _, p := range s.nodes {
		if dn, ok := p.DiscoNode(ctx, t, n, iq.From, to); ok {
			return dn, true
		}
	}
	return DiscoNode{}, false
}

// nodeItems answers disco#items for a node.
func (s *Server) nodeItems(ctx context.Context, iq stanza.IQ, w ResponseWriter, t Target, n string) error {
	dn, ok := s.lookupNode(ctx, iq, t, n)
	if !ok {
		return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ItemNotFound})
	}
	items := make([]xml.TokenReader, 0, len(dn.Items))
	for _, it := range dn.Items {
		items = append(items, itemElem(it))
	}
	return w.Result(stanza.Elem(xml.Name{Space: NSDiscoItems, Local: "query"}, []xml.Attr{stanza.Attr("node", n)}, items...))
}

// itemElem is a disco#items <item/>.
func itemElem(it DiscoItem) xml.TokenReader {
	attrs := []xml.Attr{stanza.Attr("jid", it.JID.String())}
	if it.Node != "" {
		attrs = append(attrs, stanza.Attr("node", it.Node))
	}
	if it.Name != "" {
		attrs = append(attrs, stanza.Attr("name", it.Name))
	}
	return stanza.Elem(xml.Name{Local: "item"}, attrs)
}

func (s *Server) discoInfo(ctx context.Context, iq stanza.IQ, w ResponseWriter, t Target) error {
	var queryAttrs []xml.Attr
	ids := s.identitiesFor(t)
	var features []string
	forms := s.forms
	if n := node(iq); n != "" {
		queryAttrs = []xml.Attr{stanza.Attr("node", n)}
		switch dn, ok := s.lookupNode(ctx, iq, t, n); {
		case t == TargetHost && n == capsNode+"#"+s.caps:
			// The node of the server's entity capabilities (XEP-0115
			// §6.2) names the same information.
			features = s.sortedFeatures(t)
		case ok:
			ids = dn.Identities
			features = append([]string(nil), dn.Features...)
			sort.Strings(features)
			forms = nil
		default:
			return w.Error(mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ItemNotFound})
		}
	} else {
		features = s.sortedFeatures(t)
	}
	var children []xml.TokenReader
	for _, id := range ids {
		attrs := []xml.Attr{stanza.Attr("category", id.Category), stanza.Attr("type", id.Type)}
		if id.Name != "" {
			attrs = append(attrs, stanza.Attr("name", id.Name))
		}
		if id.Lang != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Space: stanza.NSXML, Local: "lang"}, Value: id.Lang})
		}
		children = append(children, stanza.Elem(xml.Name{Local: "identity"}, attrs))
	}
	for _, f := range features {
		children = append(children, stanza.Elem(xml.Name{Local: "feature"}, []xml.Attr{stanza.Attr("var", f)}))
	}
	for _, p := range forms {
		children = append(children, p.Forms(t)...)
	}
	return w.Result(stanza.Elem(xml.Name{Space: NSDiscoInfo, Local: "query"}, queryAttrs, children...))
}

// serviceDisco answers disco#info and disco#items queries (without a
// node) to a service, and reports whether it did.
func (r *router) serviceDisco(ctx context.Context, st *stanza.Stanza, svc Service) bool {
	if st.Kind != stanza.IQKind || st.Type != stanza.Get || st.To.Localpart() != "" || st.To.Resourcepart() != "" {
		return false
	}
	p, _, ok := st.Payload()
	if !ok || p.Name.Local != "query" || (p.Name.Space != NSDiscoInfo && p.Name.Space != NSDiscoItems) {
		return false
	}
	if _, ok := stanza.LookupAttr(p.Attr, "node"); ok {
		return false
	}
	var children []xml.TokenReader
	if p.Name.Space == NSDiscoInfo {
		id := svc.Identity
		if id.Category == "" {
			id = Identity{Category: "component", Type: "generic", Name: svc.Name}
		}
		attrs := []xml.Attr{stanza.Attr("category", id.Category), stanza.Attr("type", id.Type)}
		if id.Name != "" {
			attrs = append(attrs, stanza.Attr("name", id.Name))
		}
		children = append(children, stanza.Elem(xml.Name{Local: "identity"}, attrs))
		features := append([]string{NSDiscoInfo}, svc.Features...)
		sort.Strings(features)
		for _, f := range features {
			children = append(children, stanza.Elem(xml.Name{Local: "feature"}, []xml.Attr{stanza.Attr("var", f)}))
		}
		if svc.Forms != nil {
			children = append(children, svc.Forms()...)
		}
	} else if svc.Items != nil {
		for _, it := range svc.Items(ctx, st.From, st.To) {
			children = append(children, itemElem(it))
		}
	}
	r.deliver(ctx, filter.Module, st.ResultReply(stanza.Elem(xml.Name{Space: p.Name.Space, Local: "query"}, nil, children...)))
	return true
}
