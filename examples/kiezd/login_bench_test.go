package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/internal/loginclient"
)

// BenchmarkLoginCPU measures what a login costs the server: kiezd is built
// and runs in a process of its own on loopback, and the figure is logins
// per CPU second of that process (user and system time from
// /proc/PID/stat), and server CPU µs per login; ns/op is the wall time of
// one login, client included. The logins, one connection each, all with
// STARTTLS and SCRAM-SHA-256 or a FAST token, closing the stream at the
// end:
//
//   - SCRAM: classic SASL, a stream restart and a bind iq;
//   - SASL2: SASL2 with Bind 2 (XEP-0388, XEP-0386), stream management
//     enabled inside the authentication;
//   - FAST: SASL2 with a XEP-0484 token (HT-SHA-256-EXPR, asked for once
//     in a SCRAM login) and Bind 2.
//
// The client (internal/loginclient) keeps its SCRAM SaltedPassword and its
// token, as real clients do. Linux only (/proc). Run with
//
//	go test ./examples/kiezd/ -run '^$' -bench LoginCPU -benchtime 300x
func BenchmarkLoginCPU(b *testing.B) {
	if _, err := serverCPU(os.Getpid()); err != nil {
		b.Skipf("no process CPU times here: %v", err)
	}
	bin := buildKiezd(b)
	addr := freePort(b)
	dir := b.TempDir()
	file := filepath.Join(dir, "kiezd.toml")
	// The IP filter stays on, as on a real server, with room for the
	// benchmark's connections from one address.
	conf := "domains = [\"localhost\"]\ndata_dir = \"data\"\nscram_iterations = 4096\n" +
		"[listen]\nc2s = [\"" + addr + "\"]\ndirect_tls = []\nhttps = []\n\n[s2s]\nlisten = []\n\n" +
		"[filter]\nconn_rate = 1000000\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	createDB(b, filepath.Join(dir, "data"))
	if code, _, stderr := kiezd(b, "bench password\n", "-config", file, "adduser", "u0@localhost"); code != 0 {
		b.Fatal(stderr)
	}
	pid := startProcess(b, exec.Command(bin, "-config", file, "serve"), addr).cmd.Process.Pid
	for _, bc := range []struct {
		name  string
		login func(*loginclient.Client, net.Conn) error
	}{
		{"SCRAM", (*loginclient.Client).Login},
		{"SASL2", (*loginclient.Client).LoginSASL2},
		{"FAST", (*loginclient.Client).LoginFAST},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cl := &loginclient.Client{Domain: "localhost", User: "u0", Password: "bench password", SCRAM: "SCRAM-SHA-256", FAST: "HT-SHA-256-EXPR"}
			login := func() {
				nc, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				if err := bc.login(cl, nc); err != nil {
					b.Fatal(err)
				}
			}
			login() // derives the SaltedPassword, asks for the FAST token
			before, err := serverCPU(pid)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				login()
				n++
			}
			after, err := serverCPU(pid)
			if err != nil {
				b.Fatal(err)
			}
			if used := after - before; used > 0 {
				b.ReportMetric(float64(n)/used.Seconds(), "logins/server-cpu-s")
				b.ReportMetric(float64(used.Microseconds())/float64(n), "server-cpu-µs/login")
			}
		})
	}
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on
// every Linux architecture Go runs on.
const userHZ = 100

// serverCPU returns the user and system CPU time process pid has used,
// all its threads together.
func serverCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces; utime and stime
	// are the 14th and 15th fields, the 12th and 13th after it.
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	var ticks int64
	for _, s := range f[11:13] {
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
		}
		ticks += t
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
