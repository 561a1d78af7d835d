package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestAccounts checks an implementation of storage.Accounts. newStore must
// return a fresh, empty store each time it is called; it may use t to
// register cleanup. Every subtest gets its own store.
func TestAccounts(t *testing.T, newStore func(t *testing.T) storage.Accounts) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.Accounts)
	}{
		{"CreateGet", testCreateGet},
		{"CreateExists", testCreateExists},
		{"NotFound", testNotFound},
		{"SetKeys", testSetKeys},
		{"Days", testDays},
		{"TouchLogin", testTouchLogin},
		{"Removed", testRemoved},
		{"List", testList},
		{"Delete", testDelete},
		{"Copies", testCopies},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

// keys returns a full set of distinct credentials for the three hashes,
// derived from seed so that two seeds give different bytes.
func keys(seed byte) map[storage.Hash]storage.SCRAMKeys {
	m := make(map[storage.Hash]storage.SCRAMKeys)
	for i, h := range []storage.Hash{storage.SHA1, storage.SHA256, storage.SHA512} {
		size := []int{20, 32, 64}[i]
		b := byte(i) + seed*16
		m[h] = storage.SCRAMKeys{
			Salt:       bytes.Repeat([]byte{b + 1}, 16),
			Iterations: 4096 * (i + 1),
			StoredKey:  bytes.Repeat([]byte{b + 2}, size),
			ServerKey:  bytes.Repeat([]byte{b + 3}, size),
		}
	}
	return m
}

// createdLocal is a creation time with a time of day in a zone west of UTC,
// so that its UTC day (2024-03-11) differs from its local day.
var createdLocal = time.Date(2024, 3, 10, 22, 30, 15, 123456789, time.FixedZone("UTC-5", -5*60*60))

func createdDay() time.Time { return time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC) }

func newAccount(jid string, seed byte) storage.Account {
	return storage.Account{JID: jid, Keys: keys(seed), Created: createdLocal}
}

func mustCreate(t *testing.T, s storage.Accounts, a storage.Account) {
	t.Helper()
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%q): %v", a.JID, err)
	}
}

func mustGet(t *testing.T, s storage.Accounts, jid string) storage.Account {
	t.Helper()
	a, err := s.Account(t.Context(), jid)
	if err != nil {
		t.Fatalf("Account(%q): %v", jid, err)
	}
	return a
}

// diffKeys describes how got differs from want, or returns "".
func diffKeys(got, want map[storage.Hash]storage.SCRAMKeys) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d hashes %v, want %d %v", len(got), hashes(got), len(want), hashes(want))
	}
	for h, w := range want {
		g, ok := got[h]
		switch {
		case !ok:
			return fmt.Sprintf("hash %s missing", h)
		case !bytes.Equal(g.Salt, w.Salt):
			return fmt.Sprintf("%s salt = %x, want %x", h, g.Salt, w.Salt)
		case g.Iterations != w.Iterations:
			return fmt.Sprintf("%s iterations = %d, want %d", h, g.Iterations, w.Iterations)
		case !bytes.Equal(g.StoredKey, w.StoredKey):
			return fmt.Sprintf("%s StoredKey = %x, want %x", h, g.StoredKey, w.StoredKey)
		case !bytes.Equal(g.ServerKey, w.ServerKey):
			return fmt.Sprintf("%s ServerKey = %x, want %x", h, g.ServerKey, w.ServerKey)
		}
	}
	return ""
}

func hashes(m map[storage.Hash]storage.SCRAMKeys) []storage.Hash {
	var hs []storage.Hash
	for h := range m {
		hs = append(hs, h)
	}
	slices.Sort(hs)
	return hs
}

// checkDay fails unless got is exactly the UTC day want.
func checkDay(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if got.IsZero() {
		return
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
	if h, m, s := got.Clock(); h != 0 || m != 0 || s != 0 || got.Nanosecond() != 0 {
		t.Errorf("%s = %v has a time of day", what, got)
	}
}

// checkAccount fails unless got matches want, whose days are expected
// already truncated.
func checkAccount(t *testing.T, got, want storage.Account) {
	t.Helper()
	if got.JID != want.JID {
		t.Errorf("JID = %q, want %q", got.JID, want.JID)
	}
	if d := diffKeys(got.Keys, want.Keys); d != "" {
		t.Errorf("%s: keys: %s", want.JID, d)
	}
	checkDay(t, want.JID+" Created", got.Created, want.Created)
	checkDay(t, want.JID+" LastLogin", got.LastLogin, want.LastLogin)
	checkDay(t, want.JID+" Removed", got.Removed, want.Removed)
}

func testCreateGet(t *testing.T, s storage.Accounts) {
	mustCreate(t, s, newAccount("alice@example.org", 1))
	got := mustGet(t, s, "alice@example.org")
	checkAccount(t, got, storage.Account{JID: "alice@example.org", Keys: keys(1), Created: createdDay()})
	if len(got.Keys) != 3 {
		t.Errorf("got %d hashes, want 3", len(got.Keys))
	}
}

func testCreateExists(t *testing.T, s storage.Accounts) {
	mustCreate(t, s, newAccount("alice@example.org", 1))
	dup := newAccount("alice@example.org", 2)
	dup.Created = createdLocal.AddDate(0, 1, 0)
	err := s.CreateAccount(t.Context(), dup)
	if !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second CreateAccount = %v, want ErrExists", err)
	}
	// The failed create must not have touched the first account.
	checkAccount(t, mustGet(t, s, "alice@example.org"),
		storage.Account{JID: "alice@example.org", Keys: keys(1), Created: createdDay()})
}

func testNotFound(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	mustCreate(t, s, newAccount("alice@example.org", 1))
	for _, jid := range []string{"bob@example.org", "alice@example.net", "example.org", "alice"} {
		if _, err := s.Account(ctx, jid); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Account(%q) = %v, want ErrNotFound", jid, err)
		}
		if err := s.SetKeys(ctx, jid, keys(2)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("SetKeys(%q) = %v, want ErrNotFound", jid, err)
		}
		if err := s.TouchLogin(ctx, jid, time.Now()); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("TouchLogin(%q) = %v, want ErrNotFound", jid, err)
		}
		if err := s.DeleteAccount(ctx, jid); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("DeleteAccount(%q) = %v, want ErrNotFound", jid, err)
		}
	}
	// None of that may have created anything.
	got, err := s.Accounts(ctx, "")
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	if want := []string{"alice@example.org"}; !slices.Equal(got, want) {
		t.Errorf("Accounts(\"\") = %q, want %q", got, want)
	}
}

func testSetKeys(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	mustCreate(t, s, newAccount("alice@example.org", 1))
	if err := s.TouchLogin(ctx, "alice@example.org", createdLocal.AddDate(0, 0, 3)); err != nil {
		t.Fatalf("TouchLogin: %v", err)
	}

	// A password change that keeps only SHA-256: the others must be gone.
	only := map[storage.Hash]storage.SCRAMKeys{storage.SHA256: keys(2)[storage.SHA256]}
	if err := s.SetKeys(ctx, "alice@example.org", only); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	checkAccount(t, mustGet(t, s, "alice@example.org"), storage.Account{
		JID:       "alice@example.org",
		Keys:      map[storage.Hash]storage.SCRAMKeys{storage.SHA256: keys(2)[storage.SHA256]},
		Created:   createdDay(),
		LastLogin: createdDay().AddDate(0, 0, 3),
	})

	// And back to all three, with new values.
	if err := s.SetKeys(ctx, "alice@example.org", keys(3)); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	if d := diffKeys(mustGet(t, s, "alice@example.org").Keys, keys(3)); d != "" {
		t.Errorf("after second SetKeys: %s", d)
	}
}

func testDays(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	east := time.FixedZone("UTC+9", 9*60*60)
	tests := []struct {
		name      string
		created   time.Time
		wantDay   time.Time
		login     time.Time
		wantLogin time.Time
	}{
		{
			name:      "west",
			created:   createdLocal, // 2024-03-10 22:30 at UTC-5
			wantDay:   createdDay(), // 2024-03-11 UTC
			login:     time.Date(2024, 3, 12, 1, 2, 3, 4, east),
			wantLogin: time.Date(2024, 3, 11, 0, 0, 0, 0, time.UTC),
		},
		{
			name:      "east",
			created:   time.Date(2025, 1, 1, 8, 59, 59, 999, east),
			wantDay:   time.Date(2024, 12, 31, 0, 0, 0, 0, time.UTC),
			login:     time.Date(2025, 1, 1, 9, 0, 0, 0, east),
			wantLogin: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name:      "utc",
			created:   time.Date(2000, 2, 29, 23, 59, 59, 0, time.UTC),
			wantDay:   time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
			login:     time.Date(2000, 3, 1, 0, 0, 0, 1, time.UTC),
			wantLogin: time.Date(2000, 3, 1, 0, 0, 0, 0, time.UTC),
		},
		{
			name:      "local",
			created:   time.Date(2030, 6, 15, 12, 0, 0, 0, time.Local),
			wantDay:   storage.Day(time.Date(2030, 6, 15, 12, 0, 0, 0, time.Local)),
			login:     time.Date(2030, 6, 16, 12, 0, 0, 0, time.Local),
			wantLogin: storage.Day(time.Date(2030, 6, 16, 12, 0, 0, 0, time.Local)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jid := tt.name + "@example.org"
			a := newAccount(jid, 1)
			a.Created = tt.created
			mustCreate(t, s, a)
			got := mustGet(t, s, jid)
			checkDay(t, "Created", got.Created, tt.wantDay)
			checkDay(t, "LastLogin before login", got.LastLogin, time.Time{})
			if !got.LastLogin.IsZero() {
				t.Errorf("LastLogin of a new account = %v, want zero", got.LastLogin)
			}
			if err := s.TouchLogin(ctx, jid, tt.login); err != nil {
				t.Fatalf("TouchLogin: %v", err)
			}
			checkDay(t, "LastLogin", mustGet(t, s, jid).LastLogin, tt.wantLogin)
		})
	}

	// A LastLogin given at creation is truncated too.
	a := newAccount("given@example.org", 1)
	a.LastLogin = createdLocal
	mustCreate(t, s, a)
	checkDay(t, "given LastLogin", mustGet(t, s, a.JID).LastLogin, createdDay())
}

func testTouchLogin(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	const jid = "alice@example.org"
	mustCreate(t, s, newAccount(jid, 1))
	want := storage.Account{JID: jid, Keys: keys(1), Created: createdDay()}

	steps := []struct {
		name  string
		login time.Time
		want  time.Time
	}{
		{"first", time.Date(2024, 4, 1, 8, 0, 0, 0, time.UTC), time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"same day", time.Date(2024, 4, 1, 23, 59, 59, 0, time.UTC), time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"same day again", time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)},
		{"next day", time.Date(2024, 4, 2, 0, 0, 1, 0, time.UTC), time.Date(2024, 4, 2, 0, 0, 0, 0, time.UTC)},
		{"month later", time.Date(2024, 5, 2, 7, 0, 0, 0, time.UTC), time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC)},
		// The contract records the day given, even an earlier one (a clock
		// set back); it does not keep the latest.
		{"earlier day", time.Date(2024, 4, 20, 7, 0, 0, 0, time.UTC), time.Date(2024, 4, 20, 0, 0, 0, 0, time.UTC)},
	}
	for _, st := range steps {
		if err := s.TouchLogin(ctx, jid, st.login); err != nil {
			t.Fatalf("%s: TouchLogin: %v", st.name, err)
		}
		want.LastLogin = st.want
		// Keys and Created must survive every touch.
		checkAccount(t, mustGet(t, s, jid), want)
	}
}

func testList(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	// Created out of order; domains chosen so that substring or suffix
	// matching would give wrong answers.
	for i, jid := range []string{
		"zed@a.example",
		"amy@b.example",
		"bob@a.example",
		"a.example@b.example",
		"x@sub.a.example",
		"y@aa.example",
	} {
		mustCreate(t, s, newAccount(jid, byte(i)))
	}
	tests := []struct {
		domain string
		want   []string
	}{
		{"a.example", []string{"bob@a.example", "zed@a.example"}},
		{"b.example", []string{"a.example@b.example", "amy@b.example"}},
		{"sub.a.example", []string{"x@sub.a.example"}},
		{"example", nil},
		{"c.example", nil},
		{"", []string{
			"a.example@b.example",
			"amy@b.example",
			"bob@a.example",
			"x@sub.a.example",
			"y@aa.example",
			"zed@a.example",
		}},
	}
	for _, tt := range tests {
		got, err := s.Accounts(ctx, tt.domain)
		if err != nil {
			t.Errorf("Accounts(%q): %v", tt.domain, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Accounts(%q) = %q, want %q", tt.domain, got, tt.want)
		}
	}
}

func testDelete(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	jids := []string{"alice@example.org", "bob@example.org", "carol@example.net"}
	for i, jid := range jids {
		mustCreate(t, s, newAccount(jid, byte(i)))
	}
	if err := s.TouchLogin(ctx, "carol@example.net", createdLocal); err != nil {
		t.Fatalf("TouchLogin: %v", err)
	}
	if err := s.DeleteAccount(ctx, "bob@example.org"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}

	if _, err := s.Account(ctx, "bob@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Account of deleted = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAccount(ctx, "bob@example.org"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second DeleteAccount = %v, want ErrNotFound", err)
	}
	checkAccount(t, mustGet(t, s, "alice@example.org"),
		storage.Account{JID: "alice@example.org", Keys: keys(0), Created: createdDay()})
	checkAccount(t, mustGet(t, s, "carol@example.net"),
		storage.Account{JID: "carol@example.net", Keys: keys(2), Created: createdDay(), LastLogin: createdDay()})
	got, err := s.Accounts(ctx, "")
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	if want := []string{"alice@example.org", "carol@example.net"}; !slices.Equal(got, want) {
		t.Errorf("Accounts(\"\") = %q, want %q", got, want)
	}

	// The JID is free again, and the new account starts clean.
	a := newAccount("bob@example.org", 7)
	a.Keys = map[storage.Hash]storage.SCRAMKeys{storage.SHA512: keys(7)[storage.SHA512]}
	mustCreate(t, s, a)
	checkAccount(t, mustGet(t, s, "bob@example.org"), storage.Account{
		JID:     "bob@example.org",
		Keys:    map[storage.Hash]storage.SCRAMKeys{storage.SHA512: keys(7)[storage.SHA512]},
		Created: createdDay(),
	})
}

// scribble overwrites every byte slice in keys and adds and removes hashes.
func scribble(keys map[storage.Hash]storage.SCRAMKeys) {
	for h, k := range keys {
		for _, b := range [][]byte{k.Salt, k.StoredKey, k.ServerKey} {
			for i := range b {
				b[i] ^= 0xff
			}
		}
		k.Iterations = 1
		keys[h] = k
	}
	delete(keys, storage.SHA1)
	keys["SCRIBBLE"] = storage.SCRAMKeys{Iterations: 2}
}

func testCopies(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	const jid = "alice@example.org"
	want := storage.Account{JID: jid, Keys: keys(1), Created: createdDay()}

	// Mutating what was passed to CreateAccount.
	in := newAccount(jid, 1)
	mustCreate(t, s, in)
	scribble(in.Keys)
	checkAccount(t, mustGet(t, s, jid), want)

	// Mutating what Account returned.
	out := mustGet(t, s, jid)
	scribble(out.Keys)
	checkAccount(t, mustGet(t, s, jid), want)

	// Two reads must not share memory either.
	a, b := mustGet(t, s, jid), mustGet(t, s, jid)
	scribble(a.Keys)
	if d := diffKeys(b.Keys, keys(1)); d != "" {
		t.Errorf("second read changed through the first: %s", d)
	}

	// Mutating what was passed to SetKeys.
	set := keys(2)
	if err := s.SetKeys(ctx, jid, set); err != nil {
		t.Fatalf("SetKeys: %v", err)
	}
	scribble(set)
	want.Keys = keys(2)
	checkAccount(t, mustGet(t, s, jid), want)
}

func testConcurrent(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 20
	)
	mustCreate(t, s, newAccount("shared@example.org", 1))

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			if err := concurrentWorker(ctx, s, w, rounds); err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		})
	}
	wg.Wait()

	got, err := s.Accounts(ctx, "")
	if err != nil {
		t.Fatalf("Accounts: %v", err)
	}
	want := []string{"shared@example.org"}
	for w := range workers {
		want = append(want, fmt.Sprintf("w%d-kept@example.org", w))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Accounts after concurrent use = %q, want %q", got, want)
	}
	for w := range workers {
		jid := fmt.Sprintf("w%d-kept@example.org", w)
		checkAccount(t, mustGet(t, s, jid), storage.Account{
			JID:       jid,
			Keys:      keys(byte(rounds - 1)),
			Created:   createdDay(),
			LastLogin: createdDay().AddDate(0, 0, rounds-1),
		})
	}
}

// concurrentWorker mixes every method on accounts of its own and reads and
// touches an account shared by all workers.
func concurrentWorker(ctx context.Context, s storage.Accounts, w, rounds int) error {
	kept := fmt.Sprintf("w%d-kept@example.org", w)
	if err := s.CreateAccount(ctx, newAccount(kept, 0)); err != nil {
		return err
	}
	for r := range rounds {
		tmp := fmt.Sprintf("w%d-tmp%d@example.org", w, r)
		if err := s.CreateAccount(ctx, newAccount(tmp, byte(r))); err != nil {
			return err
		}
		if err := s.SetKeys(ctx, kept, keys(byte(r))); err != nil {
			return err
		}
		if err := s.TouchLogin(ctx, kept, createdLocal.AddDate(0, 0, r)); err != nil {
			return err
		}
		if err := s.TouchLogin(ctx, "shared@example.org", createdLocal.AddDate(0, 0, r%3)); err != nil {
			return err
		}
		a, err := s.Account(ctx, "shared@example.org")
		if err != nil {
			return err
		}
		if d := diffKeys(a.Keys, keys(1)); d != "" {
			return fmt.Errorf("shared account: %s", d)
		}
		if _, err := s.Accounts(ctx, "example.org"); err != nil {
			return err
		}
		if err := s.DeleteAccount(ctx, tmp); err != nil {
			return err
		}
	}
	return nil
}

// testRemoved: SetRemoved keeps the day of a removal (truncated), keeps
// the rest of the account, clears with the zero Time, fails for an
// unknown account, and CreateAccount keeps a Removed day too.
func testRemoved(t *testing.T, s storage.Accounts) {
	ctx := t.Context()
	a := newAccount("juliet@example.com", 1)
	mustCreate(t, s, a)
	a.Created = createdDay()
	checkAccount(t, mustGet(t, s, a.JID), a)

	when := time.Date(2026, 12, 6, 17, 42, 5, 9, time.FixedZone("CET", 3600))
	if err := s.SetRemoved(ctx, a.JID, when); err != nil {
		t.Fatal(err)
	}
	want := a
	want.Removed = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	checkAccount(t, mustGet(t, s, a.JID), want)

	// Other changes keep the mark.
	if err := s.TouchLogin(ctx, a.JID, when.AddDate(0, 0, 1)); err != nil {
		t.Fatal(err)
	}
	want.LastLogin = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	if err := s.SetKeys(ctx, a.JID, keys(2)); err != nil {
		t.Fatal(err)
	}
	want.Keys = keys(2)
	checkAccount(t, mustGet(t, s, a.JID), want)

	if err := s.SetRemoved(ctx, a.JID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	want.Removed = time.Time{}
	checkAccount(t, mustGet(t, s, a.JID), want)

	if err := s.SetRemoved(ctx, "nobody@example.com", when); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetRemoved of an unknown account: %v, want ErrNotFound", err)
	}

	b := newAccount("romeo@example.com", 3)
	b.Removed = want.LastLogin
	mustCreate(t, s, b)
	b.Created = createdDay()
	checkAccount(t, mustGet(t, s, b.JID), b)
}
