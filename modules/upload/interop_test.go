package upload_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiez-im/kiez/modules/upload"
)

// TestSlixmppUpload: Debian's slixmpp, as alice, uploads a file of 200 KB
// of random bytes with its xep_0363 plugin's upload_file: it finds the
// service through disco#items and disco#info, reads max-file-size from
// the service's XEP-0128 form, asks for a slot and PUTs the file with
// aiohttp over plain HTTP on loopback. It also asks for a slot one byte
// over the limit and checks the error (not-acceptable, <file-too-large/>
// with <max-file-size/>). On the Go side the script's bytes (read from
// the file it wrote), the SHA-256 it reports and the body of a GET of the
// URL it got must agree, and the file is served with the type slixmpp
// guessed from its name.
func TestSlixmppUpload(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import slixmpp.plugins.xep_0363, aiohttp").Run(); err != nil {
		if os.Getenv("KIEZ_REQUIRE_INTEROP") != "" {
			t.Fatalf("python3-slixmpp (with python3-aiohttp) is required: %v", err)
		}
		t.Skip("python3-slixmpp not installed (apt-get install python3-slixmpp)")
	}
	const (
		size    = 200 << 10
		maxSize = 1 << 20
	)
	e := start(t, upload.Options{MaxFileSize: maxSize})
	path := filepath.Join(t.TempDir(), "kiez interop.png")

	host, port, _ := net.SplitHostPort(e.srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, py, "../../testdata/interop/slixmpp_upload.py",
		e.alice.String(), host, port, path, strconv.Itoa(size), strconv.Itoa(maxSize))
	cmd.Env = append(os.Environ(), "KIEZ_TEST_PASSWORD=pw")
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run() // bounded by ctx
	cancel()
	if err != nil || t.Failed() {
		t.Fatalf("slixmpp client (exit: %v) wrote:\n%s", err, out.String())
	}
	said := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), " "); ok {
			said[k] = v
		}
	}
	if said["SERVICE"] != service.String() {
		t.Errorf("slixmpp found the service %q, want %s", said["SERVICE"], service)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if len(data) != size || said["SHA256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("the script's file has %d bytes and SHA-256 %x; it reported %q", len(data), sum, said["SHA256"])
	}
	get := said["URL"]
	if !strings.HasSuffix(get, "/kiez%20interop.png") || strings.Contains(get, "?") {
		t.Errorf("GET URL %q", get)
	}
	r := do(t, http.MethodGet, get, "", nil)
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", get, r.Status, err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), sum[:]) {
		t.Errorf("GET: %d bytes, SHA-256 %x; slixmpp uploaded %d bytes, SHA-256 %x", n, h.Sum(nil), size, sum)
	}
	if ct := r.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("served as %q, want image/png (as slixmpp declared it)", ct)
	}
	if got := e.stored(t); len(got) != 1 {
		t.Errorf("%d files stored, want 1: %v", len(got), got)
	}
}
