package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The FAST key is made at the first start, mode 0600, and read back the
// same afterwards; a damaged file is an error that says what to do.
func TestFASTKeyFile(t *testing.T) {
	cfg := &config{DataDir: t.TempDir()}
	key, err := cfg.fastKey()
	if err != nil || len(key) != fastKeyLen {
		t.Fatalf("first start: %d bytes, %v", len(key), err)
	}
	fi, err := os.Stat(cfg.fastKeyPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fast.key: %v %v", fi.Mode(), err)
	}
	again, err := cfg.fastKey()
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second start: another key (%v)", err)
	}
	if err := os.WriteFile(cfg.fastKeyPath(), []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.fastKey(); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Fatalf("damaged key: %v", err)
	}
}
