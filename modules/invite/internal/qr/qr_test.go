package qr

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFormatBits: known format information strings (ISO/IEC 18004 table
// C.1) and the code's minimum distance of 7 over all 32 words.
func TestFormatBits(t *testing.T) {
	for _, tt := range []struct {
		level Level
		mask  int
		want  int
	}{
		{M, 0, 0b101010000010010},
		{L, 0, 0b111011111000100},
		{Q, 0, 0b011010101011111},
		{H, 0, 0b001011010001001},
	} {
		if got := formatBits(tt.level, tt.mask); got != tt.want {
			t.Errorf("format %v mask %d: %015b, want %015b", tt.level, tt.mask, got, tt.want)
		}
	}
	var words []int
	for l := L; l <= H; l++ {
		for m := 0; m < 8; m++ {
			words = append(words, formatBits(l, m))
		}
	}
	for i, a := range words {
		for _, b := range words[i+1:] {
			if d := popcount(a ^ b); d < 7 {
				t.Errorf("format words %015b and %015b differ in %d bits", a, b, d)
			}
		}
	}
}

func popcount(x int) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// TestVersionBits: known version information (ISO/IEC 18004 table D.1).
func TestVersionBits(t *testing.T) {
	for v, want := range map[int]int{7: 0x07C94, 8: 0x085BC, 21: 0x15683, 40: 0x28C69} {
		if got := bch(v, 12, 0x1F25); got != want {
			t.Errorf("version %d: %018b, want %018b", v, got, want)
		}
	}
}

// TestRS: the error correction codewords of ISO/IEC 18004's example,
// "01234567" as version 1-M.
func TestRS(t *testing.T) {
	data := []byte{0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11}
	want := []byte{0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55}
	got := make([]byte, 10)
	remainder(data, generator(10), got)
	if !bytes.Equal(got, want) {
		t.Errorf("ECC % X, want % X", got, want)
	}
}

// TestLayout: codeword totals and alignment pattern rows from ISO/IEC
// 18004 tables 1 and E.1, and the data bytes' layout.
func TestLayout(t *testing.T) {
	for v, want := range map[int]int{1: 26, 2: 44, 6: 172, 7: 196, 10: 346, 14: 581, 15: 655, 20: 1085, 32: 2465, 35: 2876, 40: 3706} {
		if got := rawCodewords(v); got != want {
			t.Errorf("version %d: %d codewords, want %d", v, got, want)
		}
	}
	for v, want := range map[int]string{1: "[]", 2: "[6 18]", 7: "[6 22 38]", 14: "[6 26 46 66]", 16: "[6 26 50 74]",
		32: "[6 34 60 86 112 138]", 36: "[6 24 50 76 102 128 154]", 40: "[6 30 58 86 114 142 170]"} {
		if got := fmt.Sprint(alignment(v)); got != want {
			t.Errorf("version %d: alignment %s, want %s", v, got, want)
		}
	}
	// "ab" in version 1-M: 0100 00000010 01100001 01100010 0000, pads.
	want := []byte{0x40, 0x26, 0x16, 0x20, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11}
	if got := dataBytes([]byte("ab"), 1, M); !bytes.Equal(got, want) {
		t.Errorf("data % X, want % X", got, want)
	}
	// Version 10 has a 16-bit count.
	if got := dataBytes([]byte("ab"), 10, M)[:5]; !bytes.Equal(got, []byte{0x40, 0x00, 0x26, 0x16, 0x20}) {
		t.Errorf("version 10 data % X", got)
	}
}

// TestCapacity: the byte mode capacities of ISO/IEC 18004 table 7 pick
// the version; one byte more needs the next, or is too long for 40.
func TestCapacity(t *testing.T) {
	for _, tt := range []struct {
		level   Level
		version int
		max     int
	}{
		{L, 1, 17}, {M, 1, 14}, {Q, 1, 11}, {H, 1, 7},
		{M, 9, 180}, {M, 10, 213}, {L, 40, 2953}, {M, 40, 2331}, {Q, 40, 1663}, {H, 40, 1273},
	} {
		c, err := Encode(make([]byte, tt.max), tt.level)
		if err != nil || c.Version() != tt.version || c.Size() != 17+4*tt.version || c.Level() != tt.level {
			t.Errorf("%d bytes at %v: %v, want version %d", tt.max, tt.level, err, tt.version)
			continue
		}
		c, err = Encode(make([]byte, tt.max+1), tt.level)
		if tt.version == 40 {
			if !errors.Is(err, ErrTooLong) {
				t.Errorf("%d bytes at %v: %v, want ErrTooLong", tt.max+1, tt.level, err)
			}
		} else if err != nil || c.Version() != tt.version+1 {
			t.Errorf("%d bytes at %v: %v, want version %d", tt.max+1, tt.level, err, tt.version+1)
		}
	}
	if _, err := Encode(nil, H+1); err == nil {
		t.Error("level 4 accepted")
	}
}

// TestPatterns: finders, timing, the dark module and the format
// information read back from a drawn symbol.
func TestPatterns(t *testing.T) {
	c, err := Encode([]byte("xmpp:example.org"), Q)
	if err != nil {
		t.Fatal(err)
	}
	n := c.Size()
	for _, f := range [3][2]int{{0, 0}, {n - 7, 0}, {0, n - 7}} {
		for y := 0; y < 7; y++ {
			for x := 0; x < 7; x++ {
				ring := max(abs(x-3), abs(y-3))
				if want := ring != 2; c.Black(f[0]+x, f[1]+y) != want {
					t.Errorf("finder at %v: module (%d,%d) is %v", f, x, y, !want)
				}
			}
		}
	}
	for i := 8; i < n-8; i++ {
		if c.Black(i, 6) != (i%2 == 0) || c.Black(6, i) != (i%2 == 0) {
			t.Errorf("timing module %d", i)
		}
	}
	if !c.Black(8, n-8) || c.Black(-1, 0) || c.Black(n, 0) {
		t.Error("dark module or quiet zone")
	}
	var first, second int
	for i := 14; i >= 0; i-- { // row 8 from the left, column 8 downwards
		col := []int{0, 1, 2, 3, 4, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8}[14-i]
		row := []int{8, 8, 8, 8, 8, 8, 8, 8, 7, 5, 4, 3, 2, 1, 0}[14-i]
		first = first<<1 | b2i(c.Black(col, row))
		if i >= 8 {
			second = second<<1 | b2i(c.Black(8, n-15+i))
		} else {
			second = second<<1 | b2i(c.Black(n-1-i, 8))
		}
	}
	if want := formatBits(Q, c.Mask()); first != want || second != want {
		t.Errorf("format read %015b and %015b, want %015b", first, second, want)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestZbar encodes payloads at every level, writes them as PNG and
// decodes them with zbarimg (Debian's zbar-tools).
func TestZbar(t *testing.T) {
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Skip("zbarimg not installed (Debian package zbar-tools): no round trip through a decoder")
	}
	long := strings.Repeat("Kiez invites you. ", 12) // 216 bytes: version 10 or more
	for _, payload := range []string{
		"a",
		"xmpp:localhost?register;preauth=Ab3_xY9-Qw8ErTy7UiOp1aSd4FgH5jKl6ZxC2vBn0Mq;ibr=y",
		"xmpp:alice@example.org?roster;preauth=AAAAAAAAAAAAAAAAAAAAAAAA;ibr=y",
		"Grüße aus Köln — 你好, мир ✓",
		long,
	} {
		for level := L; level <= H; level++ {
			c, err := Encode([]byte(payload), level)
			if err != nil {
				t.Fatalf("%q at %v: %v", payload, level, err)
			}
			name := fmt.Sprintf("%d%v", len(payload), level)
			if got := decode(t, zbar, c); got != payload {
				t.Errorf("%s (version %d, mask %d): decoded %q, want %q", name, c.Version(), c.Mask(), got, payload)
			}
			if payload == long && c.Version() < 7 {
				t.Errorf("%s: version %d, want at least 7", name, c.Version())
			}
		}
	}
}

// decode writes c as PNG and returns what zbarimg reads from it.
func decode(t *testing.T, zbar string, c *Code) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "code.png")
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.Image(4)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zbar, "--raw", "-q", path).Output()
	if err != nil {
		t.Errorf("zbarimg: %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// TestSVG: the SVG has the quiet zone, one path and one run per dark
// horizontal stretch, and an escaped label.
func TestSVG(t *testing.T) {
	c, err := Encode([]byte("hello"), M)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := c.SVG(&b, 3, `QR "code" <x>`); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{`width="87" height="87" viewBox="0 0 29 29"`, `aria-label="QR &#34;code&#34; &lt;x&gt;"`,
		`<title>QR &#34;code&#34; &lt;x&gt;</title>`, `d="M4 4h7v1h-7z`} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %s:\n%s", want, s)
		}
	}
	runs := 0
	for y := 0; y < c.Size(); y++ {
		for x := 0; x < c.Size(); x++ {
			if c.Black(x, y) && !c.Black(x-1, y) {
				runs++
			}
		}
	}
	if got := strings.Count(s, "z"); got != runs || strings.Count(s, "<path") != 1 {
		t.Errorf("%d runs drawn, want %d in one path", got, runs)
	}
	b.Reset()
	c.SVG(&b, 0, "")
	if s := b.String(); strings.Contains(s, "aria-label") || !strings.Contains(s, `width="29"`) {
		t.Errorf("unlabelled SVG at size 0: %s", s[:120])
	}
}

func BenchmarkEncode(b *testing.B) {
	data := []byte("xmpp:localhost?register;preauth=Ab3_xY9-Qw8ErTy7UiOp1aSd4FgH5jKl6ZxC2vBn0Mq;ibr=y")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(data, M); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPenalty: an all-light 21×21 symbol scores 21 rows and 21 columns
// of one run (19 each), 400 2×2 blocks (3 each) and a dark share 50 %
// off (100); finder-like patterns need 4 light modules on a side.
func TestPenalty(t *testing.T) {
	c := &Code{size: 21, dark: make([]bool, 21*21)}
	if got, want := c.penalty(), 42*19+400*3+100; got != want {
		t.Errorf("all light: %d, want %d", got, want)
	}
	for _, tt := range []struct {
		line string
		j    int
		want bool
	}{
		{"00001011101", 4, true},
		{"10111010000", 0, true},
		{"1011101", 0, true}, // the quiet zone is light
		{"110111011", 1, false},
		{"00001011001", 4, false},
	} {
		at := func(_, j int) bool { return j >= 0 && j < len(tt.line) && tt.line[j] == '1' }
		if got := finderLike(at, 0, tt.j); got != tt.want {
			t.Errorf("%s at %d: %v", tt.line, tt.j, got)
		}
	}
}
