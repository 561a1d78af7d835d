package server_test

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/servertest"
	"github.com/kiez-im/kiez/storage/bbolt"
)

// challenge is what a SCRAM server-first-message shows of an account.
type challenge struct {
	salt       string
	iterations string
}

var serverFirst = regexp.MustCompile(`^r=[^,]+,s=([^,]+),i=([0-9]+)$`)

// scramChallenge starts a SCRAM-SHA-256 exchange for username and returns
// the salt and iteration count the server shows.
func scramChallenge(t *testing.T, addr, username string) challenge {
	t.Helper()
	r := dialRaw(t, addr)
	r.startTLS()
	first := base64.StdEncoding.EncodeToString([]byte("n,,n=" + username + ",r=clientnonce"))
	r.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + first + `</auth>`)
	got := r.expect("</challenge>", "</failure>")
	m := regexp.MustCompile(`<challenge[^>]*>([^<]*)</challenge>`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no challenge for %q: %s", username, got)
	}
	sf, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	f := serverFirst.FindStringSubmatch(string(sf))
	if f == nil {
		t.Fatalf("server-first for %q does not look normal: %q", username, sf)
	}
	return challenge{salt: f[1], iterations: f[2]}
}

// startOn runs a test server on the bbolt file at path with iterations
// for new passwords, until the (sub)test ends.
func startOn(t *testing.T, path string, iterations int) *servertest.Server {
	t.Helper()
	st, err := bbolt.Open(path, bbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return servertest.Start(t, server.Config{Accounts: st, SCRAMIterations: iterations})
}

// An unknown name's challenge behaves like a real one's: the same salt
// for every spelling of the name, the same salt after a restart, and an
// iteration count that real accounts have, also after scram_iterations
// was raised.
func TestDecoyIndistinguishable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiez.db")
	spellings := func(name string) []string {
		// Fullwidth letters map to ASCII under the PRECIS
		// UsernameCaseMapped profile, as upper case maps to lower.
		return []string{name, upper(name), "\uff41" + name[1:]}
	}
	var before map[string]challenge
	t.Run("first run", func(t *testing.T) {
		srv := startOn(t, path, 4096)
		srv.AddUser(t, "alice", "pw")
		srv.AddUser(t, "bob", "pw")
		before = make(map[string]challenge)
		for _, name := range []string{"alice", "anna"} { // anna has no account
			var first challenge
			for i, sp := range spellings(name) {
				c := scramChallenge(t, srv.Addr, sp)
				if i == 0 {
					first = c
					continue
				}
				if c != first {
					t.Errorf("%s: spelling %q shows %+v, %q shows %+v", name, sp, c, name, first)
				}
			}
			before[name] = first
			if first.iterations != "4096" {
				t.Errorf("%s shows %s iterations, want 4096", name, first.iterations)
			}
		}
	})
	t.Run("after a restart with more iterations", func(t *testing.T) {
		srv := startOn(t, path, 20000)
		for _, name := range []string{"alice", "anna"} {
			if c := scramChallenge(t, srv.Addr, name); c != before[name] {
				t.Errorf("%s shows %+v after a restart, %+v before", name, c, before[name])
			}
		}
		// Half the accounts now have the new count: unknown names show
		// both counts, in about that proportion.
		srv.AddUser(t, "carol", "pw")
		srv.AddUser(t, "dave", "pw")
		seen := make(map[string]int)
		for i := range 40 {
			seen[scramChallenge(t, srv.Addr, fmt.Sprintf("nobody%d", i)).iterations]++
		}
		if seen["4096"] == 0 || seen["20000"] == 0 || len(seen) != 2 {
			t.Errorf("unknown names show iteration counts %v, want both 4096 and 20000", seen)
		}
	})
}

// upper returns name with ASCII letters in upper case.
func upper(name string) string {
	b := []byte(name)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
