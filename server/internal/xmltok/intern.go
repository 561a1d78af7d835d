package xmltok

// intern returns b as a string, without allocating for the names,
// namespaces and type values that XMPP streams repeat.
func intern(b []byte) string {
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}

var interned = func() map[string]string {
	m := make(map[string]string)
	for _, s := range []string{
		// Stream and negotiation.
		"stream", "features", "starttls", "proceed", "auth", "response", "abort", "challenge", "success",
		"failure", "bind", "resource", "jid", "session", "mechanism", "xml", "version", "lang", "to", "from",
		"id", "type", "xmlns", "enable", "enabled", "resume", "resumed", "r", "a", "h", "previd", "max",
		"active", "inactive",
		// Stanzas and their common children.
		"message", "presence", "iq", "body", "subject", "thread", "error", "text", "show", "status", "priority",
		"query", "item", "items", "x", "c", "ping", "delay", "stamp", "by", "origin-id", "stanza-id", "request",
		"received", "markable", "displayed", "acknowledged", "composing", "paused", "gone", "store", "no-store",
		"no-copy", "no-permanent-store", "private", "sent", "forwarded", "result", "fin", "set", "first", "last",
		"count", "after", "before", "index", "value", "field", "var", "label", "group", "name", "subscription",
		"ask", "approved", "ver", "node", "hash", "category", "identity", "feature", "block", "unblock",
		"blocklist", "pubsub", "publish", "retract", "event", "vCard", "storage", "conference", "autojoin",
		"nick", "password", "reason", "time", "tzo", "utc", "os", "queryid", "with", "start", "end",
		// Type values.
		"chat", "get", "result", "normal", "groupchat", "headline", "unavailable", "subscribe", "subscribed",
		"unsubscribe", "unsubscribed", "probe", "cancel", "modify", "wait", "continue", "form", "submit",
		"hidden", "text-single", "list-single", "boolean",
		// Namespaces.
		"jabber:client", "http://etherx.jabber.org/streams", "urn:ietf:params:xml:ns:xmpp-tls",
		"urn:ietf:params:xml:ns:xmpp-sasl", "urn:ietf:params:xml:ns:xmpp-bind",
		"urn:ietf:params:xml:ns:xmpp-session", "urn:ietf:params:xml:ns:xmpp-stanzas",
		"urn:ietf:params:xml:ns:xmpp-streams", "urn:xmpp:sm:3", "urn:xmpp:csi:0", "urn:xmpp:ping",
		"jabber:iq:roster", "jabber:iq:private", "jabber:iq:version", "jabber:x:data", "vcard-temp",
		"urn:xmpp:time", "urn:xmpp:blocking", "urn:xmpp:carbons:2", "urn:xmpp:forward:0", "urn:xmpp:delay",
		"urn:xmpp:receipts", "urn:xmpp:chat-markers:0", "urn:xmpp:hints", "urn:xmpp:sid:0", "urn:xmpp:mam:2",
		"http://jabber.org/protocol/chatstates", "http://jabber.org/protocol/caps",
		"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
		"http://jabber.org/protocol/rsm", "http://jabber.org/protocol/pubsub",
		"http://jabber.org/protocol/pubsub#event", "http://jabber.org/protocol/commands",
		"storage:bookmarks", "urn:xmpp:bookmarks:1", "eu.siacs.conversations.axolotl",
	} {
		m[s] = s
	}
	return m
}()
