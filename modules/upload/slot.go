package upload

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	mstanza "mellium.im/xmpp/stanza"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza"
	"github.com/kiez-im/kiez/storage"
)

// maxFilename bounds the sanitised filename, in bytes.
const maxFilename = 200

// slot answers a slot request (XEP-0363 §4) from a local account.
func (m *Module) slot(ctx context.Context, iq stanza.IQ, w server.ResponseWriter) error {
	if !m.host.IsLocal(iq.From.Domainpart()) || iq.From.Localpart() == "" {
		return stanza.NewFailure(mstanza.Cancel, mstanza.NotAllowed, "only accounts of this server may upload")
	}
	req, _ := iq.PayloadElement()
	name := sanitize(req.Attr("filename"))
	size, err := strconv.ParseInt(req.Attr("size"), 10, 64)
	switch {
	case name == "":
		return stanza.NewFailure(mstanza.Modify, mstanza.BadRequest, "a filename is required")
	case err != nil || size < 1:
		return stanza.NewFailure(mstanza.Modify, mstanza.BadRequest, "the size must be a positive number of bytes")
	case size > m.opts.MaxFileSize:
		m.metrics.slotsRefused.Inc()
		f := stanza.NewFailure(mstanza.Modify, mstanza.NotAcceptable, fmt.Sprintf("the file is larger than the largest allowed, %d bytes", m.opts.MaxFileSize))
		f.App = xml.Name{Space: NS, Local: "file-too-large"}
		max := xml.Name{Space: NS, Local: "max-file-size"}
		f.AppInner = []xml.Token{xml.StartElement{Name: max}, xml.CharData(strconv.FormatInt(m.opts.MaxFileSize, 10)), xml.EndElement{Name: max}}
		return f
	}
	ctype := req.Attr("content-type")
	if ctype != "" {
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			return stanza.NewFailure(mstanza.Modify, mstanza.BadRequest, "the content type is not a media type")
		}
		ctype = mime.FormatMediaType(mt, params)
	}
	if m.host.HTTPURL(iq.From.Domainpart(), Path) == "" {
		return stanza.NewFailure(mstanza.Cancel, mstanza.ServiceUnavailable, "the server has no HTTP address for uploads")
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	u := storage.Upload{ID: newID(), Owner: iq.From.Bare().String(), Filename: name, Size: size, ContentType: ctype,
		State: storage.UploadSlot, Created: now, Expires: now.Add(m.opts.SlotTimeout)}
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if err := m.create(ctx, u, day); err != nil {
		if errors.Is(err, storage.ErrLimit) {
			m.metrics.slotsRefused.Inc()
			return stanza.NewFailure(mstanza.Wait, mstanza.ResourceConstraint, "upload quota exceeded: delete files or wait")
		}
		return fmt.Errorf("upload: %w", err)
	}
	m.metrics.slotsAccepted.Inc()
	put := m.putURL(u)
	return w.Result(stanza.Elem(xml.Name{Space: NS, Local: "slot"}, nil,
		stanza.Elem(xml.Name{Space: NS, Local: "put"}, []xml.Attr{stanza.Attr("url", put)}),
		stanza.Elem(xml.Name{Space: NS, Local: "get"}, []xml.Attr{stanza.Attr("url", m.getURL(u))})))
}

// getURL is where the upload is fetched: the ID, then the filename for
// clients to show, at the server's HTTP address for the owner's domain.
func (m *Module) getURL(u storage.Upload) string {
	_, domain, _ := strings.Cut(u.Owner, "@")
	return m.host.HTTPURL(domain, Path+u.ID+"/"+url.PathEscape(u.Filename))
}

// putURL is getURL with the slot's token.
func (m *Module) putURL(u storage.Upload) string {
	return m.getURL(u) + "?t=" + m.token(u, u.Expires)
}

// token signs the slot's ID, size, content type and the token's expiry:
// the expiry in seconds, base64url, a dot, then the HMAC-SHA256.
func (m *Module) token(u storage.Upload, expires time.Time) string {
	var exp [8]byte
	binary.BigEndian.PutUint64(exp[:], uint64(expires.Unix()))
	return base64.RawURLEncoding.EncodeToString(exp[:]) + "." + base64.RawURLEncoding.EncodeToString(m.mac(u, exp[:]))
}

func (m *Module) mac(u storage.Upload, exp []byte) []byte {
	h := hmac.New(sha256.New, m.key)
	h.Write(exp)
	fmt.Fprintf(h, "\x00%s\x00%d\x00%s", u.ID, u.Size, u.ContentType)
	return h.Sum(nil)
}

// errToken is a PUT token that is missing, tampered with or expired.
var errToken = errors.New("upload: invalid or expired token")

// checkToken verifies a PUT token for u at time now.
func (m *Module) checkToken(u storage.Upload, tok string, now time.Time) error {
	e, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return errToken
	}
	exp, err1 := base64.RawURLEncoding.DecodeString(e)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || len(exp) != 8 || !hmac.Equal(mac, m.mac(u, exp)) {
		return errToken
	}
	if now.Unix() > int64(binary.BigEndian.Uint64(exp)) {
		return errToken
	}
	return nil
}

// sanitize makes a client's filename safe to show and to put as the last
// segment of a URL: the part after any slash or backslash, without
// control characters and invalid UTF-8, no dot files, at most
// maxFilename bytes (keeping the extension).
func sanitize(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || r == 0 || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	if len(name) > maxFilename {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i >= 0 && len(name)-i <= 16 {
			ext = name[i:]
		}
		cut := maxFilename - len(ext)
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut] + ext
	}
	return name
}

// create stores the slot within the quotas. With a day counter, the
// bytes of the day so far count whether or not their files were deleted.
func (m *Module) create(ctx context.Context, u storage.Upload, day time.Time) error {
	lim := storage.UploadLimits{MaxBytes: m.opts.Quota, MaxDayBytes: m.opts.DailyQuota, DayStart: day}
	if m.days == nil {
		return m.store.CreateUpload(ctx, u, lim)
	}
	m.dayMu.Lock()
	defer m.dayMu.Unlock()
	ns := dayNamespace(day)
	var used int64
	if v, _, err := m.days.ServiceValue(ctx, ns, u.Owner); err == nil && len(v) == 8 {
		used = int64(binary.BigEndian.Uint64(v))
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if used+u.Size > m.opts.DailyQuota {
		return fmt.Errorf("%w: daily upload quota", storage.ErrLimit)
	}
	if err := m.store.CreateUpload(ctx, u, lim); err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(used+u.Size))
	return m.days.PutServiceValue(ctx, ns, u.Owner, v[:], day.Add(25*time.Hour))
}
