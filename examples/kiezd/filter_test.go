package main

import (
	"testing"
)

// kiezd bans a network that guesses passwords, as [filter] says: after
// auth_failures failed logins the right password is refused too, until
// an allowlisted address would not be; the ban outlives a restart.
func TestFilterBansGuessing(t *testing.T) {
	file, _ := testConfig(t, "\n[filter]\nauth_failures = 3\n")
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	for i := range 3 {
		if sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "wrong password"); err == nil {
			logout(sess)
			t.Fatalf("attempt %d: a wrong password logged in", i)
		}
	}
	if sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password"); err == nil {
		logout(sess)
		t.Fatal("the right password still logs in from a banned network")
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}
	d = startServe(t, nil, "-config", file)
	if sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password"); err == nil {
		logout(sess)
		t.Error("the ban did not survive a restart")
	}
	d.stop(t)
}

// An allowlisted network is never banned.
func TestFilterAllow(t *testing.T) {
	file, _ := testConfig(t, "\n[filter]\nauth_failures = 3\nallow = [\"127.0.0.1\"]\n")
	if code, _, stderr := kiezd(t, "password\n", "-config", file, "adduser", "alice@localhost"); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	for range 4 {
		if sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "wrong password"); err == nil {
			logout(sess)
		}
	}
	sess, err := login(t, d.bound.C2S[0], false, "alice@localhost", "password")
	if err != nil {
		t.Fatalf("an allowlisted address was banned: %v", err)
	}
	logout(sess)
	d.stop(t)
	if code, _, stderr := kiezd(t, "", "-config", file, "check-config"); code != 0 {
		t.Fatal(stderr)
	}
	bad, _ := testConfig(t, "\n[filter]\nallow = [\"not an address\"]\n")
	if code, _, stderr := kiezd(t, "", "-config", bad, "check-config"); code == 0 || stderr == "" {
		t.Error("a bad allow entry passed check-config")
	}
}
