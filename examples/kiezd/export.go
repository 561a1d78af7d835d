package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
)

// maxTransferResponse caps the answer to an import (its report) that
// the control socket's client reads; requests keep maxControlRequest.
const maxTransferResponse = 16 << 20

// maxExportChunk caps one chunk of an export streamed through the
// control socket.
const maxExportChunk = 1 << 20

// transferFlags are the flags of export and import.
type transferFlags struct {
	all, omitCredentials bool   // export
	domain               string // export
	merge, noCredentials bool   // import
}

// register adds the flags of cmd, if it is export or import, to fs.
func (t *transferFlags) register(fs *flag.FlagSet, cmd string) {
	switch cmd {
	case "export":
		fs.BoolVar(&t.all, "all", false, "export every account")
		fs.StringVar(&t.domain, "domain", "", "export the accounts of one domain")
		fs.BoolVar(&t.omitCredentials, "omit-credentials", false, "leave the SCRAM credentials out")
	case "import":
		fs.BoolVar(&t.merge, "merge", false, "import into accounts that exist")
		fs.BoolVar(&t.noCredentials, "allow-no-credentials", false, "create accounts without credentials")
	}
}

// exportCommand runs kiezd export: the accounts named in args, or those
// of -domain, or -all, as one XEP-0227 document on standard output.
func exportCommand(ctx context.Context, cfg *config, e env, args []string, f transferFlags) error {
	req := adminRequest{Op: "export", OmitCredentials: f.omitCredentials}
	switch {
	case f.all && (f.domain != "" || len(args) > 0), f.domain != "" && len(args) > 0:
		return usageError{"export: give accounts, -domain or -all, not several"}
	case f.all:
	case f.domain != "":
		d, err := checkDomain(f.domain)
		if err != nil {
			return usageError{err.Error()}
		}
		if !slices.Contains(cfg.Domains, d) {
			return fmt.Errorf("%s is not a configured domain (domains: %s)", d, strings.Join(cfg.Domains, ", "))
		}
		req.Domain = d
	case len(args) == 0:
		return usageError{"export: which accounts? Give their addresses, -domain DOMAIN or -all"}
	default:
		for _, a := range args {
			u, err := userArg(a, cfg)
			if err != nil {
				return err
			}
			req.Users = append(req.Users, u.String())
		}
	}
	_, err := transfer(ctx, cfg, e, req, nil, e.stdout)
	return err
}

// importCommand runs kiezd import: the XEP-0227 documents in the files
// args, or on standard input (no args, or "-"). A directory stands for
// the *.xml files directly in it, in name order: prosody-migrator writes
// a document per account, USER@HOST.xml, into Prosody's data directory.
// Each document is imported on its own: one that cannot be read is
// reported with its name and the others are imported all the same.
func importCommand(ctx context.Context, cfg *config, e env, args []string, f transferFlags) error {
	files, err := importFiles(args)
	if err != nil {
		return err
	}
	req := adminRequest{Op: "import", Merge: f.merge, NoCredentials: f.noCredentials}
	var all strings.Builder
	if !slices.Equal(cfg.SCRAMHashes, []string{"SHA-1"}) {
		defer func() { fmt.Fprint(e.stdout, sha1OnlyHint(all.String())) }()
	}
	if len(files) == 0 {
		out, err := transfer(ctx, cfg, e, req, e.stdin, nil)
		fmt.Fprint(e.stdout, out)
		all.WriteString(out)
		return err
	}
	var failed []string
	for _, name := range files {
		err := func() error {
			file, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("import: %v", unwrapAll(err))
			}
			defer file.Close()
			out, err := transfer(ctx, cfg, e, req, file, nil)
			fmt.Fprint(e.stdout, out)
			all.WriteString(out)
			return err
		}()
		if err == nil {
			continue
		}
		if len(files) == 1 {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "kiezd: %s: %v\n", displayPath(name), err)
		failed = append(failed, displayPath(name))
	}
	if len(failed) > 0 {
		return fmt.Errorf("import: %d of %d files were not imported in full: %s", len(failed), len(files), strings.Join(failed, ", "))
	}
	return nil
}

// importFiles returns the files kiezd import reads for args: each file
// named, and for a directory the *.xml regular files in it, sorted; none
// for standard input.
func importFiles(args []string) ([]string, error) {
	if len(args) == 0 || (len(args) == 1 && args[0] == "-") {
		return nil, nil
	}
	var files []string
	for _, a := range args {
		if a == "-" {
			return nil, usageError{"import: standard input (-) cannot be read together with files"}
		}
		fi, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("import: %v", unwrapAll(err))
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("import: %v", unwrapAll(err))
		}
		n := len(files)
		for _, en := range entries {
			if strings.HasSuffix(en.Name(), ".xml") && en.Type().IsRegular() {
				files = append(files, filepath.Join(a, en.Name()))
			}
		}
		if len(files) == n {
			return nil, fmt.Errorf("import: no *.xml files in the directory %s (prosody-migrator writes USER@HOST.xml files into Prosody's data directory)", displayPath(a))
		}
	}
	return files, nil
}

// isTransfer reports whether op streams data through the control socket.
func isTransfer(op string) bool { return op == "export" || op == "import" || op == "backup" }

// transfer runs export (writing to out) or import (reading in) on the
// running kiezd through its control socket or, if none runs, on the
// database directly, and returns what to print. It never creates a
// database.
func transfer(ctx context.Context, cfg *config, e env, req adminRequest, in io.Reader, out io.Writer) (string, error) {
	summary, err := callTransfer(ctx, cfg.socketPath(), req, in, out)
	if !errors.Is(err, errNoServer) {
		return summary, err
	}
	if err := cfg.databaseExists(); err != nil {
		return "", err
	}
	err = withStore(ctx, cfg, e, func(t adminTarget) error {
		removeStaleSocket(cfg.socketPath())
		var err error
		summary, err = execTransfer(ctx, t, req, in, out)
		return err
	})
	return summary, err
}

// execTransfer runs export or import on t: the same code for the control
// socket and for a database opened directly.
func execTransfer(ctx context.Context, t adminTarget, req adminRequest, in io.Reader, out io.Writer) (string, error) {
	switch req.Op {
	case "backup": // backup.go
		return execBackup(ctx, t, out)
	case "export":
		users := req.Users
		if len(users) == 0 {
			var err error
			if users, err = t.srv.Users(ctx, req.Domain); err != nil {
				return "", plain(err)
			}
		}
		jids := make([]jid.JID, 0, len(users))
		for _, u := range users {
			j, err := jid.Parse(u)
			if err != nil {
				return "", fmt.Errorf("%q is not a user address", u)
			}
			jids = append(jids, j)
		}
		w := bufio.NewWriterSize(out, 32<<10)
		if _, err := w.WriteString(xml.Header); err != nil {
			return "", err
		}
		if err := t.srv.ExportUsers(ctx, xml.NewEncoder(w), server.ExportOptions{OmitCredentials: req.OmitCredentials}, jids...); err != nil {
			return "", plain(err)
		}
		w.WriteString("\n")
		return "", w.Flush()
	case "import":
		report, err := t.srv.ImportUsers(ctx, in, server.ImportOptions{Merge: req.Merge, NoCredentials: req.NoCredentials})
		summary := formatReport(report)
		if err != nil {
			return summary, plain(err)
		}
		failed := 0
		for _, u := range report.Users {
			if u.Err != nil {
				failed++
			}
		}
		if failed > 0 {
			return summary, fmt.Errorf("%d of %d accounts not imported", failed, len(report.Users))
		}
		return summary, nil
	}
	return "", fmt.Errorf("unknown operation %q", req.Op)
}

// formatReport describes an import, a line per account and indented
// lines for what was not imported.
func formatReport(r *server.ImportReport) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	unknown := func(m map[string]int, indent string) {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "%sunknown element %s (%d), not imported\n", indent, n, m[n])
		}
	}
	for _, u := range r.Users {
		if u.Err != nil {
			fmt.Fprintf(&b, "%s: not imported: %v\n", u.JID, plain(u.Err))
			continue
		}
		how := "imported"
		if u.Merged {
			how = "merged into the existing account"
		}
		creds := "credentials: " + strings.Join(u.Credentials, ", ")
		switch {
		case u.Merged:
			creds = "its credentials kept"
		case len(u.Credentials) == 0:
			creds = "no credentials: set a password with kiezd passwd"
		}
		fmt.Fprintf(&b, "%s: %s (%s; %d elements)\n", u.JID, how, creds, u.Elements)
		for _, n := range u.Notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
		unknown(u.Unknown, "  ")
	}
	unknown(r.Unknown, "")
	return b.String()
}

// sha1OnlyHint returns, if the import reports out (formatReport's) show
// accounts created with SCRAM-SHA-1 credentials only, a line saying what
// that means for their logins.
func sha1OnlyHint(out string) string {
	n := strings.Count(out, ": imported (credentials: SHA-1; ")
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of the accounts have SCRAM-SHA-1 keys only (as Prosody keeps them): clients that pick SCRAM-SHA-256 or -512 cannot log in to them while kiezd offers those; scram_hashes = [\"SHA-1\"] offers SCRAM-SHA-1 only (see Moving from Prosody in kiezd's README)\n", n)
}

// transfer answers an export or import on the control socket: it reads
// an import's document from r, the rest of the connection after the
// request line, and streams an export's document to conn in chunks, each
// its length in decimal on a line and then its bytes, ended by a chunk of
// length 0; the response line follows as for every request. Reads and
// writes time out after controlIOTimeout without progress, not in all.
func (c *controlServer) transfer(ctx context.Context, conn *net.UnixConn, r io.Reader, req adminRequest) (string, error) {
	conn.SetReadDeadline(time.Time{})
	switch req.Op {
	case "import":
		return execTransfer(ctx, c.target, req, &idleReader{r: r, conn: conn}, nil)
	default:
		w := &chunkWriter{conn: conn}
		out, err := execTransfer(ctx, c.target, req, nil, w)
		if w.err != nil {
			return "", w.err
		}
		if _, werr := w.write([]byte("0\n")); werr != nil && err == nil {
			err = werr
		}
		return out, err
	}
}

// idleReader reads from r, giving each read on conn controlIOTimeout.
type idleReader struct {
	r    io.Reader
	conn *net.UnixConn
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.conn.SetReadDeadline(time.Now().Add(controlIOTimeout))
	return r.r.Read(p)
}

// chunkWriter writes an export to conn in length-prefixed chunks.
type chunkWriter struct {
	conn *net.UnixConn
	err  error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n := min(len(p)-done, maxExportChunk)
		if _, err := w.write(append([]byte(strconv.Itoa(n)+"\n"), p[done:done+n]...)); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

func (w *chunkWriter) write(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.conn.SetWriteDeadline(time.Now().Add(controlIOTimeout))
	n, err := w.conn.Write(b)
	if err != nil {
		w.err = fmt.Errorf("writing to the control socket: %w", err)
	}
	return n, w.err
}

// callTransfer sends an export or import to the server listening on
// path: an import's document follows the request line, an export's
// comes back in chunks (see controlServer.transfer) and goes to out. It
// returns errNoServer if no server listens.
func callTransfer(ctx context.Context, path string, req adminRequest, in io.Reader, out io.Writer) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, fs.ErrPermission) {
		return "", fmt.Errorf("cannot use the control socket %s: %v (run as the user kiezd runs as)", displayPath(path), unwrapAll(err))
	}
	if err != nil {
		return "", errNoServer
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	data, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	if _, err := conn.Write(append(data, '\n')); err != nil {
		return "", fmt.Errorf("the running kiezd: %v", unwrapAll(err))
	}
	var sendErr error
	if in != nil {
		// A server that stops reading (the document is bad) answers
		// all the same; its answer says why.
		_, sendErr = io.Copy(conn, in)
	}
	conn.CloseWrite()
	br := bufio.NewReader(conn)
	if out != nil {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "", fmt.Errorf("the export from the running kiezd broke off: %v", unwrapAll(err))
			}
			n, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
			if err != nil || n < 0 || n > maxExportChunk {
				// Not a chunk: the server answered at once (an error).
				var resp adminResponse
				if json.Unmarshal([]byte(line), &resp) == nil && resp.Error != "" {
					return "", errors.New(resp.Error)
				}
				return "", fmt.Errorf("the running kiezd sent no export on %s", displayPath(path))
			}
			if n == 0 {
				break
			}
			if _, err := io.CopyN(out, br, int64(n)); err != nil {
				return "", fmt.Errorf("the export from the running kiezd broke off: %v", unwrapAll(err))
			}
		}
	}
	var resp adminResponse
	line, err := bufio.NewReader(io.LimitReader(br, maxTransferResponse)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &resp)
	}
	if err != nil {
		if sendErr != nil {
			err = sendErr
		}
		return "", fmt.Errorf("no answer from the running kiezd on %s: %v", displayPath(path), unwrapAll(err))
	}
	if resp.Error != "" {
		return resp.Output, errors.New(resp.Error)
	}
	if sendErr != nil {
		return resp.Output, fmt.Errorf("reading the document: %v", unwrapAll(sendErr))
	}
	return resp.Output, nil
}
