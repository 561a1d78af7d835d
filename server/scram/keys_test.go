package scram_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

func TestNewKeys(t *testing.T) {
	tests := []struct {
		name       string
		password   string
		hash       storage.Hash
		iterations int
		wantIter   int
		wantSize   int
		wantErr    error // nil: any error when wantSize is 0
	}{
		{"SHA-1", "pencil", storage.SHA1, scram.MinIterations, scram.MinIterations, 20, nil},
		{"SHA-256", "pencil", storage.SHA256, 5000, 5000, 32, nil},
		{"SHA-512 default count", "pencil", storage.SHA512, 0, scram.DefaultIterations, 64, nil},
		{"non-ASCII", "pässwört ☃", storage.SHA256, scram.MinIterations, scram.MinIterations, 32, nil},
		{"empty", "", storage.SHA256, 0, 0, 0, scram.ErrInvalidPassword},
		{"invalid UTF-8", "pen\xffcil", storage.SHA256, 0, 0, 0, scram.ErrInvalidPassword},
		{"control character", "pen\x07cil", storage.SHA256, 0, 0, 0, scram.ErrInvalidPassword},
		{"too few iterations", "pencil", storage.SHA256, scram.MinIterations - 1, 0, 0, nil},
		{"negative iterations", "pencil", storage.SHA256, -1, 0, 0, nil},
		{"unknown hash", "pencil", "MD5", 0, 0, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := scram.NewKeys(tc.password, tc.hash, tc.iterations)
			if tc.wantSize == 0 {
				if err == nil {
					t.Fatal("NewKeys succeeded")
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("%v does not wrap %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(k.Salt) < 16 || k.Iterations != tc.wantIter || len(k.StoredKey) != tc.wantSize || len(k.ServerKey) != tc.wantSize {
				t.Fatalf("keys %+v", k)
			}
			if !scram.VerifyPlain(k, tc.hash, tc.password) {
				t.Error("VerifyPlain rejects the password")
			}
			k2, err := scram.NewKeys(tc.password, tc.hash, tc.iterations)
			if err != nil {
				t.Fatal(err)
			}
			if string(k.Salt) == string(k2.Salt) || string(k.StoredKey) == string(k2.StoredKey) {
				t.Error("two derivations share a salt")
			}
		})
	}
}

func TestNewAllKeys(t *testing.T) {
	all, err := scram.NewAllKeys("pencil", scram.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("got %d hashes", len(all))
	}
	for h, k := range all {
		if !scram.VerifyPlain(k, h, "pencil") {
			t.Errorf("%s: VerifyPlain rejects the password", h)
		}
	}
	if _, err := scram.NewAllKeys("", 0); !errors.Is(err, scram.ErrInvalidPassword) {
		t.Errorf("empty password: %v", err)
	}
}

func TestVerifyPlain(t *testing.T) {
	k := testKeys()["user"][storage.SHA256]
	tests := []struct {
		name     string
		keys     storage.SCRAMKeys
		hash     storage.Hash
		password string
		want     bool
	}{
		{"right", k, storage.SHA256, testPassword, true},
		{"wrong", k, storage.SHA256, "pencil2", false},
		{"case", k, storage.SHA256, "Pencil", false},
		{"empty", k, storage.SHA256, "", false},
		{"invalid UTF-8", k, storage.SHA256, "\xff", false},
		{"wrong hash", k, storage.SHA512, testPassword, false},
		{"unknown hash", k, "MD5", testPassword, false},
		{"zero keys", storage.SCRAMKeys{}, storage.SHA256, testPassword, false},
		{"no iterations", storage.SCRAMKeys{Salt: k.Salt, StoredKey: k.StoredKey, ServerKey: k.ServerKey}, storage.SHA256, testPassword, false},
		{"decoy", scram.DecoyKeys(testSecret, "user", storage.SHA256, scram.MinIterations), storage.SHA256, testPassword, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := scram.VerifyPlain(tc.keys, tc.hash, tc.password); got != tc.want {
				t.Fatalf("VerifyPlain = %v, want %v", got, tc.want)
			}
		})
	}
	// A password differing only in a non-ASCII space is the same once
	// prepared.
	nb, err := scram.NewKeys("open\u00a0sesame", storage.SHA1, scram.MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	if !scram.VerifyPlain(nb, storage.SHA1, "open sesame") {
		t.Error("non-breaking space not mapped to a space")
	}
}

func TestParsePlain(t *testing.T) {
	long := strings.Repeat("x", 256)
	max := strings.Repeat("x", 255)
	tests := []struct {
		name                    string
		msg                     string
		authzid, user, password string
		ok                      bool
	}{
		{"simple", "\x00tim\x00tanstaaftanstaaf", "", "tim", "tanstaaftanstaaf", true},
		{"authzid", "Ursel\x00Kurt\x00xipj3plmq", "Ursel", "Kurt", "xipj3plmq", true},
		{"UTF-8", "\x00jürgen\x00päss", "", "jürgen", "päss", true},
		{"255 bytes", max + "\x00" + max + "\x00" + max, max, max, max, true},
		{"empty", "", "", "", "", false},
		{"one NUL", "\x00tim", "", "", "", false},
		{"three NULs", "\x00tim\x00pw\x00", "", "", "", false},
		{"empty username", "\x00\x00pw", "", "", "", false},
		{"empty password", "\x00tim\x00", "", "", "", false},
		{"long authzid", long + "\x00tim\x00pw", "", "", "", false},
		{"long username", "\x00" + long + "\x00pw", "", "", "", false},
		{"long password", "\x00tim\x00" + long, "", "", "", false},
		{"huge", strings.Repeat("\x00", 10000), "", "", "", false},
		{"invalid UTF-8", "\x00t\xffim\x00pw", "", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, u, p, err := scram.ParsePlain([]byte(tc.msg))
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				if condition(err) != scram.MalformedRequest {
					t.Errorf("condition %q", condition(err))
				}
				return
			}
			if a != tc.authzid || u != tc.user || p != tc.password {
				t.Errorf("got %q %q %q", a, u, p)
			}
		})
	}
}

func TestDecoyKeys(t *testing.T) {
	a := scram.DecoyKeys(testSecret, "nobody", storage.SHA512, 0)
	b := scram.DecoyKeys(testSecret, "nobody", storage.SHA512, 0)
	c := scram.DecoyKeys(testSecret, "nobody", storage.SHA256, 0)
	if string(a.Salt) != string(b.Salt) || string(a.StoredKey) != string(b.StoredKey) {
		t.Error("decoys are not stable")
	}
	if string(a.Salt) == string(c.Salt) {
		t.Error("decoys for two hashes share a salt")
	}
	if len(a.StoredKey) != 64 || len(a.ServerKey) != 64 || len(c.StoredKey) != 32 || len(a.Salt) != 16 {
		t.Errorf("decoy sizes: %+v", a)
	}
	if k := scram.DecoyKeys(testSecret, "nobody", "MD5", 0); k.Salt != nil {
		t.Error("decoy for unknown hash")
	}
	if a.Iterations != scram.DefaultIterations {
		t.Errorf("DecoyKeys iterations = %d, want %d", a.Iterations, scram.DefaultIterations)
	}
	if d := scram.DecoyKeys([]byte("another secret"), "nobody", storage.SHA512, 0); string(d.Salt) == string(a.Salt) {
		t.Error("two secrets give the same decoy salt")
	}
}

// testSecret keys the decoys of these tests.
var testSecret = []byte("0123456789abcdef0123456789abcdef")
