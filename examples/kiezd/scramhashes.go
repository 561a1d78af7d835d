package main

import "github.com/kiez-im/kiez/storage"

// scramHashes returns scram_hashes for server.Config.SCRAMHashes, which
// validate checked.
func (c *config) scramHashes() []storage.Hash {
	hashes := make([]storage.Hash, 0, len(c.SCRAMHashes))
	for _, h := range c.SCRAMHashes {
		hashes = append(hashes, storage.Hash(h))
	}
	return hashes
}
