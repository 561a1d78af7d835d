package invite_test

import (
	"context"
	"image"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/modules/invite"
)

// svgPath matches the landing page's QR code: its size in modules and
// its path of horizontal runs.
var svgPath = regexp.MustCompile(`<svg [^>]*viewBox="0 0 (\d+) (\d+)"[^>]*>.*<path fill="#000" d="([^"]*)"/></svg>`)

// TestLandingPageQR: the landing page shows the invitation's URI as an
// inline, labelled SVG QR code beside the link, under the same headers;
// the code drawn from the page's own SVG decodes to the URI (with
// zbarimg, when installed).
func TestLandingPageQR(t *testing.T) {
	e := start(t, invite.Options{})
	admin, err := e.inv.Create(context.Background(), invite.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	contact, err := e.inv.Create(context.Background(), invite.CreateOptions{Creator: e.alice, Contact: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range []invite.Invite{admin, contact} {
		res := get(t, inv.LandingURL)
		if res.code != http.StatusOK {
			t.Fatalf("GET %s: %d", inv.LandingURL, res.code)
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
			"Cache-Control":           "no-store",
			"Referrer-Policy":         "no-referrer",
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := res.header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		for _, want := range []string{`href="` + inv.URI + `"`, `role="img" aria-label="QR code of the invitation"`} {
			if !strings.Contains(res.body, want) {
				t.Errorf("page lacks %q:\n%s", want, res.body)
			}
		}
		if n := strings.Count(res.body, "<svg"); n != 1 {
			t.Fatalf("%d SVGs on the page:\n%s", n, res.body)
		}
		if strings.Contains(res.body, "style=") || strings.Contains(res.body, "<script") {
			t.Errorf("the page has a style or script:\n%s", res.body)
		}
		m := svgPath.FindStringSubmatch(res.body)
		if m == nil {
			t.Fatalf("no QR path on the page:\n%s", res.body)
		}
		img := drawSVG(t, m[1], m[3])
		if got := zbar(t, img); got != inv.URI {
			t.Errorf("the page's QR code reads %q, want %q", got, inv.URI)
		}
	}
}

// drawSVG draws the runs "Mx yhNv1h-Nz" of a side×side-module path as
// an image, 4 pixels a module.
func drawSVG(t *testing.T, side, d string) *image.Gray {
	t.Helper()
	n, err := strconv.Atoi(side)
	if err != nil {
		t.Fatal(err)
	}
	const px = 4
	img := image.NewGray(image.Rect(0, 0, n*px, n*px))
	for i := range img.Pix {
		img.Pix[i] = 0xFF
	}
	if !regexp.MustCompile(`^(M\d+ \d+h\d+v1h-\d+z)+$`).MatchString(d) {
		t.Fatalf("path %q is not made of runs", d)
	}
	for _, r := range regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`).FindAllStringSubmatch(d, -1) {
		x, _ := strconv.Atoi(r[1])
		y, _ := strconv.Atoi(r[2])
		w, _ := strconv.Atoi(r[3])
		if r[3] != r[4] || x+w > n || y >= n {
			t.Fatalf("run %q outside the %d-module square", r[0], n)
		}
		for py := y * px; py < (y+1)*px; py++ {
			clear(img.Pix[py*img.Stride+x*px : py*img.Stride+(x+w)*px])
		}
	}
	return img
}

// zbar returns what zbarimg reads from img, or skips the test when it is
// not installed.
func zbar(t *testing.T, img image.Image) string {
	t.Helper()
	bin, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("zbarimg not installed (Debian package zbar-tools): the QR code is not decoded")
	}
	path := filepath.Join(t.TempDir(), "qr.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--raw", "-q", path).Output()
	if err != nil {
		t.Errorf("zbarimg: %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}
