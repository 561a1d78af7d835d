package main

// The invite command: an invitation to create an account, made by the
// administrator on the running server's own invite module (the one its
// registration redeems with) or on the database.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/modules/register"
)

// errRegistrationClosed is invite's answer under [registration] policy =
// "closed".
var errRegistrationClosed = errors.New(`registration is closed ([registration] policy = "closed"): no invitation can be used; create accounts with adduser`)

// inviteRequest checks invite's --for and --user and returns the request.
func inviteRequest(forArg, user string) (adminRequest, error) {
	if forArg != "" {
		if _, err := parseInviteFor(forArg); err != nil {
			return adminRequest{}, usageError{err.Error()}
		}
	}
	return adminRequest{Op: "invite", User: user, For: forArg}, nil
}

// parseInviteFor parses --for: a positive duration as in the
// configuration ("12h", "7d"), at most invite.MaxValidity.
func parseInviteFor(s string) (time.Duration, error) {
	var d duration
	if err := d.UnmarshalTOML(s); err != nil {
		return 0, fmt.Errorf("--for: %v", err)
	}
	if time.Duration(d) <= 0 {
		return 0, fmt.Errorf("--for: %q is not a positive duration", s)
	}
	if time.Duration(d) > invite.MaxValidity {
		return 0, fmt.Errorf("--for: %q is longer than 90 days (90d)", s)
	}
	return time.Duration(d), nil
}

// inviteCommand runs invite, on the running server if there is one.
func inviteCommand(ctx context.Context, cfg *config, e env, req adminRequest) error {
	if register.Policy(cfg.Registration.Policy) == register.PolicyClosed {
		return errRegistrationClosed
	}
	out, err := admin(ctx, cfg, e, req)
	fmt.Fprint(e.stdout, out)
	return err
}

// execInvite creates an invitation of the administrator and returns its
// URI, landing URL and expiry, one a line.
func execInvite(ctx context.Context, t adminTarget, req adminRequest) (string, error) {
	if register.Policy(t.cfg.Registration.Policy) == register.PolicyClosed {
		return "", errRegistrationClosed
	}
	if t.invites == nil {
		return "", errors.New("registration is switched off: no invitation can be used")
	}
	opts := invite.CreateOptions{Domain: t.cfg.Domains[0]}
	if req.For != "" {
		d, err := parseInviteFor(req.For)
		if err != nil {
			return "", err
		}
		opts.Validity = d
	}
	if u := req.User; u != "" {
		// NAME, or NAME@DOMAIN for another configured domain.
		if name, domain, ok := strings.Cut(u, "@"); ok {
			opts.Username, opts.Domain = name, domain
		} else {
			opts.Username = u
		}
		j, err := jid.New(opts.Username, opts.Domain, "")
		if err != nil || j.Localpart() == "" {
			return "", fmt.Errorf("--user: %q is not a username such as alice", u)
		}
		if _, err := t.accounts.Account(ctx, j.String()); err == nil {
			return "", fmt.Errorf("--user: %s already exists", j)
		}
	}
	inv, err := t.invites.Create(ctx, opts)
	if err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), "invite: "))
	}
	// The URI, the landing URL, then what it allows.
	var b strings.Builder
	fmt.Fprintln(&b, inv.URI)
	if inv.LandingURL != "" {
		fmt.Fprintln(&b, inv.LandingURL)
	}
	what := "one account on " + inv.Domain
	if inv.Username != "" {
		what = "the account " + inv.Username + "@" + inv.Domain
	}
	fmt.Fprintf(&b, "creates %s, once, until %s\n", what, inv.Expires.UTC().Format(banTimeLayout))
	return b.String(), nil
}
