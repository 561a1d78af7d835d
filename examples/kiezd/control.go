package main

// The control socket: while serve runs, the admin commands (adduser,
// passwd, deluser, undelete, revoke-tokens, users, invite, ban, unban, bans) reach it through a Unix
// socket in the data directory instead of opening the database, which
// serve holds locked, and act on its own parts (a ban on the filter that
// admits its connections).
//
// The protocol is one JSON request per connection, one line, answered by
// one JSON response line:
//
//	→ {"op":"adduser","user":"alice@example.org","password":"…"}
//	← {"output":"created alice@example.org\n"}
//	← {"error":"alice@example.org already exists"}
//
// Only the account that runs kiezd (and root) may connect: the socket is
// mode 0600, made in a private directory and moved into place, so it is
// never open to others even for a moment; on Linux, the server also
// checks the peer's uid (SO_PEERCRED). No network listener exists for
// administration.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/filter/ipfilter"
	"github.com/kiez-im/kiez/modules/invite"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/scram"
	"github.com/kiez-im/kiez/storage"
)

const (
	// controlSocketName is the control socket's file in the data
	// directory.
	controlSocketName = "kiezd.sock"
	// minPasswordLength is the fewest characters (Unicode code points) a
	// password set by the admin commands may have.
	minPasswordLength = 8
	// maxControlRequest caps a request's bytes.
	maxControlRequest = 64 << 10
	// controlIOTimeout bounds reading a request and writing its response,
	// so a stuck client cannot hold a connection forever.
	controlIOTimeout = 10 * time.Second
)

// socketPath is the control socket's path.
func (c *config) socketPath() string { return filepath.Join(c.DataDir, controlSocketName) }

// adminRequest is one admin command, run by the running server or on
// the database.
type adminRequest struct {
	// Op is adduser, passwd, deluser, undelete, revoke-tokens, users,
	// invite, ban, unban, bans, export or import (export.go: these two
	// stream their data).
	Op string `json:"op"`
	// User is the account of adduser, passwd, deluser, undelete and
	// revoke-tokens, and the username of invite ("" for any).
	User string `json:"user,omitempty"`
	// Domain limits users to one domain; "" lists all.
	Domain string `json:"domain,omitempty"`
	// Password is the new password of adduser and passwd.
	Password string `json:"password,omitempty"`
	// Check only checks that adduser or passwd can run (the account is
	// missing or present), before the password is asked for.
	Check bool `json:"check,omitempty"`
	// Network is the address or prefix of ban and unban (see
	// parseNetwork).
	Network string `json:"network,omitempty"`
	// For is how long ban bans, a duration such as "30m" or "7d"; ""
	// is the configured [filter] ban_for. For invite, how long the
	// invitation lasts; "" is [registration] invite_validity.
	For string `json:"for,omitempty"`
	// Reason is the reason of ban; "" is defaultBanReason.
	Reason string `json:"reason,omitempty"`
	// Users are the accounts of export; none means those of Domain
	// ("" for all).
	Users []string `json:"users,omitempty"`
	// OmitCredentials leaves the SCRAM credentials out of an export.
	OmitCredentials bool `json:"omit_credentials,omitempty"`
	// Merge and NoCredentials are import's ImportOptions.
	Merge         bool `json:"merge,omitempty"`
	NoCredentials bool `json:"no_credentials,omitempty"`
}

// adminTarget is what the admin commands act on: the running server's
// parts, or ones built on the database opened directly.
type adminTarget struct {
	cfg      *config
	srv      *server.Server
	accounts storage.Accounts
	// filter is the server's ConnFilter itself, so that a ban made
	// through the control socket refuses the next connection.
	filter *ipfilter.Filter
	// invites is the invite module registration redeems with, nil when
	// registration is off.
	invites *invite.Module
}

// adminResponse is the answer: Output for standard output, or Error.
type adminResponse struct {
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// checkPassword enforces minPasswordLength.
func checkPassword(p string) error {
	if utf8.RuneCountInString(p) < minPasswordLength {
		return fmt.Errorf("the password is too short: it needs at least %d characters", minPasswordLength)
	}
	return nil
}

// execAdmin runs req on t and returns what to print. It is the same code
// for the control socket and for a database opened directly.
func execAdmin(ctx context.Context, t adminTarget, req adminRequest) (string, error) {
	srv, accounts := t.srv, t.accounts
	switch req.Op {
	case "users":
		return listAccounts(ctx, srv, accounts, req.Domain)
	case "ban":
		return execBan(ctx, t, req)
	case "unban":
		return execUnban(ctx, t, req)
	case "bans":
		return listBans(t.filter), nil
	case "invite":
		return execInvite(ctx, t, req)
	case "adduser", "passwd", "deluser", "undelete", "revoke-tokens":
	default:
		return "", fmt.Errorf("unknown admin command %q", req.Op)
	}
	user, err := jid.Parse(req.User)
	if err != nil || user.Localpart() == "" || user.Resourcepart() != "" {
		return "", fmt.Errorf("%q is not a user address", req.User)
	}
	user = user.Bare()
	_, err = accounts.Account(ctx, user.String())
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", plain(err)
	}
	switch {
	case exists && req.Op == "adduser":
		return "", fmt.Errorf("%s already exists", user)
	case !exists && req.Op != "adduser":
		return "", fmt.Errorf("there is no account %s", user)
	case req.Check:
		return "", nil
	case req.Op == "deluser":
		if err := srv.DeleteUser(ctx, user); err != nil {
			return "", plain(err)
		}
		return fmt.Sprintf("deleted %s and all its data\n", user), nil
	case req.Op == "revoke-tokens":
		if err := srv.RevokeTokens(ctx, user); err != nil {
			return "", plain(err)
		}
		return fmt.Sprintf("revoked the FAST tokens of %s: its devices log in with the password again\n", user), nil
	case req.Op == "undelete":
		err := srv.RestoreUser(ctx, user)
		if errors.Is(err, server.ErrNotRemoved) {
			return "", fmt.Errorf("%s was not removed: there is nothing to undelete", user)
		}
		if err != nil {
			return "", plain(err)
		}
		return fmt.Sprintf("undeleted %s: it may log in again\n", user), nil
	}
	if err := checkPassword(req.Password); err != nil {
		return "", err
	}
	if req.Op == "adduser" {
		err = srv.CreateUser(ctx, user, req.Password)
	} else {
		err = srv.SetPassword(ctx, user, req.Password)
	}
	switch {
	case errors.Is(err, scram.ErrInvalidPassword):
		return "", errors.New("the password is not allowed: it must be printable text (PRECIS OpaqueString)")
	case errors.Is(err, storage.ErrExists):
		return "", fmt.Errorf("%s already exists", user)
	case errors.Is(err, storage.ErrNotFound):
		return "", fmt.Errorf("there is no account %s", user)
	case err != nil:
		return "", plain(err)
	}
	if req.Op == "adduser" {
		return fmt.Sprintf("created %s\n", user), nil
	}
	return fmt.Sprintf("changed the password of %s\n", user), nil
}

// listAccounts lists the accounts of domain ("" for all), one a line,
// with the days each was created and last logged in to and, for an
// account its owner removed with a grace period, the days it was removed
// and will be purged.
func listAccounts(ctx context.Context, srv *server.Server, accounts storage.Accounts, domain string) (string, error) {
	users, err := srv.Users(ctx, domain)
	if err != nil {
		return "", plain(err)
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, u := range users {
		a, err := accounts.Account(ctx, u)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return "", err
		}
		last := "never"
		if !a.LastLogin.IsZero() {
			last = a.LastLogin.Format(time.DateOnly)
		}
		removed := ""
		if day, ok := srv.PurgeDay(a); ok {
			removed = fmt.Sprintf("\tremoved %s, purged on %s (kiezd undelete undoes it)", a.Removed.Format(time.DateOnly), day.Format(time.DateOnly))
		}
		fmt.Fprintf(tw, "%s\tcreated %s\tlast login %s%s\n", u, a.Created.Format(time.DateOnly), last, removed)
	}
	tw.Flush()
	return b.String(), nil
}

// plain drops the "server: " prefix of the server's errors.
func plain(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "server: "))
}

// errNoServer means that no kiezd answers on the control socket.
var errNoServer = errors.New("no kiezd answers on the control socket")

// admin runs req on the running kiezd through its control socket or, if
// none runs, on the database directly. It never creates a database.
func admin(ctx context.Context, cfg *config, e env, req adminRequest) (string, error) {
	out, err := callControl(ctx, cfg.socketPath(), req)
	if !errors.Is(err, errNoServer) {
		return out, err
	}
	if err := cfg.databaseExists(); err != nil {
		return "", err
	}
	err = withStore(ctx, cfg, e, func(t adminTarget) error {
		// Holding the database, we know that no kiezd runs: a socket
		// file is left over from one that crashed.
		removeStaleSocket(cfg.socketPath())
		var err error
		out, err = execAdmin(ctx, t, req)
		return err
	})
	return out, err
}

// removeStaleSocket removes a socket file no server listens on, and
// nothing else.
func removeStaleSocket(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		os.Remove(path)
	}
}

// callControl sends req to the server listening on path. It returns
// errNoServer if none does: there is no socket file, or one left over
// by a server that is gone.
func callControl(ctx context.Context, path string, req adminRequest) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, fs.ErrPermission) {
		return "", fmt.Errorf("cannot use the control socket %s: %v (run as the user kiezd runs as)", displayPath(path), unwrapAll(err))
	}
	if err != nil {
		return "", errNoServer
	}
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
	var resp adminResponse
	line, err := bufio.NewReader(io.LimitReader(conn, maxControlRequest)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &resp)
	}
	if err != nil {
		return "", fmt.Errorf("no answer from the running kiezd on %s: %v", displayPath(path), unwrapAll(err))
	}
	if resp.Error != "" {
		return "", errors.New(resp.Error)
	}
	return resp.Output, nil
}

// controlServer answers admin requests on the control socket.
type controlServer struct {
	ln     *net.UnixListener
	path   string
	target adminTarget
	log    *slog.Logger

	mu sync.Mutex // one admin command at a time
	wg sync.WaitGroup

	// closing guards closed, so that serve adds no request to wg once
	// close waits on it (an Add racing a Wait is the WaitGroup's misuse).
	closing sync.Mutex
	closed  bool
}

// listenControl creates the control socket at path, mode 0600. serve
// holds the database lock, so no other kiezd uses the path: a file there
// is left over from one that crashed, and goes.
func listenControl(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("cannot create the control socket %s: a file that is no socket is in the way", displayPath(path))
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("cannot remove the old control socket %s: %v", displayPath(path), unwrapAll(err))
		}
	}
	// Bound in a private directory, made 0600, then moved into place:
	// other users never see it open.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".ctl")
	if err != nil {
		return nil, fmt.Errorf("cannot create the control socket %s: %v", displayPath(path), unwrapAll(err))
	}
	defer os.RemoveAll(tmp)
	name := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		msg := unwrapAll(err).Error()
		if errors.Is(err, syscall.EINVAL) && len(name) > 100 {
			msg += " (the path is too long for a Unix socket: choose a shorter data_dir)"
		}
		return nil, fmt.Errorf("cannot create the control socket %s: %s", displayPath(path), msg)
	}
	ln.SetUnlinkOnClose(false) // it is removed by its final name
	if err = os.Chmod(name, 0o600); err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot create the control socket %s: %v", displayPath(path), unwrapAll(err))
	}
	return ln, nil
}

// serve accepts connections until the listener is closed.
func (c *controlServer) serve(ctx context.Context) {
	for {
		conn, err := c.ln.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			c.log.Warn("control socket", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // out of file descriptors, say
			}
			continue
		}
		c.closing.Lock()
		if c.closed {
			c.closing.Unlock()
			conn.Close()
			return
		}
		c.wg.Add(1)
		c.closing.Unlock()
		go func() {
			defer c.wg.Done()
			c.handle(ctx, conn)
		}()
	}
}

// handle answers one request. Neither the request nor its answer is
// logged: they hold passwords, account names and addresses.
func (c *controlServer) handle(ctx context.Context, conn *net.UnixConn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var resp adminResponse
	defer func() {
		data, _ := json.Marshal(resp)
		conn.SetWriteDeadline(time.Now().Add(controlIOTimeout))
		conn.Write(append(data, '\n'))
	}()
	if ok, uid := peerAllowed(conn); !ok {
		c.log.Warn("control socket: refused a process of another user", "uid", uid)
		resp.Error = "permission denied: run the command as the user kiezd runs as"
		return
	}
	conn.SetReadDeadline(time.Now().Add(controlIOTimeout))
	var req adminRequest
	// The request is one line of at most maxControlRequest bytes; an
	// import's document follows it (see controlServer.transfer).
	br := bufio.NewReaderSize(conn, maxControlRequest)
	line, err := br.ReadSlice('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		resp.Error = "bad request on the control socket"
	} else {
		c.mu.Lock()
		var out string
		if isTransfer(req.Op) {
			out, err = c.transfer(ctx, conn, br, req)
		} else {
			out, err = execAdmin(ctx, c.target, req)
		}
		c.mu.Unlock()
		resp.Output = out
		if err != nil {
			resp.Error = err.Error()
		}
	}
}

// close stops accepting, waits for the requests being answered and
// removes the socket file.
func (c *controlServer) close() {
	c.closing.Lock()
	c.closed = true
	c.closing.Unlock()
	c.ln.Close()
	c.wg.Wait()
	os.Remove(c.path)
}
