package server

import (
	"context"
	"errors"
	"fmt"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/stanza"
)

// service is a Service as the server keeps it: with its iq routes in a
// table.
type service struct {
	Service
	module string
	routes map[routeKey]routeEntry
}

// addService checks svc and registers it for every virtual host.
func (s *Server) addService(module string, svc Service) error {
	if svc.Subdomain == "" || (svc.Handler == nil && len(svc.IQRoutes) == 0) {
		return fmt.Errorf("server: module %s: a service needs a subdomain and a handler or iq routes", module)
	}
	sv := &service{Service: svc, module: module, routes: make(map[routeKey]routeEntry)}
	for _, r := range svc.IQRoutes {
		if r.To != TargetHost && r.To != TargetBare {
			return fmt.Errorf("server: module %s: service %s: iq route %s takes target host or bare, not %s", module, svc.Subdomain, r.Payload.Local, r.To)
		}
		if err := addRouteTo(sv.routes, module, r); err != nil {
			return fmt.Errorf("%w (service %s)", err, svc.Subdomain)
		}
	}
	for _, d := range s.domains {
		full := svc.Subdomain + "." + d.Domainpart()
		if prev, dup := s.services[full]; dup {
			return fmt.Errorf("server: modules %s and %s both serve %s", prev.module, module, full)
		}
		if s.local[full] {
			return fmt.Errorf("server: module %s: service domain %s is a served domain", module, full)
		}
		s.services[full] = sv
	}
	s.serviceList = append(s.serviceList, svc)
	return nil
}

// toService hands st to the service at its 'to' domain.
func (r *router) toService(ctx context.Context, st *stanza.Stanza, svc *service) {
	if r.answer(st) || r.serviceDisco(ctx, st, svc.Service) {
		return
	}
	if st.Kind == stanza.IQKind && (st.Type == stanza.Get || st.Type == stanza.Set) {
		target := TargetHost
		if st.To.Localpart() != "" {
			target = TargetBare
		}
		if payload, _, ok := st.Payload(); ok {
			k := routeKey{typ: mstanza.IQType(st.Type), payload: xmlName{payload.Name.Space, payload.Name.Local}, to: target}
			if e, found := svc.routes[k]; found {
				r.runIQ(ctx, st, e)
				return
			}
		}
	}
	if svc.Handler == nil {
		if st.Kind != stanza.Presence {
			r.bounce(ctx, st, mstanza.Error{Type: mstanza.Cancel, Condition: mstanza.ServiceUnavailable})
		}
		return
	}
	if err := svc.Handler.HandleStanza(ctx, st); err != nil {
		var se mstanza.Error
		if errors.As(err, &se) {
			r.bounce(ctx, st, se)
			return
		}
		r.srv.log.Warn("service failed", "service", svc.Subdomain, "err", err)
		r.bounce(ctx, st, mstanza.Error{Type: mstanza.Wait, Condition: mstanza.InternalServerError})
	}
}
