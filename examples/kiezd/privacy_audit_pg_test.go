package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPrivacyAuditPostgres is TestPrivacyAudit on PostgreSQL: an account
// with data in every module is deleted (with kiezd stopped, and through
// the control socket), and then no row of any table of the schema
// mentions it, except the contact's copy of the conversation and what it
// said in the contact's room, in those archives; once the contact is
// deleted too, no row mentions either.
//
// What VACUUM leaves: a deleted row is dead at once, but its bytes stay
// in the table's pages until VACUUM reclaims them and later writes reuse
// the space (and in the write-ahead log, its archives and backups). The
// test logs which markers the relation files still hold after the
// deletions (a CHECKPOINT has written the pages out), then runs VACUUM
// FULL, which writes every table and index anew, and checks that the
// relation files of the schema hold none.
func TestPrivacyAuditPostgres(t *testing.T) {
	pinBackend(t, backendPostgres)
	eachDeluser(t, privacyAuditPostgres)
}

func privacyAuditPostgres(t *testing.T, viaSocket bool) {
	file, dir := testConfig(t, "")
	cfg, err := loadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.postgres() {
		t.Fatal("the test's kiezd is not on PostgreSQL")
	}
	data := filepath.Join(dir, "data")
	for _, u := range []string{auditUser, auditContact} {
		if code, _, stderr := kiezd(t, auditPassword+"\n", "-config", file, "adduser", u); code != 0 {
			t.Fatal(stderr)
		}
	}
	d := startServe(t, nil, "-config", file)
	if d.ended {
		t.Fatalf("serve exited:\n%s", d.stderr)
	}
	fileBytes := auditSession(t, d)
	if code := d.stop(t); code != 0 {
		t.Fatalf("serve exited with %d:\n%s", code, d.stderr)
	}
	conn, err := pgx.Connect(t.Context(), cfg.Storage.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	rows := pgRows(t, conn)
	for _, s := range slices.Concat(auditOwn, auditShared, auditRoomKept) {
		if s == "AuditFileMarker" {
			continue // the file is on disk, not in the database
		}
		if len(auditFind(rows, s)) == 0 {
			t.Fatalf("%q was never stored; the test does not test anything", s)
		}
	}
	if hits := auditFind(rows, auditClient); len(hits) > 0 {
		t.Errorf("the database holds the client address %s: %q", auditClient, hits)
	}

	if viaSocket {
		d2 := startServe(t, nil, "-config", file)
		if d2.ended {
			t.Fatalf("serve exited:\n%s", d2.stderr)
		}
		if code, stdout, stderr := kiezd(t, "", "-config", file, "deluser", auditUser); code != 0 || stdout != "deleted "+auditUser+" and all its data\n" {
			t.Fatalf("deluser while serving: exit %d, %q, %q", code, stdout, stderr)
		}
		if code := d2.stop(t); code != 0 {
			t.Fatalf("serve exited with %d:\n%s", code, d2.stderr)
		}
	} else if code, stdout, stderr := kiezd(t, "", "-config", file, "deluser", auditUser); code != 0 || stdout != "deleted "+auditUser+" and all its data\n" {
		t.Fatalf("deluser: exit %d, %q, %q", code, stdout, stderr)
	}

	rows = pgRows(t, conn)
	for _, s := range auditOwn {
		if hits := auditFind(rows, s); len(hits) > 0 {
			t.Errorf("%q is still stored after deluser: %q", s, hits)
		}
	}
	for _, s := range auditShared {
		for _, h := range auditFind(rows, s) {
			if !strings.HasPrefix(h, "archive: jid="+auditContact+" ") {
				t.Errorf("%q is still stored after deluser, outside the contact's archive: %q", s, h)
			}
		}
	}
	for _, s := range auditRoomKept {
		for _, h := range auditFind(rows, s) {
			if !strings.HasPrefix(h, "archive: jid="+auditContactRoom+" ") {
				t.Errorf("%q is still stored after deluser, outside the room archive of %s: %q", s, auditContactRoom, h)
			}
		}
	}
	if len(auditFind(rows, "AuditRoomMessage")) == 0 {
		t.Errorf("what the deleted account said in %s went from the room's archive, which keeps it by design", auditContactRoom)
	}
	if n := auditFiles(t, data, fileBytes); n != 0 {
		t.Errorf("%d files under %s still hold the uploaded bytes", n, data)
	}

	if code, _, stderr := kiezd(t, "", "-config", file, "deluser", auditContact); code != 0 {
		t.Fatal(stderr)
	}
	all := slices.Concat(auditOwn, auditShared, auditRoomKept, []string{auditContact})
	rows = pgRows(t, conn)
	for _, s := range all {
		if hits := auditFind(rows, s); len(hits) > 0 {
			t.Errorf("%q is still stored after both accounts were deleted: %q", s, hits)
		}
	}

	// What VACUUM leaves: dead rows' bytes in the relation files.
	files := pgRelationFiles(t, conn)
	if _, err := conn.Exec(t.Context(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if dead := pgFind(t, files, all); len(dead) > 0 {
		t.Logf("in dead rows of the tables' files (until VACUUM and reuse): %q", dead)
	}
	for _, table := range pgTables(t, conn) {
		if _, err := conn.Exec(t.Context(), "VACUUM FULL "+pgx.Identifier{table}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(t.Context(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if left := pgFind(t, pgRelationFiles(t, conn), all); len(left) > 0 {
		t.Errorf("after VACUUM FULL, the tables' files still hold %q", left)
	}
}

// pgTables returns the tables of the connection's schema.
func pgTables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(names) < 10 {
		t.Fatalf("tables: %q, %v", names, err)
	}
	return names
}

// pgRows returns every row of every table of the schema as
// "table: col=value col=value", byte strings as they are (so that
// markers inside stored stanzas are found).
func pgRows(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var out []string
	for _, table := range pgTables(t, conn) {
		rows, err := conn.Query(t.Context(), "SELECT * FROM "+pgx.Identifier{table}.Sanitize())
		if err != nil {
			t.Fatal(err)
		}
		fields := rows.FieldDescriptions()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			b.WriteString(table + ":")
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, " %s=%v", fields[i].Name, v)
			}
			out = append(out, b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// pgRelationFiles returns the files of the schema's tables, their
// indexes and TOAST tables (each relation's first segment; the test's
// are small).
func pgRelationFiles(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var dataDir string
	if err := conn.QueryRow(t.Context(), "SHOW data_directory").Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(t.Context(), `SELECT pg_relation_filepath(c.oid) FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'i', 't')
		UNION SELECT pg_relation_filepath(c.reltoastrelid) FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.reltoastrelid <> 0
		UNION SELECT pg_relation_filepath(i.indexrelid) FROM pg_class c JOIN pg_index i ON i.indrelid = c.reltoastrelid
		WHERE c.relnamespace = current_schema()::regnamespace AND c.reltoastrelid <> 0`)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, p := range paths {
		if p != nil {
			files = append(files, filepath.Join(dataDir, *p))
		}
	}
	if len(files) < 10 {
		t.Fatalf("relation files: %q", files)
	}
	return files
}

// pgFind returns the markers some of files hold.
func pgFind(t *testing.T, files, markers []string) []string {
	t.Helper()
	var found []string
	for _, m := range markers {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if os.IsNotExist(err) {
				continue // an empty relation may have no file yet
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(m)) {
				found = append(found, m)
				break
			}
		}
	}
	return found
}
