// Package upload implements XEP-0363 HTTP File Upload: a service at
// upload.<domain> hands local accounts slots, a PUT URL to upload a file
// to and a GET URL to share, and the module's HTTP handlers receive and
// serve the files.
//
// Files are kept in a blob.Store under random IDs and their metadata in a
// storage.Uploads; they expire after a bounded retention, and deleting an
// account deletes its files at once, bytes and metadata. The PUT URL
// carries a token signed with a secret kept in the store: bound to the
// slot's ID, size and content type, valid for a few minutes, and usable
// once.
package upload

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/blob"
)

// NS is the XEP-0363 namespace.
const NS = "urn:xmpp:http:upload:0"

// Defaults for zero Options.
const (
	DefaultSubdomain   = "upload"
	DefaultMaxFileSize = 100 << 20
	DefaultQuota       = 1 << 30
	DefaultDailyQuota  = 512 << 20
	DefaultRetention   = 30 * 24 * time.Hour
	DefaultSlotTimeout = 5 * time.Minute
	// MaxRetention bounds Retention: every kind of data has a bounded
	// retention.
	MaxRetention = 10 * 365 * 24 * time.Hour
	// Path is where the module's HTTP handlers are served.
	Path = "/upload/"
)

// Options configure the module.
type Options struct {
	// Subdomain is the service's label: upload.<domain>. Zero means
	// DefaultSubdomain.
	Subdomain string
	// MaxFileSize is the largest file, in bytes. Zero means
	// DefaultMaxFileSize.
	MaxFileSize int64
	// Quota is the most bytes an account may keep uploaded; DailyQuota
	// the most it may upload per UTC day. Zero means the defaults.
	Quota, DailyQuota int64
	// Retention is how long a file is kept. Zero means DefaultRetention;
	// at most MaxRetention. The server's janitor deletes expired files
	// and unused slots (see Module.Expire and server.Retention).
	Retention time.Duration
	// SlotTimeout is how long a slot's PUT URL is valid. Zero means
	// DefaultSlotTimeout.
	SlotTimeout time.Duration
}

// Deps are what the module builds on.
type Deps struct {
	// Store keeps the uploads' metadata, Files their bytes, Secrets the
	// key that signs PUT tokens (all required).
	Store   storage.Uploads
	Files   blob.Store
	Secrets storage.Secrets
	// Days, if set, keeps the bytes each account uploaded per UTC day
	// (entries expire after the day), so that deleting files does not
	// give back the daily quota. Without it the daily quota counts the
	// files kept.
	Days storage.ServiceData
}

// Module is the upload service. Create it with New.
type Module struct {
	opts    Options
	store   storage.Uploads
	files   blob.Store
	secrets storage.Secrets
	days    storage.ServiceData
	dayMu   sync.Mutex // orders reading and adding to the day counters
	key     []byte     // HMAC key of PUT tokens, from Init
	host    server.Host
	log     *slog.Logger
	now     func() time.Time
	metrics uploadMetrics // see metrics.go
}

// New returns the upload module. It fails without its dependencies, and
// for limits out of range. The URLs it hands out are the server's
// (server.Config.HTTPBaseURL, through Host.HTTPURL) for the requester's
// domain, with Path + id + "/" + filename.
func New(opts Options, deps Deps) (*Module, error) {
	switch {
	case deps.Store == nil || deps.Files == nil || deps.Secrets == nil:
		return nil, errors.New("upload: a metadata store, a file store and a secret store are required")
	case opts.MaxFileSize < 0 || opts.Quota < 0 || opts.DailyQuota < 0 || opts.Retention < 0 || opts.SlotTimeout < 0:
		return nil, errors.New("upload: negative limit")
	case opts.Retention > MaxRetention:
		return nil, fmt.Errorf("upload: retention %v is longer than %v", opts.Retention, MaxRetention)
	}
	if opts.Subdomain == "" {
		opts.Subdomain = DefaultSubdomain
	}
	if opts.MaxFileSize == 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.Quota == 0 {
		opts.Quota = DefaultQuota
	}
	if opts.DailyQuota == 0 {
		opts.DailyQuota = DefaultDailyQuota
	}
	if opts.Retention == 0 {
		opts.Retention = DefaultRetention
	}
	if opts.SlotTimeout == 0 {
		opts.SlotTimeout = DefaultSlotTimeout
	}
	return &Module{opts: opts, store: deps.Store, files: deps.Files, secrets: deps.Secrets, days: deps.Days, now: time.Now}, nil
}

// Name returns "upload".
func (*Module) Name() string { return "upload" }

// Init reads the token key.
func (m *Module) Init(ctx context.Context, h server.Host) error {
	key, err := m.secrets.Secret(ctx, "upload-token", 32)
	if err != nil {
		return fmt.Errorf("upload: token key: %w", err)
	}
	m.key, m.host, m.log = key, h, h.Logger()
	return nil
}

// Services declares upload.<domain>.
func (m *Module) Services() []server.Service {
	return []server.Service{{
		Subdomain: m.opts.Subdomain,
		Name:      "HTTP file upload",
		Identity:  server.Identity{Category: "store", Type: "file", Name: "HTTP file upload"},
		Features:  []string{NS},
		IQRoutes: []server.IQRoute{{Type: mstanza.GetIQ, Payload: xml.Name{Space: NS, Local: "request"},
			To: server.TargetHost, Handler: server.IQHandlerFunc(m.slot)}},
		Forms: m.forms,
	}}
}

// forms is the XEP-0363 §2 max-file-size form.
func (m *Module) forms() []xml.TokenReader {
	field := func(v, val string) xml.TokenReader {
		return stanza.Elem(xml.Name{Space: "jabber:x:data", Local: "field"}, []xml.Attr{stanza.Attr("var", v)},
			stanza.TextElem(xml.Name{Space: "jabber:x:data", Local: "value"}, val))
	}
	return []xml.TokenReader{stanza.Elem(xml.Name{Space: "jabber:x:data", Local: "x"}, []xml.Attr{stanza.Attr("type", "result")},
		stanza.Elem(xml.Name{Space: "jabber:x:data", Local: "field"}, []xml.Attr{stanza.Attr("var", "FORM_TYPE"), stanza.Attr("type", "hidden")},
			stanza.TextElem(xml.Name{Space: "jabber:x:data", Local: "value"}, NS)),
		field("max-file-size", fmt.Sprint(m.opts.MaxFileSize)))}
}

// UserData names what the module keeps per user.
func (*Module) UserData() []string { return []string{"uploaded files"} }

// DeleteUser deletes every file of the account, bytes first, then the
// metadata, so a GET answers 404 from then on, and the account's day
// counters.
func (m *Module) DeleteUser(ctx context.Context, user jid.JID) error {
	return errors.Join(DeleteUserFiles(ctx, m.store, m.files, user), deleteDayCounters(ctx, m.days, user, m.now()))
}

// deleteDayCounters removes user's entries of the daily quota (see
// Module.create): an entry lives at most 25 hours, so today's and
// yesterday's are all there can be.
func deleteDayCounters(ctx context.Context, days storage.ServiceData, user jid.JID, now time.Time) error {
	if days == nil {
		return nil
	}
	var errs []error
	for _, d := range []time.Time{now.UTC(), now.UTC().Add(-24 * time.Hour)} {
		errs = append(errs, days.DeleteServiceValue(ctx, dayNamespace(d), user.Bare().String()))
	}
	return errors.Join(errs...)
}

// dayNamespace is the ServiceData namespace of one UTC day's counters.
func dayNamespace(t time.Time) string { return "upload-day:" + t.UTC().Format(time.DateOnly) }

// DeleteUserFiles deletes every upload of user from store and files: for
// servers that delete an account while the module is switched off.
func DeleteUserFiles(ctx context.Context, store storage.Uploads, files blob.Store, user jid.JID) error {
	ups, err := store.UserUploads(ctx, user.Bare().String())
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	var errs []error
	for _, u := range ups {
		if err := remove(ctx, store, files, u.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remove deletes one upload: its bytes, then its record.
func remove(ctx context.Context, store storage.Uploads, files blob.Store, id string) error {
	if err := files.Delete(ctx, id); err != nil {
		return fmt.Errorf("upload: deleting a file: %w", err)
	}
	if err := store.DeleteUpload(ctx, id); err != nil {
		return fmt.Errorf("upload: deleting a file's record: %w", err)
	}
	return nil
}

// ExportUser lists the account's uploads (XEP-0227 has no element for
// them): <uploads xmlns='urn:xmpp:http:upload:0'/> with an <upload/> per
// file, giving its name, size, type, dates and URL.
func (m *Module) ExportUser(ctx context.Context, user jid.JID, w xmlstream.TokenWriter) error {
	ups, err := m.store.UserUploads(ctx, user.Bare().String())
	if err != nil || len(ups) == 0 {
		return err
	}
	var items []xml.TokenReader
	for _, u := range ups {
		if u.State != storage.UploadComplete {
			continue
		}
		items = append(items, stanza.Elem(xml.Name{Space: NS, Local: "upload"}, []xml.Attr{
			stanza.Attr("filename", u.Filename), stanza.Attr("size", fmt.Sprint(u.Size)),
			stanza.Attr("content-type", u.ContentType), stanza.Attr("created", u.Created.UTC().Format(time.RFC3339)),
			stanza.Attr("expires", u.Expires.UTC().Format(time.RFC3339)), stanza.Attr("url", m.getURL(u)),
		}))
	}
	_, err = xmlstream.Copy(w, stanza.Elem(xml.Name{Space: NS, Local: "uploads"}, nil, items...))
	return err
}

// Expire implements server.Expirer: it deletes at most limit uploads
// (files and unused slots) whose expiry is at or before now, and returns
// how many and whether more may be due.
func (m *Module) Expire(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	return ExpireFiles(ctx, m.store, m.files, now, limit)
}

// expirePage is the most uploads ExpireFiles reads at once.
const expirePage = 100

// ExpireFiles deletes at most limit uploads (limit <= 0: no limit) whose
// expiry is at or before t, the bytes and then the record, and returns
// how many and whether more may be due. It is Module.Expire for a store
// without the module, as Leftovers uses it.
func ExpireFiles(ctx context.Context, store storage.Uploads, files blob.Store, t time.Time, limit int) (int, bool, error) {
	n := 0
	for {
		page := expirePage
		if limit > 0 {
			page = min(page, limit-n)
		}
		ups, err := store.ExpiredUploads(ctx, t, page)
		if err != nil {
			return n, false, fmt.Errorf("upload: %w", err)
		}
		for _, u := range ups {
			if err := remove(ctx, store, files, u.ID); err != nil {
				return n, false, err
			}
			n++
		}
		switch {
		case len(ups) < page:
			return n, false, nil
		case storage.Limited(n, limit):
			return n, true, nil
		}
	}
}

// Commands are the ad-hoc commands (XEP-0050) for users to see and
// delete their uploads; give them to the adhoc module.
func (m *Module) Commands() []adhoc.Command {
	return []adhoc.Command{m.listCommand(), m.deleteCommand()}
}

// newID returns a random upload ID of 160 bits, URL-safe.
func newID() string {
	var b [20]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var (
	_ server.Initializer      = (*Module)(nil)
	_ server.ServiceProvider  = (*Module)(nil)
	_ server.HTTPProvider     = (*Module)(nil)
	_ server.UserDataOwner    = (*Module)(nil)
	_ server.UserDataDeclarer = (*Module)(nil)
	_ server.Expirer          = (*Module)(nil)
)
