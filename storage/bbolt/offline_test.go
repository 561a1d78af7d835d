package bbolt_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

func TestOfflineReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		m := storage.OfflineMessage{Stored: at.Add(time.Duration(i) * time.Minute), Data: fmt.Appendf(nil, "m%d", i)}
		if err := s.PushOffline(ctx, "alice@example.org", m, 0); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := s.OfflineMessages(ctx, "alice@example.org")
	if err != nil || len(msgs) != 5 {
		t.Fatalf("OfflineMessages = %d, %v", len(msgs), err)
	}
	if err := s.DeleteOffline(ctx, "alice@example.org", msgs[4].Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.PushOffline(ctx, "alice@example.org", storage.OfflineMessage{Stored: at, Data: []byte("late")}, 0); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)

	s = open(t, path)
	got, err := s.OfflineMessages(ctx, "alice@example.org")
	if err != nil || len(got) != 1 || string(got[0].Data) != "late" || !got[0].Stored.Equal(at) || got[0].Seq != msgs[4].Seq+1 {
		t.Fatalf("OfflineMessages after reopen = %+v, %v", got, err)
	}
	if n, err := s.CountOffline(ctx, "alice@example.org"); n != 1 || err != nil {
		t.Errorf("CountOffline after reopen = %d, %v", n, err)
	}
	// The counter survives an emptied queue and a reopen.
	if err := s.DeleteOffline(ctx, "alice@example.org", got[0].Seq); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = open(t, path)
	if err := s.PushOffline(ctx, "alice@example.org", storage.OfflineMessage{Stored: at, Data: []byte("x")}, 1); err != nil {
		t.Fatal(err)
	}
	got, err = s.OfflineMessages(ctx, "alice@example.org")
	if err != nil || len(got) != 1 || got[0].Seq != msgs[4].Seq+2 {
		t.Errorf("OfflineMessages = %+v, %v; want Seq %d", got, err, msgs[4].Seq+2)
	}
}

// TestOfflineDeleteLeavesNoTrace checks that DeleteOfflineUser removes the
// user's name and messages from the file's buckets, keys and values.
func TestOfflineDeleteLeavesNoTrace(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "kiez.db")
	s := open(t, path)
	for _, user := range []string{"deletedalice@example.org", "keptbob@example.org"} {
		m := storage.OfflineMessage{Stored: time.Now(), Data: []byte("secretbody of " + user)}
		if err := s.PushOffline(ctx, user, m, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteOfflineUser(ctx, "deletedalice@example.org"); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	all := everything(t, path)
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"deletedalice", false},
		{"keptbob", true},
	} {
		if got := containsAnywhere(all, tt.s); got != tt.want {
			t.Errorf("%q appears in the database: %v, want %v", tt.s, got, tt.want)
		}
	}
}
