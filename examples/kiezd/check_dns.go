package main

// The DNS part of kiezd check: the records clients and servers look up,
// and whether they point at this machine.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// resolver is the DNS kiezd check asks; *net.Resolver satisfies it, and
// tests give a fake one so that they need no network.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

var _ resolver = (*net.Resolver)(nil)

// here is what "pointing at this machine" means: the addresses of its
// interfaces and the IP addresses listeners are configured on. Behind NAT
// (only private addresses), check cannot tell and says so.
type here struct {
	addrs []netip.Addr
	// public is whether any address is a public one: without, the
	// machine is behind NAT and a record pointing elsewhere may be right.
	public bool
}

func (c *checker) here() (here, error) {
	addrs, err := c.deps.LocalAddrs()
	for _, a := range c.allListenAddrs() {
		host, _, _ := net.SplitHostPort(a.addr)
		if ip, perr := netip.ParseAddr(host); perr == nil && !ip.IsUnspecified() {
			addrs = append(addrs, ip.Unmap())
		}
	}
	h := here{addrs: addrs}
	for _, a := range addrs {
		if isPublic(a) {
			h.public = true
		}
	}
	return h, err
}

// isPublic reports whether a is reachable from the internet as such: not
// loopback, link-local, private or shared (CGNAT) space.
func isPublic(a netip.Addr) bool {
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	return a.IsGlobalUnicast() && !a.IsPrivate() && !cgnat.Contains(a)
}

func (h here) has(a netip.Addr) bool { return slices.Contains(h.addrs, a.Unmap()) }

func (h here) String() string {
	var s []string
	for _, a := range h.addrs {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			s = append(s, a.String())
		}
	}
	if len(s) == 0 {
		return "none but loopback"
	}
	return strings.Join(s, ", ")
}

// checkDNS checks the records clients and servers look up: the domains'
// A/AAAA records, the SRV records of client connections (STARTTLS and
// direct TLS) and of federation, the HTTPS host and the service
// sub-domains, each pointing at this machine, with the configured ports.
func (c *checker) checkDNS(ctx context.Context, g *checkGroup) {
	h, err := c.here()
	if err != nil {
		g.add(levelWarn, "cannot list this machine's addresses: "+err.Error(), "")
	}
	g.add(levelNote, "this machine's addresses: "+h.String()+"; records should point at these", "")
	if !h.public {
		g.add(levelNote, "this machine has no public address (behind NAT?): check cannot tell whether records point at it; they should point at the router's public address, which forwards the ports here", "")
	}
	https := c.httpsHosts()
	c2s, direct := ports(c.cfg.Listen.C2S), ports(c.cfg.Listen.DirectTLS)
	for _, d := range c.cfg.Domains {
		if isLocalName(d) {
			g.add(levelNote, d+" is a local name: DNS not checked", "")
			continue
		}
		clientSRV := c.checkSRV(ctx, g, h, d, "xmpp-client", c2s, "listen.c2s", 5222)
		c.checkSRV(ctx, g, h, d, "xmpps-client", direct, "listen.direct_tls", 0)
		c.checkSRV(ctx, g, h, d, "xmpp-server", ports(c.cfg.S2S.Listen), "s2s.listen", 5269)
		// The domain's own address matters when clients fall back to
		// it (no SRV record) or fetch files from it.
		lvl := levelWarn
		if !clientSRV || slices.Contains(https, d) {
			lvl = levelError
		}
		c.checkHost(ctx, g, h, d, "the domain", lvl)
	}
	for _, s := range c.services {
		if isLocalName(s) {
			continue
		}
		c.checkHost(ctx, g, h, s, "a service sub-domain; only federation and ACME look it up", levelWarn)
	}
	for _, d := range c.components {
		if isLocalName(d) {
			continue
		}
		c.checkHost(ctx, g, h, d, "a component's domain; only federation looks it up", levelWarn)
	}
	for _, host := range https {
		if slices.Contains(c.cfg.Domains, host) || isLocalName(host) {
			continue
		}
		what := "the HTTPS host of file upload (http.external_url)"
		lvl := levelError
		if len(c.cfg.Listen.HTTP) > 0 {
			what += "; if your reverse proxy runs on another machine, pointing there is right"
			lvl = levelWarn
		}
		c.checkHost(ctx, g, h, host, what, lvl)
	}
}

// checkHost checks that name resolves to this machine; lvl is the level
// of a missing or wrong record.
func (c *checker) checkHost(ctx context.Context, g *checkGroup, h here, name, what string, lvl level) {
	addrs, err := c.deps.Resolver.LookupHost(ctx, name)
	if err != nil || len(addrs) == 0 {
		g.add(lvl, fmt.Sprintf("%s (%s) has no A or AAAA record: %s", name, what, dnsErr(err)),
			fmt.Sprintf("add A (and AAAA) records for %s with this machine's public address (%s)", name, h))
		return
	}
	c.pointsHere(g, h, name, what, addrs, lvl)
}

// pointsHere reports whether addrs, those of name, are this machine's.
func (c *checker) pointsHere(g *checkGroup, h here, name, what string, addrs []string, lvl level) {
	var mine, other, loop []string
	for _, s := range addrs {
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil:
			other = append(other, s)
		case a.IsLoopback():
			loop = append(loop, s)
		case h.has(a):
			mine = append(mine, s)
		default:
			other = append(other, s)
		}
	}
	list := strings.Join(addrs, ", ")
	switch {
	case len(loop) > 0:
		g.add(levelError, fmt.Sprintf("%s (%s) points at %s, a loopback address: only this machine can reach it", name, what, strings.Join(loop, ", ")),
			"change the record to this machine's public address ("+h.String()+")")
	case len(mine) > 0 && len(other) > 0:
		g.add(levelWarn, fmt.Sprintf("%s points at %s, of which %s are not this machine's", name, list, strings.Join(other, ", ")),
			"remove the records of the other addresses: clients trying them fail")
	case len(mine) > 0:
		g.add(levelOK, fmt.Sprintf("%s → %s (this machine)", name, list), "")
	case !h.public:
		g.add(levelWarn, fmt.Sprintf("%s points at %s; this machine has only private addresses, so check cannot tell whether that is it", name, list),
			"make sure "+list+" is your router's (or cloud provider's) public address and that it forwards the ports to this machine")
	default:
		g.add(lvl, fmt.Sprintf("%s (%s) points at %s, not at this machine (%s)", name, what, list, h),
			"change the record to this machine's address; DNS changes take up to the record's TTL to arrive")
	}
}

// checkSRV checks the SRV records of service (xmpp-client,
// xmpps-client or, for federation, xmpp-server) for domain: their targets
// must resolve to this machine, on one of the ports listening (of key);
// without records, clients (or other servers) try fallback (5222, 5269;
// 0: none). It reports whether there were records.
func (c *checker) checkSRV(ctx context.Context, g *checkGroup, h here, domain, service string, listening []uint16, key string, fallback uint16) bool {
	rr := "_" + service + "._tcp." + domain
	who := "clients"
	if service == "xmpp-server" {
		who = "other servers"
	}
	_, srvs, err := c.deps.Resolver.LookupSRV(ctx, service, "tcp", domain)
	if err != nil || len(srvs) == 0 {
		switch {
		case len(listening) == 0:
			g.add(levelOK, "no "+rr+" record, and "+key+" is off", "")
		case fallback != 0 && slices.Contains(listening, fallback):
			g.add(levelOK, fmt.Sprintf("no %s SRV record: %s connect to %s port %d, where kiezd listens", rr, who, domain, fallback), "")
		case fallback != 0:
			g.add(levelError, fmt.Sprintf("no %s SRV record: %s try port %d, but kiezd listens on %s (%s)", rr, who, fallback, portList(listening), key),
				fmt.Sprintf("add the record %s. 3600 IN SRV 0 5 %d %s.", rr, listening[0], domain))
		default:
			g.add(levelNote, fmt.Sprintf("no %s SRV record: clients do not find direct TLS (XEP-0368) on port %s", rr, portList(listening)),
				fmt.Sprintf("add the record %s. 3600 IN SRV 0 5 %d %s. so that they do (it passes networks that block STARTTLS)", rr, listening[0], domain))
		}
		return false
	}
	for _, s := range srvs {
		target := strings.TrimSuffix(s.Target, ".")
		switch {
		case target == "":
			g.add(levelError, rr+" says the service is not available here (target \".\")", "remove that record, or point it at this machine")
			continue
		case len(listening) == 0:
			g.add(levelError, fmt.Sprintf("%s points at %s port %d, but %s is off", rr, target, s.Port, key),
				"remove the record, or configure "+key)
			continue
		case !slices.Contains(listening, s.Port):
			g.add(levelError, fmt.Sprintf("%s points at port %d, but kiezd listens on %s (%s)", rr, s.Port, portList(listening), key),
				fmt.Sprintf("change the record's port to %d, or %s to :%d (or forward port %d to it)", listening[0], key, s.Port, s.Port))
			continue
		}
		addrs, err := c.deps.Resolver.LookupHost(ctx, target)
		if err != nil || len(addrs) == 0 {
			g.add(levelError, fmt.Sprintf("%s points at %s, which has no A or AAAA record: %s", rr, target, dnsErr(err)),
				"add A (and AAAA) records for "+target+" (a CNAME is not allowed as an SRV target)")
			continue
		}
		c.pointsHere(g, h, fmt.Sprintf("%s (%s port %d)", rr, target, s.Port), "an SRV target", addrs, levelError)
	}
	return true
}

// dnsErr describes a failed lookup.
func dnsErr(err error) string {
	var de *net.DNSError
	switch {
	case err == nil:
		return "no addresses"
	case errors.As(err, &de) && de.IsNotFound:
		return "no such name"
	case errors.As(err, &de) && de.IsTimeout:
		return "the DNS server did not answer"
	case errors.As(err, &de):
		return de.Err
	}
	return err.Error()
}
