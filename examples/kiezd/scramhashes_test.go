package main

import (
	"strings"
	"testing"

	"github.com/kiez-im/kiez/storage"
)

// TestConfigSCRAMHashes: scram_hashes offers all three hashes by default
// and takes a subset; an empty list, an unknown hash or one listed twice
// is an error at its line.
func TestConfigSCRAMHashes(t *testing.T) {
	for _, tc := range []struct {
		text, want string
		hashes     []storage.Hash
	}{
		{text: ``, hashes: []storage.Hash{storage.SHA1, storage.SHA256, storage.SHA512}},
		{text: `scram_hashes = ["SHA-1"]`, hashes: []storage.Hash{storage.SHA1}},
		{text: "\nscram_hashes = []", want: `kiezd.toml:2: scram_hashes: at least one of "SHA-1", "SHA-256" and "SHA-512"`},
		{text: `scram_hashes = ["SHA-1", "MD5"]`, want: `kiezd.toml:1: scram_hashes: "MD5" is not one of "SHA-1", "SHA-256" and "SHA-512"`},
		{text: `scram_hashes = ["SHA-256", "SHA-256"]`, want: `kiezd.toml:1: scram_hashes: "SHA-256" is listed twice`},
	} {
		cfg, err := parseConfig("kiezd.toml", []byte(tc.text))
		switch {
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want %s", tc.text, err, tc.want)
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.text, err)
		case tc.want == "":
			got := cfg.scramHashes()
			if len(got) != len(tc.hashes) {
				t.Errorf("%q: %v, want %v", tc.text, got, tc.hashes)
				continue
			}
			for i := range got {
				if got[i] != tc.hashes[i] {
					t.Errorf("%q: %v, want %v", tc.text, got, tc.hashes)
				}
			}
		}
	}
}
