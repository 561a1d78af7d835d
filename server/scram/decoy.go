package scram

import (
	"crypto/rand"
	"sync"

	"github.com/kiez-im/kiez/storage"
)

// decoySecret keys the decoy credentials. It is random per process, so
// decoys are stable while the process runs and reveal nothing.
var decoySecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// DecoyKeys returns credentials for a user that does not exist, so that
// answers for unknown users look like answers for real ones. The salt and
// keys are HMACs of username and h under a random per-process secret: stable
// across attempts (a changing salt would show that the user is unknown),
// unpredictable, and matched by no password. Zero iterations means
// DefaultIterations; an unknown hash yields zero keys.
//
// The SCRAM server uses them by itself. For PLAIN, run VerifyPlain against
// them when the account is unknown, so that the answer takes as long.
func DecoyKeys(username string, h storage.Hash, iterations int) storage.SCRAMKeys {
	fn := hashFunc(h)
	if fn == nil {
		return storage.SCRAMKeys{}
	}
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	input := func(label string) []byte {
		return []byte(label + "\x00" + string(h) + "\x00" + username)
	}
	secret := decoySecret()
	return storage.SCRAMKeys{
		Salt:       hmacSum(fn, secret, input("salt"))[:saltLen],
		Iterations: iterations,
		StoredKey:  hmacSum(fn, secret, input("stored key")),
		ServerKey:  hmacSum(fn, secret, input("server key")),
	}
}
