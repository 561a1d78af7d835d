package scram_test

import (
	"errors"
	"fmt"

	"mellium.im/sasl"

	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

// Register an account with NewAllKeys, then authenticate it with
// SCRAM-SHA-256: the server sees only the stored keys.
func ExampleNewServer() {
	accounts := map[string]map[storage.Hash]storage.SCRAMKeys{}
	keys, err := scram.NewAllKeys("correct horse", scram.MinIterations)
	if err != nil {
		panic(err)
	}
	accounts["juliet"] = keys

	srv, err := scram.NewServer(scram.MechSHA256, scram.ServerConfig{
		Domain: "example.net",
		Lookup: func(username string) (storage.SCRAMKeys, error) {
			k, ok := accounts[username][storage.SHA256]
			if !ok {
				return storage.SCRAMKeys{}, storage.ErrNotFound
			}
			return k, nil
		},
	})
	if err != nil {
		panic(err)
	}
	cli, err := scram.NewClient(scram.MechSHA256, "juliet", "correct horse", "", nil, "")
	if err != nil {
		panic(err)
	}

	clientFirst, _, _ := cli.Step(nil)           // in <auth/>
	serverFirst, _, err := srv.Step(clientFirst) // in <challenge/>
	if err != nil {
		panic(err)
	}
	clientFinal, _, err := cli.Step(serverFirst) // in <response/>
	if err != nil {
		panic(err)
	}
	serverFinal, done, err := srv.Step(clientFinal) // in <success/>
	var f *scram.Failure
	if errors.As(err, &f) {
		fmt.Println("<failure/> with", f.Condition)
		return
	}
	_, verified, err := cli.Step(serverFinal)
	fmt.Println(done, srv.Username(), verified, err)
	// Output: true juliet true <nil>
}

// Derive the credentials to store for one hash function.
func ExampleNewKeys() {
	k, err := scram.NewKeys("correct horse", storage.SHA512, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(k.Salt), k.Iterations, len(k.StoredKey), len(k.ServerKey))
	_, err = scram.NewKeys("", storage.SHA512, 0)
	fmt.Println(errors.Is(err, scram.ErrInvalidPassword))
	// Output:
	// 16 10000 64 64
	// true
}

// Authenticate a PLAIN <auth/> against SCRAM keys.
func ExampleVerifyPlain() {
	keys, err := scram.NewKeys("tanstaaftanstaaf", storage.SHA256, scram.MinIterations)
	if err != nil {
		panic(err)
	}
	authzid, username, password, err := scram.ParsePlain([]byte("\x00tim\x00tanstaaftanstaaf"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q %q %v\n", authzid, username, scram.VerifyPlain(keys, storage.SHA256, password))
	fmt.Println(scram.VerifyPlain(keys, storage.SHA256, "wrong"))
	// Output:
	// "" "tim" true
	// false
}

// Without TLS only the plain mechanisms can be offered.
func ExampleMechanisms() {
	fmt.Println(scram.Mechanisms(nil))
	fmt.Println(scram.ChannelBindingTypes(nil))
	// Output:
	// [SCRAM-SHA-512 SCRAM-SHA-256 SCRAM-SHA-1]
	// []
}

// Give mellium's SASL negotiator (and so mellium's XMPP client, through
// xmpp.SASL) SCRAM-SHA-512, which mellium lacks.
func ExampleClientMechanism() {
	keys, err := scram.NewKeys("correct horse", storage.SHA512, scram.MinIterations)
	if err != nil {
		panic(err)
	}
	srv, err := scram.NewServer(scram.MechSHA512, scram.ServerConfig{
		Lookup: func(string) (storage.SCRAMKeys, error) { return keys, nil },
	})
	if err != nil {
		panic(err)
	}
	n := sasl.NewClient(scram.ClientMechanism(scram.MechSHA512, ""),
		sasl.Credentials(func() ([]byte, []byte, []byte) {
			return []byte("romeo"), []byte("correct horse"), nil
		}))

	var challenge []byte
	for more := true; more; {
		var resp []byte
		if more, resp, err = n.Step(challenge); err != nil {
			panic(err)
		}
		if resp == nil {
			break
		}
		if challenge, _, err = srv.Step(resp); err != nil {
			panic(err)
		}
	}
	fmt.Println(srv.Username())
	// Output: romeo
}
