package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/storage"
)

// DefaultMaxImportElement is the default of ImportOptions.MaxElementBytes.
const DefaultMaxImportElement = 1 << 20

// nsXInclude is the XInclude namespace, which XEP-0227 files may use to
// split themselves into several files.
const nsXInclude = "http://www.w3.org/2001/XInclude"

// ErrNotCarried is returned, wrapped with the reason, by a
// UserDataImporter for an element it recognises but does not import
// because the export format does not carry what the data needs (the
// uploaded files behind a list of uploads). ImportUsers reports it as a
// note and goes on.
var ErrNotCarried = errors.New("not carried by the export")

// ErrElementTooLarge is returned (wrapped) when an element of an import
// is larger than ImportOptions.MaxElementBytes.
var ErrElementTooLarge = errors.New("server: import element too large")

// UserDataImporter is implemented by data owners (UserDataOwner) that
// restore what their ExportUser writes. ImportUsers offers each child
// element of a <user/> to the importers in Config.Modules order until one
// returns handled; an element none takes is reported as unknown.
//
// ImportUser looks at el.Start to decide: for an element that is not its
// own it returns false at once, without reading el. For its own it reads
// el (or not: what it leaves is skipped) and returns true, or an error,
// which makes the whole user fail (the account is deleted again if the
// import created it), unless it wraps ErrNotCarried.
type UserDataImporter interface {
	ImportUser(ctx context.Context, user jid.JID, el *ImportElement) (handled bool, err error)
}

// ImportElement is an element of a XEP-0227 document being imported,
// read as it streams: Child walks its children one at a time and Tokens
// buffers it whole, up to ImportOptions.MaxElementBytes, so that a large
// element (an archive) is never held in memory at once. It is valid
// until the importer it was given to returns.
type ImportElement struct {
	// Start is the element's start tag, with resolved namespaces and no
	// namespace declarations.
	Start xml.StartElement

	imp   *importReader
	child *ImportElement
	used  bool // a token of the element was read
	done  bool // its end tag was read
}

// Child returns the next child element, skipping what is left of the
// previous one, and text between children; it returns io.EOF after the
// last. Non-whitespace text between children is an error.
func (e *ImportElement) Child() (*ImportElement, error) {
	if e.done {
		return nil, io.EOF
	}
	if e.child != nil && !e.child.done {
		if err := e.child.Skip(); err != nil {
			return nil, err
		}
	}
	e.used = true
	for {
		t, err := e.imp.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			e.child = &ImportElement{Start: startCopy(t), imp: e.imp}
			return e.child, nil
		case xml.EndElement:
			e.done = true
			return nil, io.EOF
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, e.imp.errorf("text %q inside <%s/> where elements were expected", abbrev(string(t)), e.Start.Name.Local)
			}
		}
	}
}

// Tokens reads the whole element and returns it as tokens, from its start
// to its end tag, with resolved namespaces and no namespace declarations
// (as stanza.ParseElement returns a stored element). An element larger
// than ImportOptions.MaxElementBytes is an error wrapping
// ErrElementTooLarge. It must be called before anything else reads the
// element.
func (e *ImportElement) Tokens() ([]xml.Token, error) {
	if e.used || e.done {
		return nil, errors.New("server: import element read twice")
	}
	e.used = true
	toks := []xml.Token{e.Start}
	e.imp.whole = true
	defer func() { e.imp.whole = false }()
	e.imp.in.left = e.imp.max
	depth := 0
	for {
		t, err := e.imp.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			depth++
			toks = append(toks, startCopy(t))
		case xml.EndElement:
			toks = append(toks, t)
			if depth == 0 {
				e.done = true
				return toks, nil
			}
			depth--
		case xml.CharData:
			toks = append(toks, t.Copy())
		}
	}
}

// Text returns the element's text content (a leaf element's), trimmed of
// surrounding whitespace.
func (e *ImportElement) Text() (string, error) {
	toks, err := e.Tokens()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, t := range toks {
		if cd, ok := t.(xml.CharData); ok {
			b.Write(cd)
		}
	}
	return strings.TrimSpace(b.String()), nil
}

// Skip reads what is left of the element without keeping it.
func (e *ImportElement) Skip() error {
	if e.done {
		return nil
	}
	if e.child != nil && !e.child.done {
		if err := e.child.Skip(); err != nil {
			return err
		}
	}
	e.used = true
	depth := 0
	for {
		t, err := e.imp.token()
		if err != nil {
			return err
		}
		switch t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				e.done = true
				return nil
			}
			depth--
		}
	}
}

// Attr returns the value of the start tag's attribute local (without
// namespace), or "".
func (e *ImportElement) Attr(local string) string {
	for _, a := range e.Start.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// startCopy copies a start element without namespace declarations.
func startCopy(se xml.StartElement) xml.StartElement {
	out := xml.StartElement{Name: se.Name}
	for _, a := range se.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		out.Attr = append(out.Attr, a)
	}
	return out
}

// budget is the import's io.Reader: it lets the decoder read at most left
// more bytes, which importReader sets per token, or per element while
// Tokens buffers one, so that neither one token nor one buffered element
// can take more memory than the limit (plus the decoder's read-ahead).
type budget struct {
	r    io.Reader
	left int64
}

func (b *budget) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, ErrElementTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// importReader reads the tokens of one import.
type importReader struct {
	d     *xml.Decoder
	in    *budget
	max   int64
	whole bool // Tokens is buffering an element: the budget is its own
}

// token returns the next token; the end of the input is an error (the
// document is not complete), and so is malformed XML, with its line.
func (r *importReader) token() (xml.Token, error) {
	if !r.whole {
		r.in.left = r.max
	}
	t, err := r.d.Token()
	switch {
	case errors.Is(err, ErrElementTooLarge):
		line, _ := r.d.InputPos()
		return nil, fmt.Errorf("%w: an element near line %d is larger than %d bytes", ErrElementTooLarge, line, r.max)
	case err == io.EOF:
		return nil, r.errorf("the document ends before </server-data>")
	case err != nil:
		return nil, fmt.Errorf("server: import: malformed XML: %w", err)
	}
	return t, nil
}

func (r *importReader) errorf(format string, args ...any) error {
	line, _ := r.d.InputPos()
	return fmt.Errorf("server: import: line %d: %s", line, fmt.Sprintf(format, args...))
}

func abbrev(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ImportOptions tune ImportUsers.
type ImportOptions struct {
	// Merge imports the data of a user whose account exists into it
	// (roster items, vCard and private items replace those with the same
	// key, messages are added, the account's credentials are kept);
	// without it, such a user is refused and left as it is.
	Merge bool
	// NoCredentials creates accounts for users that come without
	// credentials the server can use (neither SCRAM credentials for one
	// of its hashes nor a password): such an account cannot log in until
	// an admin sets a password (SetPassword). Without it, such a user is
	// refused.
	NoCredentials bool
	// MaxElementBytes bounds the bytes of any one element the import
	// holds in memory (a roster item, a vCard, an archived message) and
	// of any one token; 0 means DefaultMaxImportElement.
	MaxElementBytes int64
}

// ImportReport tells what ImportUsers did.
type ImportReport struct {
	// Users are the users read, in document order, imported or not.
	Users []UserImport
	// Unknown counts the elements outside any <user/> that the import
	// does not know, by name as "{namespace}local".
	Unknown map[string]int
}

// UserImport is what happened to one user.
type UserImport struct {
	// JID is the account's bare JID.
	JID string
	// Merged reports that the data went into an account that existed.
	Merged bool
	// Credentials names the SCRAM hashes the account got from the
	// document ("SHA-1", …), or "password" if it came with a password
	// only; empty if none (the account cannot log in).
	Credentials []string
	// Elements counts the <user/> children modules imported.
	Elements int
	// Unknown counts the children no module took, by name as
	// "{namespace}local".
	Unknown map[string]int
	// Notes are what modules recognised but did not import, and why.
	Notes []string
	// Err is why the user was not imported (nil if it was); an account
	// the import created for it was deleted again.
	Err error
}

// Failed returns the errors of the users that were not imported, joined,
// or nil.
func (r *ImportReport) Failed() error {
	var errs []error
	for _, u := range r.Users {
		if u.Err != nil {
			errs = append(errs, u.Err)
		}
	}
	return errors.Join(errs...)
}

// ImportUsers reads a XEP-0227 <server-data/> document from r and creates
// its users' accounts with their data. Each <host/> must be one of the
// server's virtual hosts, or the import stops with an error naming it.
// For each <user/> it creates the account from its <scram-credentials/>
// (for the hashes the server supports) or its password attribute, then
// offers each other child element to the modules implementing
// UserDataImporter. A user whose account exists (unless opts.Merge), who
// brings no usable credentials (unless opts.NoCredentials), or whose data
// a module fails to import is not imported: an account created for it is
// deleted again (DeleteUser), and the import goes on with the next user.
// Its error is in the report, and the report's Failed returns them all.
//
// Malformed XML, an element larger than opts.MaxElementBytes, a host not
// served and XInclude (unsupported: merge the files first) stop the
// import with an error; the user being read is then removed as above,
// and the users before it stay imported (the report lists them).
// Elements no module knows are counted in the report, not imported.
func (s *Server) ImportUsers(ctx context.Context, r io.Reader, opts ImportOptions) (*ImportReport, error) {
	max := opts.MaxElementBytes
	if max <= 0 {
		max = DefaultMaxImportElement
	}
	in := &budget{r: r}
	d := xml.NewDecoder(in)
	d.Strict = true
	imp := &importReader{d: d, in: in, max: max}
	report := &ImportReport{Unknown: map[string]int{}}
	var root *ImportElement
	for root == nil {
		t, err := imp.token()
		if err != nil {
			return report, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			root = &ImportElement{Start: startCopy(t), imp: imp}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return report, imp.errorf("text before the root element")
			}
		}
	}
	if root.Start.Name != (xml.Name{Space: NSPIE, Local: "server-data"}) {
		return report, imp.errorf("the root element is <%s xmlns='%s'/>, not XEP-0227's <server-data xmlns='%s'/>", root.Start.Name.Local, root.Start.Name.Space, NSPIE)
	}
	for {
		host, err := root.Child()
		if err == io.EOF {
			return report, nil
		}
		if err != nil {
			return report, err
		}
		switch {
		case host.Start.Name == xml.Name{Space: NSPIE, Local: "host"}:
		case host.Start.Name.Space == nsXInclude:
			return report, imp.errorf("XInclude is not supported: merge the files into one document first")
		default:
			report.Unknown[nameKey(host.Start.Name)]++
			continue
		}
		domain := host.Attr("jid")
		if dj, err := jid.Parse(domain); err == nil && dj.Localpart() == "" && dj.Resourcepart() == "" {
			domain = dj.Domainpart()
		}
		if !s.local[domain] {
			return report, imp.errorf("host %q is not served here", host.Attr("jid"))
		}
		for {
			u, err := host.Child()
			if err == io.EOF {
				break
			}
			if err != nil {
				return report, err
			}
			switch {
			case u.Start.Name == xml.Name{Space: NSPIE, Local: "user"}:
			case u.Start.Name.Space == nsXInclude:
				return report, imp.errorf("XInclude is not supported: merge the files into one document first")
			default:
				report.Unknown[nameKey(u.Start.Name)]++
				continue
			}
			if err := ctx.Err(); err != nil {
				return report, fmt.Errorf("server: import: %w", err)
			}
			ui, fatal := s.importUser(ctx, domain, u, opts)
			report.Users = append(report.Users, ui)
			if fatal != nil {
				return report, fatal
			}
		}
	}
}

// importUser imports one <user/>. A user-level failure is in the
// returned UserImport; fatal is an error that ends the whole import
// (malformed input).
func (s *Server) importUser(ctx context.Context, domain string, u *ImportElement, opts ImportOptions) (ui UserImport, fatal error) {
	ui.Unknown = map[string]int{}
	fail := func(err error) (UserImport, error) {
		ui.Err = err
		// Whatever is left of the user is not imported; reading on to
		// the next user can still fail on malformed XML.
		return ui, u.Skip()
	}
	name := u.Attr("name")
	user, err := jid.New(name, domain, "")
	if err != nil || name == "" {
		ui.JID = name + "@" + domain
		return fail(fmt.Errorf("server: import: user %q of %s: not a valid address", name, domain))
	}
	ui.JID = user.String()
	var keys map[storage.Hash]storage.SCRAMKeys
	if pw := u.Attr("password"); pw != "" {
		if _, keys, err = s.userKeys(user, pw); err != nil {
			return fail(fmt.Errorf("server: importing %s: %w", user, err))
		}
		ui.Credentials = []string{"password"}
	}
	_, err = s.accounts.Account(ctx, user.String())
	switch {
	case err == nil && !opts.Merge:
		return fail(fmt.Errorf("server: importing %s: the account exists (merging into it was not asked for): %w", user, storage.ErrExists))
	case err == nil:
		ui.Merged = true
	case !errors.Is(err, storage.ErrNotFound):
		return fail(fmt.Errorf("server: importing %s: %w", user, err))
	default:
		// Created without keys (it cannot log in while it is being
		// imported); they are set once all of the user is read.
		err := s.accounts.CreateAccount(ctx, storage.Account{JID: user.String(), Keys: map[storage.Hash]storage.SCRAMKeys{}, Created: storage.Day(time.Now())})
		if err != nil {
			return fail(fmt.Errorf("server: importing %s: %w", user, err))
		}
		for _, l := range s.accountLs {
			l.AccountCreated(ctx, user)
		}
	}
	// undo deletes the account again if this import created it.
	undo := func(cause error) error {
		if ui.Merged {
			return cause
		}
		if err := s.DeleteUser(ctx, user); err != nil {
			return errors.Join(cause, fmt.Errorf("server: removing the partly imported %s: %w", user, err))
		}
		return cause
	}
	var importers []namedImporter
	for _, o := range s.owners {
		if imp, ok := o.owner.(UserDataImporter); ok {
			importers = append(importers, namedImporter{o.name, imp})
		}
	}
	scram := map[storage.Hash]storage.SCRAMKeys{}
	for {
		el, err := u.Child()
		if err == io.EOF {
			break
		}
		if err != nil {
			ui.Err = undo(fmt.Errorf("server: importing %s: %w", user, err))
			return ui, err
		}
		if el.Start.Name == (xml.Name{Space: NSPIESCRAM, Local: "scram-credentials"}) {
			h, k, err := parseSCRAM(el)
			if err != nil {
				return fail(undo(fmt.Errorf("server: importing %s: %w", user, err)))
			}
			if h != "" {
				scram[h] = k
			}
			continue
		}
		handled := false
		for _, imp := range importers {
			ok, err := imp.imp.ImportUser(ctx, user, el)
			if err != nil && errors.Is(err, ErrNotCarried) {
				ui.Notes = append(ui.Notes, fmt.Sprintf("%s: %v", imp.name, err))
				handled = true
				break
			}
			if err != nil {
				err = fmt.Errorf("server: importing %s: module %s: <%s xmlns='%s'/>: %w", user, imp.name, el.Start.Name.Local, el.Start.Name.Space, err)
				if errors.Is(err, ErrElementTooLarge) {
					ui.Err = undo(err)
					return ui, err
				}
				return fail(undo(err))
			}
			if ok {
				handled = true
				ui.Elements++
				break
			}
			if el.used {
				return fail(undo(fmt.Errorf("server: importing %s: module %s read <%s/> but did not import it", user, imp.name, el.Start.Name.Local)))
			}
		}
		if !handled {
			ui.Unknown[nameKey(el.Start.Name)]++
		}
	}
	if len(scram) > 0 {
		keys = scram
		ui.Credentials = nil
		for _, h := range scramHashes {
			if _, ok := scram[h.hash]; ok {
				ui.Credentials = append(ui.Credentials, string(h.hash))
			}
		}
	}
	switch {
	case ui.Merged:
		// The account keeps its own credentials.
		ui.Credentials = nil
	case len(keys) == 0 && !opts.NoCredentials:
		ui.Err = undo(fmt.Errorf("server: importing %s: no credentials the server can use (SCRAM-SHA-1, -256 or -512, or a password); import with the option to create accounts without credentials, then set a password", user))
	case len(keys) > 0:
		if err := s.accounts.SetKeys(ctx, user.String(), keys); err != nil {
			ui.Err = undo(fmt.Errorf("server: importing %s: %w", user, err))
			break
		}
		s.decoys.add(keys, 1)
	}
	return ui, nil
}

type namedImporter struct {
	name string
	imp  UserDataImporter
}

// parseSCRAM reads a <scram-credentials/> element. An unknown mechanism
// gives an empty hash and no error: the credentials are of no use here.
func parseSCRAM(el *ImportElement) (storage.Hash, storage.SCRAMKeys, error) {
	var h storage.Hash
	mech := el.Attr("mechanism")
	for _, sh := range scramHashes {
		if sh.mech == mech {
			h = sh.hash
		}
	}
	var k storage.SCRAMKeys
	seen := 0
	for {
		c, err := el.Child()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", k, err
		}
		v, err := c.Text()
		if err != nil {
			return "", k, err
		}
		if c.Start.Name.Space != NSPIESCRAM {
			continue
		}
		var dst *[]byte
		switch c.Start.Name.Local {
		case "iter-count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return "", k, fmt.Errorf("%s credentials: bad iter-count %q", mech, abbrev(v))
			}
			k.Iterations = n
			seen++
			continue
		case "salt":
			dst = &k.Salt
		case "server-key":
			dst = &k.ServerKey
		case "stored-key":
			dst = &k.StoredKey
		default:
			continue
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			return "", k, fmt.Errorf("%s credentials: %s is not base64", mech, c.Start.Name.Local)
		}
		*dst = b
		seen++
	}
	if h == "" {
		return "", k, nil
	}
	if seen != 4 {
		return "", k, fmt.Errorf("%s credentials need iter-count, salt, server-key and stored-key", mech)
	}
	return h, k, nil
}

// nameKey is how reports name an element: "{namespace}local".
func nameKey(n xml.Name) string { return "{" + n.Space + "}" + n.Local }
