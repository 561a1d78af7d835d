// Package memory implements the storage interfaces in memory.
//
// A Store keeps everything in maps guarded by one sync.RWMutex and loses it
// when the process exits. It suits tests, examples and throwaway servers.
// Values are copied on the way in and out, so callers can never change
// stored state by mutating a slice or map they passed in or got back.
//
// Offline messages are a slice per user in Seq order; the user's Seq
// counter is kept when the queue empties, so a Seq is never reused until
// DeleteOfflineUser. An archive is a slice per user in ID order plus, per
// bare JID of the other party, the IDs of that party's messages, so queries
// With a party binary-search that party's list; the last ID assigned is
// kept when messages expire, and dropped with DeleteArchive.
//
// Service data (storage.ServiceData) is a map per namespace; listing its
// keys sorts the keys of the range asked for, and expiry visits every
// entry.
//
// PEP nodes (storage.PEP) are a map per user; each node keeps its items in
// a slice, oldest first, and the user and each node their total size, so
// the byte limit costs no scan.
//
// Upload metadata (storage.Uploads) is a map by ID, and per owner the IDs
// of their uploads and the sum of their sizes.
//
// MUC rooms (storage.MUC) are a map by room JID, each with its entries by
// affiliated JID, and per affiliated JID the set of rooms it is in.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// Store is an in-memory storage backend. Its zero value is not ready for
// use; call New. A Store is safe for concurrent use.
type Store struct {
	mu       sync.RWMutex
	accounts map[string]storage.Account // by bare JID
	kv       map[string]map[string][]byte
	roster   rosterTable
	offline  map[string]*offlineQueue           // by bare JID; see offline.go
	archive  map[string]*userArchive            // by bare JID; see archive.go
	secrets  map[string][]byte                  // by name; see userdata.go
	service  map[string]map[string]serviceEntry // by namespace, then key; see service.go
	pep      map[string]*pepUser                // by bare JID; see pep.go
	uploads  uploadTable                        // see upload.go
	muc      mucTable                           // see muc.go
}

// New returns an empty Store.
func New() *Store {
	return &Store{accounts: make(map[string]storage.Account), roster: rosterTable{users: make(map[string]*userRoster)}}
}

// CreateAccount implements storage.Accounts.
func (s *Store) CreateAccount(ctx context.Context, a storage.Account) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if a.JID == "" {
		return fmt.Errorf("memory: create account: empty JID")
	}
	a = cloneAccount(a)
	a.Created = storage.Day(a.Created)
	a.LastLogin = storage.Day(a.LastLogin)
	a.Removed = storage.Day(a.Removed)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[a.JID]; ok {
		return fmt.Errorf("memory: create account %q: %w", a.JID, storage.ErrExists)
	}
	s.accounts[a.JID] = a
	return nil
}

// Account implements storage.Accounts.
func (s *Store) Account(ctx context.Context, jid string) (storage.Account, error) {
	if err := ctx.Err(); err != nil {
		return storage.Account{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.accounts[jid]
	if !ok {
		return storage.Account{}, fmt.Errorf("memory: account %q: %w", jid, storage.ErrNotFound)
	}
	return cloneAccount(a), nil
}

// SetKeys implements storage.Accounts.
func (s *Store) SetKeys(ctx context.Context, jid string, keys map[storage.Hash]storage.SCRAMKeys) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	keys = cloneKeys(keys)

	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[jid]
	if !ok {
		return fmt.Errorf("memory: set keys of %q: %w", jid, storage.ErrNotFound)
	}
	a.Keys = keys
	s.accounts[jid] = a
	return nil
}

// SetRemoved implements storage.Accounts.
func (s *Store) SetRemoved(ctx context.Context, jid string, day time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !day.IsZero() {
		day = storage.Day(day)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[jid]
	if !ok {
		return fmt.Errorf("memory: set removed of %q: %w", jid, storage.ErrNotFound)
	}
	a.Removed = day
	s.accounts[jid] = a
	return nil
}

// TouchLogin implements storage.Accounts.
func (s *Store) TouchLogin(ctx context.Context, jid string, day time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	day = storage.Day(day)

	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[jid]
	if !ok {
		return fmt.Errorf("memory: touch login of %q: %w", jid, storage.ErrNotFound)
	}
	if !a.LastLogin.Equal(day) {
		a.LastLogin = day
		s.accounts[jid] = a
	}
	return nil
}

// DeleteAccount implements storage.Accounts.
func (s *Store) DeleteAccount(ctx context.Context, jid string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[jid]; !ok {
		return fmt.Errorf("memory: delete account %q: %w", jid, storage.ErrNotFound)
	}
	delete(s.accounts, jid)
	return nil
}

// Accounts implements storage.Accounts.
func (s *Store) Accounts(ctx context.Context, domain string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var jids []string
	for jid := range s.accounts {
		if domain == "" || domainOf(jid) == domain {
			jids = append(jids, jid)
		}
	}
	s.mu.RUnlock()
	slices.Sort(jids)
	return jids, nil
}

// domainOf returns the domainpart of a bare JID.
func domainOf(jid string) string {
	return jid[strings.LastIndexByte(jid, '@')+1:]
}

func cloneAccount(a storage.Account) storage.Account {
	a.Keys = cloneKeys(a.Keys)
	return a
}

func cloneKeys(keys map[storage.Hash]storage.SCRAMKeys) map[storage.Hash]storage.SCRAMKeys {
	c := make(map[storage.Hash]storage.SCRAMKeys, len(keys))
	for h, k := range keys {
		c[h] = storage.SCRAMKeys{
			Salt:       bytes.Clone(k.Salt),
			Iterations: k.Iterations,
			StoredKey:  bytes.Clone(k.StoredKey),
			ServerKey:  bytes.Clone(k.ServerKey),
		}
	}
	return c
}

var _ storage.Accounts = (*Store)(nil)
