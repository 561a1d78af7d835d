package main

// The integration tests on both storage backends: a test wrapped in
// onBothBackends runs once on bbolt and once on PostgreSQL (a throwaway
// cluster started by the first test that needs it, a fresh schema per
// test); KIEZ_TEST_BACKEND=postgres puts the kiezd of every test that
// uses testBackend (through testConfig) on PostgreSQL, except the tests
// pinned to bbolt (pinBackend); tests writing a configuration of their
// own stay on bbolt.

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/kiez-im/kiez/storage/postgres/pgtest"
)

// The test binary's PostgreSQL cluster, started once when first needed
// and stopped by TestMain.
var (
	pgOnce     sync.Once
	pgCluster  *pgtest.Cluster
	pgStartErr error
)

// stopPostgres stops the cluster, if one was started.
func stopPostgres() error {
	if pgCluster == nil {
		return nil
	}
	return pgCluster.Stop()
}

// pinned are the backends of the tests that chose one (pinBackend),
// by test name; their subtests inherit it.
var pinned sync.Map

// pinBackend makes t's kiezd use backend, whatever KIEZ_TEST_BACKEND
// says: tests of what exists on one backend only (the bbolt file's
// backup, restore and compaction) pin it.
func pinBackend(t *testing.T, backend string) { pinned.Store(t.Name(), backend) }

// onBothBackends runs f as the subtests bbolt and postgres, the
// kiezd of the second keeping its data in PostgreSQL.
func onBothBackends(t *testing.T, f func(t *testing.T)) {
	for _, b := range []string{backendBbolt, backendPostgres} {
		t.Run(b, func(t *testing.T) {
			pinBackend(t, b)
			f(t)
		})
	}
}

// testBackend returns the backend t's kiezd is to use.
func testBackend(t *testing.T) string {
	for name := t.Name(); ; {
		if b, ok := pinned.Load(name); ok {
			return b.(string)
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			break
		}
		name = name[:i]
	}
	if os.Getenv("KIEZ_TEST_BACKEND") == backendPostgres {
		return backendPostgres
	}
	return backendBbolt
}

// newPostgresSchema returns the DSN of a new, empty schema of the test
// cluster, skipping the test when PostgreSQL is not installed (failing
// if KIEZ_REQUIRE_INTEROP is set, as in CI).
func newPostgresSchema(t *testing.T) string {
	t.Helper()
	pgOnce.Do(func() { pgCluster, pgStartErr = pgtest.Start() })
	if pgCluster == nil {
		if errors.Is(pgStartErr, pgtest.ErrMissing) && os.Getenv("KIEZ_REQUIRE_INTEROP") == "" {
			t.Skip(pgStartErr)
		}
		t.Fatal(pgStartErr)
	}
	dsn, err := pgCluster.CreateSchema(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// postgresTable is the [storage] table of a kiezd on a new schema.
func postgresTable(t *testing.T) string {
	return "\n[storage]\nbackend = \"postgres\"\ndsn = \"" + newPostgresSchema(t) + "\"\n"
}
