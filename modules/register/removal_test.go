package register_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/internal/modtest"
	"github.com/kiez-im/kiez/modules/offline"
	"github.com/kiez-im/kiez/modules/register"
	"github.com/kiez-im/kiez/modules/roster"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// TestRemoveGrace: with a grace period, <remove/> locks the account: its
// stream ends, it cannot log in, it is invisible (a message to it
// bounces), its name cannot be taken, and its data stays until the
// administrator restores it (everything back) or the period is over
// (PurgeRemoved deletes it all; the name is free and starts empty).
func TestRemoveGrace(t *testing.T) {
	const grace = 14 * 24 * time.Hour
	store := memory.New()
	ros := modtest.Must(roster.New(roster.Options{}, roster.Deps{Store: store}))
	var srv *servertest.Server
	m := modtest.Must(register.New(register.Options{Policy: register.PolicyOpen},
		register.Deps{Accounts: func() register.Accounts { return srv.Server }}))
	off := modtest.Must(offline.New(offline.Options{}, offline.Deps{Store: store}))
	srv = servertest.Start(t, server.Config{Accounts: store, RemovalGrace: grace, Modules: []server.Module{m, ros, off}})
	ctx := context.Background()
	alice := srv.AddUser(t, "alice", "pw-alice")
	bob := srv.AddUser(t, "bob", "pw-bob")
	b := srv.Connect(t, bob, "pw-bob")

	remove := func() {
		t.Helper()
		c := srv.Connect(t, alice, "pw-alice")
		c.SendRaw(`<iq type='set' id='add'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query></iq>`)
		modtest.MustResult(t, c.Expect(servertest.ByID("add")), jid.JID{})
		c.SendRaw(`<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>`)
		if res := c.Expect(servertest.ByID("rm")); res.Type != stanza.Result {
			t.Fatalf("remove: %s %q", res.Type, modtest.Condition(res))
		}
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the stream of the removed account goes on")
		}
	}
	remove()
	a, err := store.Account(ctx, "alice@localhost")
	if err != nil || !a.Removed.Equal(storage.Day(time.Now())) {
		t.Fatalf("account after removal: %+v, %v; want Removed today", a, err)
	}
	if err := login(srv, "alice", "pw-alice"); err == nil {
		t.Fatal("a removed account logs in")
	}
	// Not stored for later, as for an account that is merely offline:
	// bounced.
	b.SendRaw(`<message to='alice@localhost' id='m1' type='chat'><body>still there?</body></message>`)
	if got := modtest.Condition(b.Expect(servertest.ByID("m1"))); got != "service-unavailable" {
		t.Errorf("message to a removed account: %q, want service-unavailable", got)
	}
	if n, err := store.CountOffline(ctx, "alice@localhost"); n != 0 || err != nil {
		t.Errorf("offline messages stored for a removed account: %d, %v", n, err)
	}
	r, _ := dial(t, srv)
	wantError(t, r.register("alice", "a new start"), "conflict")
	if _, err := store.RosterItem(ctx, "alice@localhost", "bob@localhost"); err != nil {
		t.Errorf("roster during the grace period: %v", err)
	}

	// Restored: as before.
	if err := srv.RestoreUser(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := srv.RestoreUser(ctx, alice); !errors.Is(err, server.ErrNotRemoved) {
		t.Errorf("restoring twice: %v, want ErrNotRemoved", err)
	}
	if err := login(srv, "alice", "pw-alice"); err != nil {
		t.Fatalf("restored account cannot log in: %v", err)
	}
	if _, err := store.RosterItem(ctx, "alice@localhost", "bob@localhost"); err != nil {
		t.Errorf("restored roster: %v", err)
	}

	// Removed again, purged once the period is over, not before.
	remove()
	if n, err := srv.PurgeRemoved(ctx, time.Now().Add(grace-24*time.Hour), 0); n != 0 || err != nil {
		t.Fatalf("purge within the period: %d, %v", n, err)
	}
	// The server's janitor purges it.
	if rep := srv.RunJanitor(ctx, time.Now().Add(grace)); rep.Removed[server.KindRemovedAccounts] != 1 || rep.Err != nil {
		t.Fatalf("janitor after the period: %+v; want one removed account purged", rep)
	}
	if _, err := store.Account(ctx, "alice@localhost"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("account after the purge: %v", err)
	}
	if _, err := store.RosterItem(ctx, "alice@localhost", "bob@localhost"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("roster after the purge: %v", err)
	}
	if err := srv.RestoreUser(ctx, alice); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("restoring a purged account: %v, want ErrNotFound", err)
	}
	r, _ = dial(t, srv)
	wantResult(t, r.register("alice", "a new start"))
	c := srv.Connect(t, alice, "a new start")
	c.SendRaw(`<iq type='get' id='ros'><query xmlns='jabber:iq:roster'/></iq>`)
	var out strings.Builder
	c.Expect(servertest.ByID("ros")).WriteTo(&out)
	if strings.Contains(out.String(), "bob@localhost") {
		t.Errorf("the new account has the old roster: %q", out.String())
	}
}
