package rosterver

import (
	"testing"
)

func TestString(t *testing.T) {
	for _, tt := range []struct {
		v    Version
		want string
	}{
		{Version{}, "0.0"},
		{Version{Gen: 0xdeadbeef, N: 1}, "deadbeef.1"},
		{Version{Gen: 0xffffffff, N: 1<<64 - 1}, "ffffffff.18446744073709551615"},
		{Version{Gen: 0x1a, N: 300}, "1a.300"},
	} {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.v, got, tt.want)
		}
		if v, ok := Parse(tt.want); !ok || v != tt.v {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.want, v, ok, tt.v)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"", ".", "1", "1.", ".1", "x.1", "1.x", "1.2.3", "-1.2", "1.-2", "+1.2", "1.+2",
		"0x1.2", "100000000.1", "1.18446744073709551616", " 1.2", "1.2 ",
	} {
		if v, ok := Parse(s); ok {
			t.Errorf("Parse(%q) = %+v, true; want false", s, v)
		}
	}
}

func TestNextAndAt(t *testing.T) {
	v := New()
	if v.N != 0 {
		t.Fatalf("New().N = %d, want 0", v.N)
	}
	w := v.Next().Next()
	if w.Gen != v.Gen || w.N != 2 {
		t.Errorf("New().Next().Next() = %+v, want Gen %x N 2", w, v.Gen)
	}
	if a := w.At(7); a.Gen != v.Gen || a.N != 7 {
		t.Errorf("At(7) = %+v", a)
	}
}

func TestSince(t *testing.T) {
	cur := Version{Gen: 0xab, N: 10}
	for _, tt := range []struct {
		s     string
		floor uint64
		n     uint64
		ok    bool
	}{
		{"ab.10", 0, 10, true},
		{"ab.0", 0, 0, true},
		{"AB.5", 0, 5, true}, // as strconv reads hex
		{"ab.5", 5, 5, true},
		{"ab.4", 5, 0, false},
		{"ab.11", 0, 0, false},
		{"ac.5", 0, 0, false},
		{"", 0, 0, false},
		{"garbage", 0, 0, false},
	} {
		n, ok := cur.Since(tt.s, tt.floor)
		if n != tt.n || ok != tt.ok {
			t.Errorf("Since(%q, %d) = %d, %v; want %d, %v", tt.s, tt.floor, n, ok, tt.n, tt.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"deadbeef.1", "0.0", "ffffffff.18446744073709551615", "1.", "x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := Parse(s)
		if !ok {
			return
		}
		again, ok := Parse(v.String())
		if !ok || again != v {
			t.Fatalf("Parse(%q) = %+v, whose String %q parses as %+v, %v", s, v, v.String(), again, ok)
		}
	})
}
