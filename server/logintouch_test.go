package server_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage/memory"
)

// countingTouch counts TouchLogin calls.
type countingTouch struct {
	*memory.Store
	n atomic.Int32
}

func (s *countingTouch) TouchLogin(ctx context.Context, jid string, day time.Time) error {
	s.n.Add(1)
	return s.Store.TouchLogin(ctx, jid, day)
}

// The day is written at the first login of a day only: the account read
// for authentication tells whether it is there already. Both SCRAM and
// PLAIN logins read it.
func TestLoginTouchesOncePerDay(t *testing.T) {
	st := &countingTouch{Store: memory.New()}
	srv := servertest.Start(t, server.Config{Accounts: st})
	alice := srv.AddUser(t, "alice", "pw")
	for i, mech := range []sasl.Mechanism{scram.ClientMechanism(scram.MechSHA256, ""), scram.ClientMechanism(scram.MechSHA1, ""), sasl.Plain} {
		s, err := srv.Login(t.Context(), alice, "pw", mech)
		if err != nil {
			t.Fatalf("login %d (%s): %v", i+1, mech.Name, err)
		}
		s.Close()
		if n := st.n.Load(); n != 1 {
			t.Fatalf("after login %d (%s): %d TouchLogin calls, want 1", i+1, mech.Name, n)
		}
	}
}
