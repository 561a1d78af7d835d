package server_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// A login records its day as the account's last login, and only the day.
func TestLoginRecordsDay(t *testing.T) {
	st := memory.New()
	srv := servertest.Start(t, server.Config{Accounts: st})
	alice := srv.AddUser(t, "alice", "pw")
	if a, err := st.Account(t.Context(), alice.String()); err != nil || !a.LastLogin.IsZero() {
		t.Fatalf("before any login: LastLogin %v, %v; want zero", a.LastLogin, err)
	}
	before := storage.Day(time.Now())
	s, err := srv.Login(t.Context(), alice, "pw")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	after := storage.Day(time.Now())
	a, err := st.Account(t.Context(), alice.String())
	if err != nil {
		t.Fatal(err)
	}
	if !a.LastLogin.Equal(before) && !a.LastLogin.Equal(after) {
		t.Errorf("LastLogin after a login = %v, want the day %v", a.LastLogin, before)
	}
	if a.LastLogin != storage.Day(a.LastLogin) {
		t.Errorf("LastLogin %v holds more than a day", a.LastLogin)
	}
	// A failed login is no login.
	bob := srv.AddUser(t, "bob", "pw")
	if _, err := srv.Login(t.Context(), bob, "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if b, _ := st.Account(t.Context(), bob.String()); !b.LastLogin.IsZero() {
		t.Errorf("a failed login recorded LastLogin %v", b.LastLogin)
	}
}

// failingTouch is an account store whose TouchLogin fails, as a full disk
// would make it.
type failingTouch struct{ *memory.Store }

func (failingTouch) TouchLogin(context.Context, string, time.Time) error {
	return errors.New("disk full")
}

// When the day cannot be recorded, the login still succeeds and the
// failure is logged.
func TestLoginDayFailureLogged(t *testing.T) {
	var logs syncBuffer
	srv := servertest.Start(t, server.Config{
		Accounts: failingTouch{memory.New()},
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	alice := srv.AddUser(t, "alice", "pw")
	s, err := srv.Login(t.Context(), alice, "pw")
	if err != nil {
		t.Fatalf("login with a failing TouchLogin: %v", err)
	}
	s.Close()
	if got := logs.String(); !strings.Contains(got, "recording the day of a login failed") || !strings.Contains(got, "disk full") {
		t.Errorf("log does not report the failure:\n%s", got)
	}
}
