package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/server/servertest"
)

// registration.removal_grace: an account removed in-band is listed by
// kiezd users as removed, with the day of its purge; kiezd undelete,
// through the control socket, lets it log in again; restoring an account
// that was not removed says so.
func TestRemovalGrace(t *testing.T) { onBothBackends(t, testRemovalGrace) }

func testRemovalGrace(t *testing.T) {
	file, _ := testConfig(t, "\n[registration]\nremoval_grace = \"14d\"\n")
	const user, pw = "alice@localhost", "correct horse"
	if code, _, stderr := kiezd(t, pw+"\n", "-config", file, "adduser", user); code != 0 {
		t.Fatal(stderr)
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatal("serve exited")
	}
	sess, err := login(t, d.bound.C2S[0], false, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	c := servertest.NewClient(t, sess)
	wantResultIQ(t, textIQ(t, c, "rm", `<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>`))
	<-c.Done()
	sess.Conn().Close()

	today := time.Now().UTC()
	want := fmt.Sprintf("removed %s, purged on %s", today.Format(time.DateOnly), today.AddDate(0, 0, 14).Format(time.DateOnly))
	var out string
	for range 100 {
		// The removal runs after the answer.
		_, out, _ = kiezd(t, "", "-config", file, "users")
		if strings.Contains(out, want) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out, want) {
		t.Fatalf("kiezd users: %q, want %q", out, want)
	}
	if _, err := login(t, d.bound.C2S[0], false, user, pw); err == nil {
		t.Fatal("a removed account logs in")
	}
	code, out, stderr := kiezd(t, "", "-config", file, "undelete", user)
	if code != 0 || out != "undeleted "+user+": it may log in again\n" {
		t.Fatalf("undelete: %d %q %q", code, out, stderr)
	}
	sess, err = login(t, d.bound.C2S[0], false, user, pw)
	if err != nil {
		t.Fatalf("the restored account cannot log in: %v", err)
	}
	logout(sess)
	if _, out, _ = kiezd(t, "", "-config", file, "users"); strings.Contains(out, "removed") {
		t.Errorf("kiezd users after undelete: %q", out)
	}
	code, _, stderr = kiezd(t, "", "-config", file, "undelete", user)
	if code != 1 || !strings.Contains(stderr, "was not removed") {
		t.Errorf("undelete of an account not removed: %d %q", code, stderr)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}
}

// registration.removal_grace refuses negative and overlong periods.
func TestRemovalGraceConfig(t *testing.T) {
	for _, v := range []string{`"-1d"`, `"91d"`, `14`} {
		file, _ := testConfig(t, "\n[registration]\nremoval_grace = "+v+"\n")
		code, _, stderr := kiezd(t, "", "-config", file, "check-config")
		if code == 0 || !strings.Contains(stderr, "removal_grace") {
			t.Errorf("removal_grace = %s: exit %d, %q", v, code, stderr)
		}
	}
}
