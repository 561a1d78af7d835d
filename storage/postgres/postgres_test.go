package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/postgres/pgtest"
	"github.com/kiez-im/kiez/storage/storagetest"
)

// cluster is the test binary's throwaway cluster, or nil with startErr.
var (
	cluster  *pgtest.Cluster
	startErr error
)

func TestMain(m *testing.M) {
	cluster, startErr = pgtest.Start()
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// newSchema returns the DSN of a new, empty schema, skipping the test when
// PostgreSQL is not installed (failing if KIEZ_REQUIRE_INTEROP is set).
func newSchema(t *testing.T) string {
	t.Helper()
	if cluster == nil {
		if errors.Is(startErr, pgtest.ErrMissing) && os.Getenv("KIEZ_REQUIRE_INTEROP") == "" {
			t.Skip(startErr)
		}
		t.Fatal(startErr)
	}
	schema := cluster.NewSchema()
	conn, err := pgx.Connect(t.Context(), cluster.BaseDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	return cluster.DSN(schema)
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), newSchema(t), Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) any { return newStore(t) })
}

// TestMigrateFromFirst fills a database at schema version 1, then opens it
// with Open so that every later migration runs over the existing data.
func TestMigrateFromFirst(t *testing.T) {
	ctx := t.Context()
	dsn := newSchema(t)
	first, err := open(ctx, dsn, Options{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := storage.Account{JID: "alice@example.org", Created: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		Keys: map[storage.Hash]storage.SCRAMKeys{storage.SHA256: {Salt: []byte("s"), Iterations: 4096, StoredKey: []byte("k"), ServerKey: []byte("v")}}}
	if err := first.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := first.Put(ctx, "alice@example.org", "vcard", []byte("x")); err == nil {
		t.Fatal("Put at schema version 1 succeeded; want no kv table yet")
	}
	first.Close()

	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Account(ctx, a.JID)
	if err != nil || !got.Created.Equal(a.Created) || got.Keys[storage.SHA256].Iterations != 4096 {
		t.Fatalf("after upgrade: Account = %+v, %v", got, err)
	}
	if err := s.Put(ctx, a.JID, "vcard", []byte("x")); err != nil {
		t.Fatalf("after upgrade: Put: %v", err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, max int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || max != len(ms) {
		t.Errorf("schema_migrations has %d rows up to %d, want %d", n, max, len(ms))
	}
	// Opening again applies nothing and keeps the data.
	again, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}

// An Exclusive Store keeps a second Exclusive Open out of its schema
// until it is closed; other schemas and non-exclusive Opens are not
// affected.
func TestExclusive(t *testing.T) {
	ctx := t.Context()
	dsn, other := newSchema(t), newSchema(t)
	first, err := Open(ctx, dsn, Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, dsn, Options{Exclusive: true}); !errors.Is(err, ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("second exclusive Open: %v, want ErrLocked", err)
	}
	shared, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatalf("non-exclusive Open: %v", err)
	}
	shared.Close()
	elsewhere, err := Open(ctx, other, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive Open of another schema: %v", err)
	}
	elsewhere.Close()
	first.Close()
	again, err := Open(ctx, dsn, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("exclusive Open after Close: %v", err)
	}
	again.Close()
}
