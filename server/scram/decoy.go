package scram

import (
	"crypto/rand"
	"sync"

	"github.com/kiez-im/kiez/storage"
)

// processSecret keys the decoy credentials of servers configured without
// ServerConfig.Decoy. It is random per process: such decoys are stable
// while the process runs, but change at a restart while real accounts'
// salts do not, so servers should keep a secret of their own (the Kiez
// server keeps it in its store).
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// DecoyKeys returns credentials for a user that does not exist, so that
// answers for unknown users look like answers for real ones. The salt and
// keys are HMACs of username and h under secret: stable across attempts
// and restarts as long as the secret is (a changing salt would show that
// the user is unknown), unpredictable without the secret, and matched by
// no password. username must be the name as the store would look it up
// (normalised, and qualified with the domain where several are served),
// so that every spelling of one name gets one decoy. Zero iterations
// means DefaultIterations; an unknown hash yields zero keys.
//
// The SCRAM server uses them through ServerConfig.Decoy. For PLAIN, run
// VerifyPlain against them when the account is unknown, so that the
// answer takes as long.
func DecoyKeys(secret []byte, username string, h storage.Hash, iterations int) storage.SCRAMKeys {
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
	return storage.SCRAMKeys{
		Salt:       hmacSum(fn, secret, input("salt"))[:saltLen],
		Iterations: iterations,
		StoredKey:  hmacSum(fn, secret, input("stored key")),
		ServerKey:  hmacSum(fn, secret, input("server key")),
	}
}
