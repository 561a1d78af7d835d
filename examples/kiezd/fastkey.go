package main

// The FAST key: XEP-0484 tokens are derived from a random id in the
// database and this key (server.Config.FASTKey), which kiezd keeps in
// fast.key in the data directory, mode 0600, made at the first start of
// serve (the admin commands neither read nor make it). The
// database or a backup of it alone thus yields no token. A lost or
// replaced key only logs every device out of FAST: the clients log in
// with their passwords again and get new tokens.

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	fastKeyName = "fast.key"
	fastKeyLen  = 32
)

// fastKeyPath is the FAST key's file in the data directory.
func (c *config) fastKeyPath() string { return filepath.Join(c.DataDir, fastKeyName) }

// fastKey reads the FAST key, or makes it when the file does not exist.
func (c *config) fastKey() ([]byte, error) {
	path := c.fastKeyPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, fastKeyLen)
		rand.Read(key)
		if err := writeFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", displayPath(path), pathErr(err))
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < fastKeyLen {
		return nil, fmt.Errorf("%s is damaged (want %d hex-encoded random bytes); delete it to have a new one made (every device then logs in with its password once)", displayPath(path), fastKeyLen)
	}
	return key, nil
}
