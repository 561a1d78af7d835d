package mam

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// RetentionNode is the ad-hoc command node of RetentionCommand.
const RetentionNode = "urn:kiez:mam:retention"

// RetentionNamespace is the storage.ServiceData namespace of the index of
// users who set a personal retention: a key per user (their bare JID),
// with an empty value and no expiry. The setting itself is the user's, in
// the key-value store; the index only lets the janitor find those users
// without visiting every account.
const RetentionNamespace = "mam:retention"

// retentionKey is the key of a user's personal retention in the key-value
// store: a time.Duration in its String form.
const retentionKey = "mam:retention"

// retentionChoices are the personal retentions RetentionCommand offers,
// those shorter than Options.Retention, besides keeping messages as long as
// the server does.
var retentionChoices = [...]time.Duration{
	24 * time.Hour,
	7 * 24 * time.Hour,
	30 * 24 * time.Hour,
	90 * 24 * time.Hour,
	365 * 24 * time.Hour,
}

// retentionServer is the choice "as long as the server keeps them".
const retentionServer = "server"

// retentionPage is how many users of the index the janitor reads at once.
const retentionPage = 256

// retentionValue returns the form value of a choice: the number of days.
func retentionValue(d time.Duration) string {
	return strconv.FormatInt(int64(d/(24*time.Hour)), 10)
}

// describeRetention returns d in words: "1 day", "30 days", "12h0m0s".
func describeRetention(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

// loadRetention returns user's personal retention, and whether the user
// set one.
func (m *Module) loadRetention(ctx context.Context, user string) (time.Duration, bool, error) {
	b, err := m.kv.Get(ctx, user, retentionKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("mam: loading the retention: %w", err)
	}
	d, err := time.ParseDuration(string(b))
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("mam: a stored retention %q does not parse", b)
	}
	return d, true, nil
}

// setRetention stores user's personal retention (0: none, the server's)
// and applies it at once, returning how many messages it removed. The
// index entry is written before the setting and deleted after it, so an
// interrupted change leaves at worst an index entry without a setting,
// which the janitor drops.
func (m *Module) setRetention(ctx context.Context, user string, d time.Duration) (int, error) {
	m.retentionMu.Lock()
	defer m.retentionMu.Unlock()
	if d <= 0 || d >= m.opts.Retention {
		if err := m.kv.Delete(ctx, user, retentionKey); err != nil {
			return 0, fmt.Errorf("mam: deleting the retention: %w", err)
		}
		if err := m.service.DeleteServiceValue(ctx, RetentionNamespace, user); err != nil {
			return 0, fmt.Errorf("mam: deleting the retention: %w", err)
		}
		return 0, nil
	}
	if err := m.service.PutServiceValue(ctx, RetentionNamespace, user, nil, time.Time{}); err != nil {
		return 0, fmt.Errorf("mam: saving the retention: %w", err)
	}
	if err := m.kv.Put(ctx, user, retentionKey, []byte(d.String())); err != nil {
		return 0, fmt.Errorf("mam: saving the retention: %w", err)
	}
	n, err := m.archive.ExpireUserArchive(ctx, user, m.now().Add(-d), 0)
	if err != nil {
		return n, fmt.Errorf("mam: %w", err)
	}
	return n, nil
}

// deleteRetention removes user's personal retention and index entry.
func (m *Module) deleteRetention(ctx context.Context, user string) error {
	if m.service == nil {
		return m.kv.Delete(ctx, user, retentionKey)
	}
	_, err := m.setRetention(ctx, user, 0)
	return err
}

// expirePersonal applies the personal retentions as of now, removing at
// most limit messages: it reads a page of the index after the last user
// done, and expires each listed user's archive by their retention. It
// returns whether the pass is not over (a user has more due, or the index
// has more pages). Its cost grows with the users who set one and the
// messages removed, not with the other accounts. An index entry whose user
// has no setting (left by an interrupted change) is dropped.
func (m *Module) expirePersonal(ctx context.Context, now time.Time, limit int) (int, bool, error) {
	if m.service == nil || limit <= 0 {
		return 0, limit <= 0, nil
	}
	m.personalMu.Lock()
	defer m.personalMu.Unlock()
	users, err := m.service.ServiceKeys(ctx, RetentionNamespace, storage.ServiceKeysQuery{After: m.personalAfter, Max: retentionPage})
	if err != nil {
		return 0, false, fmt.Errorf("mam: listing personal retentions: %w", err)
	}
	total := 0
	var errs []error
	for _, user := range users {
		if err := ctx.Err(); err != nil {
			return total, true, err
		}
		d, ok, err := m.loadRetention(ctx, user)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			if err := m.dropStaleIndex(ctx, user); err != nil {
				errs = append(errs, err)
			}
		case d < m.opts.Retention: // longer ones: the server's expiry covers them
			left := limit - total
			n, err := m.archive.ExpireUserArchive(ctx, user, now.Add(-d), left)
			total += n
			if err != nil {
				errs = append(errs, fmt.Errorf("mam: %w", err))
			} else if storage.Limited(n, left) {
				return total, true, errors.Join(errs...) // resume at this user
			}
		}
		m.personalAfter = user
	}
	if len(users) < retentionPage {
		m.personalAfter = ""
		return total, false, errors.Join(errs...)
	}
	return total, true, errors.Join(errs...)
}

// dropStaleIndex deletes user's index entry if the user still has no
// setting, under the lock changes take, so that it never deletes the entry
// of a setting being made.
func (m *Module) dropStaleIndex(ctx context.Context, user string) error {
	m.retentionMu.Lock()
	defer m.retentionMu.Unlock()
	if _, ok, err := m.loadRetention(ctx, user); err != nil || ok {
		return err
	}
	if err := m.service.DeleteServiceValue(ctx, RetentionNamespace, user); err != nil {
		return fmt.Errorf("mam: deleting a stale retention entry: %w", err)
	}
	return nil
}

// retentionForm returns the form of RetentionCommand for a user whose
// current retention is cur (0: the server's).
func (m *Module) retentionForm(cur time.Duration) *form.Form {
	server := describeRetention(m.opts.Retention)
	f := form.Field{
		Var: "retention", Type: form.ListSingle, Label: "Keep my messages for", Required: true,
		Values: []string{retentionServer},
	}
	now := "as long as the server keeps them"
	for _, d := range retentionChoices {
		if d >= m.opts.Retention {
			continue
		}
		f.Options = append(f.Options, form.Option{Label: describeRetention(d), Value: retentionValue(d)})
		if d == cur {
			f.Values = []string{retentionValue(d)}
		}
	}
	if cur > 0 && cur < m.opts.Retention {
		now = "for " + describeRetention(cur)
	}
	f.Options = append(f.Options, form.Option{Label: "As long as the server keeps them (" + server + ")", Value: retentionServer})
	return &form.Form{
		Type:         form.TypeForm,
		Title:        "Set how long my messages are kept",
		Instructions: "The server keeps archived messages for " + server + ". Your messages are now kept " + now + ".\nChoosing a shorter time deletes older messages at once, and each message from then on once it is that old.",
		Fields:       []form.Field{f},
	}
}

// choice returns the retention a form value stands for (0: the server's).
func (m *Module) choice(v string) (time.Duration, bool) {
	if v == retentionServer {
		return 0, true
	}
	for _, d := range retentionChoices {
		if d < m.opts.Retention && retentionValue(d) == v {
			return d, true
		}
	}
	return 0, false
}

// RetentionCommand returns the ad-hoc command "Set how long my messages
// are kept" (node RetentionNode): it shows the current retention and a
// list-single field "retention" offering 1, 7, 30, 90 and 365 days, those
// shorter than Options.Retention (their values are numbers of days), and
// "server",
// keeping messages as long as the server does. A choice applies at once:
// the older messages are deleted and the note says how many; the janitor
// then applies it at each run. A value the form did not offer is answered
// with an error note and changes nothing. It needs Deps.Service; without
// it the command answers that it is not available.
func (m *Module) RetentionCommand() adhoc.Command {
	apply := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		bare := user.Bare().String()
		cur, _, err := m.loadRetention(ctx, bare)
		if err != nil {
			return adhoc.Response{}, err
		}
		shown := m.retentionForm(cur)
		refuse := func(text string) (adhoc.Response, error) {
			return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "error", Text: text}}}, nil
		}
		if req.Form == nil {
			return refuse("No choice was made; nothing changed.")
		}
		if err := req.Form.Validate(shown); err != nil {
			return refuse("That is not one of the choices offered; nothing changed.")
		}
		v, _ := req.Form.Value("retention")
		d, ok := m.choice(v)
		if !ok {
			return refuse("That is not one of the choices offered; nothing changed.")
		}
		n, err := m.setRetention(ctx, bare, d)
		if err != nil {
			return adhoc.Response{}, err
		}
		text := "Your messages are now kept as long as the server keeps them (" + describeRetention(m.opts.Retention) + ")."
		if d > 0 {
			text = fmt.Sprintf("Your messages are now kept for %s; %d older messages were deleted.", describeRetention(d), n)
			if n == 1 {
				text = fmt.Sprintf("Your messages are now kept for %s; 1 older message was deleted.", describeRetention(d))
			}
		}
		return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "info", Text: text}}}, nil
	}
	return adhoc.Command{
		Node: RetentionNode,
		Name: "Set how long my messages are kept",
		Handler: func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
			if m.service == nil {
				return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "error", Text: "This server does not offer a personal retention."}}}, nil
			}
			cur, _, err := m.loadRetention(ctx, user.Bare().String())
			if err != nil {
				return adhoc.Response{}, err
			}
			return adhoc.Response{
				Status:  adhoc.Executing,
				Form:    m.retentionForm(cur),
				Actions: []adhoc.Action{adhoc.Complete},
				Next:    apply,
			}, nil
		},
	}
}
