// Package server is the core of Kiez: c2s listeners (STARTTLS and direct
// TLS), stream negotiation (SASL SCRAM from stored keys, resource binding),
// the session registry, the stanza router and the module host.
//
// # Streams and negotiation
//
// A connection's XML travels through a transport, which frames one
// stream: it reads the peer's stream openings and top-level elements and
// writes the server's, in the stream's content namespace (jabber:client
// for clients; stanzas are in jabber:client inside the server whatever
// stream they came on). TCP and TLS streams (RFC 6120 §4) are one
// transport; WebSocket (RFC 7395) and server-to-server streams are
// others, on the same negotiation and session code.
//
// Negotiation is a list of steps, each offered in the stream features
// while the stream's state allows it and run when the client sends what
// it takes:
//
//	state                   steps offered (in feature order)
//	plain                   STARTTLS (required)
//	TLS                     SASL, SASL2; modules' StreamFeatures with BeforeAuth (XEP-0077 registration), with their IQRoutes
//	TLS, authenticated      bind, session (RFC 3921), resumption (XEP-0198), CSI, caps; modules' StreamFeatures, with their IQRoutes
//	bound                   (the session runs: stanzas go to the router)
//
// SASL2 (XEP-0388) offers SASL's mechanisms in one <authenticate/>, and
// goes on without a stream restart. Inside it, a client may ask to resume
// a session (XEP-0198) or to bind one with Bind 2 (XEP-0386): the server
// picks the resource from the client's tag (the same one at every login of
// an installation, its <user-agent id/>, so that its new session replaces
// the one it left behind), enables stream management and the features of
// modules that implement InlineEnabler (carbons), starts
// the session inactive on <inactive xmlns='urn:xmpp:csi:0'/> (XEP-0352), and
// answers all in its <success/>, so that a phone logs in in one round
// trip after TLS. Failures count toward Limits.AuthAttempts and the
// connection filter as SASL's do.
//
// XEP-0484 FAST rides on SASL2 when Config.Accounts implements
// storage.ServiceData: a client that authenticated asks for a token per
// device (its <user-agent id/>) and logs in with it later by
// HT-SHA-256-EXPR, -ENDP or -UNIQ (bound to the TLS channel) or -NONE,
// with no key stretching. A token is valid for 21 days from the day it was
// issued, bound to its mechanism, replaced at a login on a later day (the
// old one valid until the new one is used), and refused as a replay with a
// 'count' not above the last one seen. The store keeps a random id per
// token, never the token, which is an HMAC of the id under Config.FASTKey:
// kept outside the store, it makes a stolen database or backup yield no
// usable token. Without FASTKey the key is a secret in the store, and a
// leaked store yields the tokens. SetPassword, RevokeTokens and DeleteUser
// revoke an account's tokens; a store error while issuing one leaves it
// out of the <success/> (logged), and the login goes on.
//
// A stanza no offered step takes ends the stream with not-authorized;
// two steps taking one iq in one state make New fail, naming both.
//
// A Server is built once by New from a Config; the modules it is given are
// inspected then, by type assertion, for the optional interfaces in this
// package (IQProvider, FeatureProvider, UserDataOwner, ...), and the
// resulting tables never change afterwards.
//
// # A stanza's path
//
// Every stanza takes one path, whatever its origin. It has two sides:
// the sender's (the local account, domain or service the stanza is
// from) and the recipient's (the local account it is to). On each side
// the filters run (Config.Filters, then the modules' FilterProviders by
// priority; see package filter), then the stanza routes of that side
// (RouteProviders' StanzaRoutes, by priority):
//
//	origin          sender's side          then                        recipient's side
//	client stream   filters, Send routes   routed by 'to'              filters, Receive routes, delivery
//	module: Route   filters                routed by 'to'              filters, Receive routes, delivery
//	module: SendTo  filters                straight to one session     filters
//	service         filters                routed by 'to'              filters, Receive routes, delivery
//	other server    (its own)              routed by 'to'              filters, Receive routes, delivery
//	component       (its own)              routed by 'to'              filters, Receive routes, delivery
//
// Routed by 'to': a local account goes to the recipient's side; the
// server's domain to the iq routes (TargetHost); a service's domain to
// its iq routes or handler; an external component's domain (XEP-0114,
// Config.Components, ServeComponents) to its stream; any other domain to
// Config.Remote. Delivery
// follows RFC 6121 §8: the account's sessions, else the
// UndeliveredHandlers (offline storage). Receive routes take messages;
// presence and iqs to an account pass its filters, then the presence
// rules and the iq routes (TargetBare, TargetSelf).
//
// Send routes run only for what clients send, so a module's own
// broadcast never comes back to it. Answers to iqs a module sent with
// Host.Request are taken before any route. A filter or route that
// refuses a stanza has the server answer the sender with its error;
// bounces are the server's and pass only the recipient's side.
//
// # Federation
//
// With Config.S2S, stanzas to other domains leave on server-to-server
// streams (RFC 6120, jabber:server; s2s.go): one outgoing stream per pair
// of local and remote domain, found through S2SConfig.Hosts, else the
// _xmpps-server._tcp (direct TLS, XEP-0368) and _xmpp-server._tcp SRV
// records, else the domain on port 5269, with a bounded queue while it
// connects; what cannot be sent is bounced (remote-server-not-found,
// remote-server-timeout). A domain whose stream could not be
// established is not dialled again for a while (s2s_backoff.go): from
// S2SConfig.RetryMin after the first failure, doubled after each further
// one up to RetryMax; meanwhile its stanzas bounce at once with
// remote-server-not-found, and a stream established to it (or a
// bidirectional one from it) forgets the failures. ServeS2S and ServeS2SDirectTLS accept other
// servers' streams. TLS is required both ways; a peer whose certificate
// is valid for its domain authenticates with SASL EXTERNAL (XEP-0178),
// another with Server Dialback (XEP-0220) over TLS unless
// S2SConfig.NoDialback. Streams are bidirectional (XEP-0288) unless
// S2SConfig.NoBidi: the initiating server asks for it with <bidi/> when
// offered, and the receiving server then sends its stanzas for the
// reversed authenticated pairs on that stream instead of opening one.
// A stanza a peer sends, on a stream it opened or on a bidirectional
// one we opened, must be from a domain authenticated on it (else
// invalid-from), to one of ours (else host-unknown), and for a domain
// pair authenticated on it (else invalid-from); it then takes the
// "other server" path above.
// Stream limits and the ConnFilter apply as for clients, and idle
// streams close after S2SConfig.IdleTimeout. One incoming stream may
// authenticate at most 64 domain pairs (maxS2SPairs in s2s_in.go; a
// request beyond is answered with the dialback error
// resource-constraint) and fail at most 8 dialback requests
// (maxS2SDialbackFailures; the next ends it with policy-violation).
//
// # Module lifecycle
//
//	New        optional interfaces asserted once: iq routes (clashes fail New, naming both modules),
//	           services and their routes, filters and stanza routes sorted by priority, disco,
//	           stream features, HTTP routes, data owners (declaring data without owning it fails New)
//	Init       in Config.Modules order, with a Host (domains, logger, Router, SendTo, Request, Go)
//	serving    iq handlers answer through a ResponseWriter exactly once; SessionStarter before the
//	           client learns its JID, SessionResumer after a stream management resumption,
//	           AvailabilityListener at initial presence, SessionEnder after the session left the registry; SessionValues are dropped with the session;
//	           AccountListener on CreateUser/DeleteUser; DeleteUser asks every UserDataOwner, then the
//	           store (storage.UserDataDeleter)
//	Shutdown   streams closed with <system-shutdown/>, detached sessions ended (their unacknowledged
//	           messages redelivered), Host.Go goroutines cancelled and awaited, then Closers in
//	           reverse order
//
// # What one client may cost
//
// Limits bounds each connection: the bytes of an element, counted while
// reading (MaxPreAuthSize, then MaxStanzaSize), its depth, the time to
// bind, the stanzas waiting for a slow client, and the rate at which the
// server reads (ReadRate, then ReadRateAuthenticated), a token bucket on
// the bytes on the wire as Prosody's mod_limits: a flooding client is
// read more slowly, its excess waits in its own socket buffers, and its
// reader sleeps without holding up Shutdown or the deadlines.
//
// # Metrics
//
// With Config.Metrics set, the server counts into that registry (package
// server/metrics, which writes Prometheus' text format): sessions and
// open connections by transport, logins by result and SASL mechanism
// family, stanzas read from and written to clients by kind, sessions
// closed for a full queue or a write that timed out, stanzas lost with a
// failed connection, the account lookup's latency, and the janitor's
// removals by kind. Modules, filters and the ConnFilter that implement
// MetricsRegistrar add theirs (StorageLatency is the histogram for the
// store calls they time). Counting is an atomic add on a value fixed at
// New; labels are fixed words, never a user or an address. Without a
// registry every metric is nil, and counting costs a nil check.
//
// # Stream management (XEP-0198) and client state (XEP-0352)
//
// Clients may enable stream management after binding. The server then
// counts the stanzas it has handled (a stanza counts once the router is
// done with it, so modules that block until a write is durable, like the
// archive, make an acknowledgement mean "stored"), answers <r/>, keeps
// every stanza it writes until the client acknowledges it, and asks for
// acknowledgements itself. The unacknowledged stanzas count toward
// Limits.QueueSize, the slow-client limit. The h counters wrap at 2^32 as
// the XEP says.
//
// With resumption enabled, a session whose connection is lost (no closing
// stream tag) is not ended: it stays bound and available, with its
// presence, and keeps queueing for Limits.ResumeTimeout. A new stream of
// the same account may resume it instead of binding; the same *Session
// then continues on the new connection, and what the client did not
// acknowledge is sent again. A session that ends while stanzas are
// unacknowledged or unsent (its timeout passed, its client closed the
// stream, or the server shut down) hands them to the router: messages to
// the user (except errors, groupchat, carbons copies and MAM results) are
// delivered again to the account's bare JID without running the
// Receive routes a second time, reaching the user's other resources
// or else the UndeliveredHandlers (offline storage); iq requests are
// answered with service-unavailable, as for a resource that went away;
// presence is dropped.
//
// Client state indication holds back, while the client says it is
// inactive, what is not urgent (presence, keeping the latest per sender;
// messages without a body or other content, such as chat states), and
// writes it, in order, before the next urgent stanza or when the client
// becomes active again.
package server
