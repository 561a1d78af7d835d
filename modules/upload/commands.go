package upload

import (
	"context"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/stanza/form"
	"github.com/kiez-im/kiez/storage"
)

// Nodes of the ad-hoc commands.
const (
	ListNode   = NS + "#list"
	DeleteNode = NS + "#delete"
)

// files returns user's stored files (not unused slots), oldest first.
func (m *Module) userFiles(ctx context.Context, user jid.JID) ([]storage.Upload, error) {
	ups, err := m.store.UserUploads(ctx, user.Bare().String())
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	var out []storage.Upload
	for _, u := range ups {
		if u.State == storage.UploadComplete {
			out = append(out, u)
		}
	}
	return out, nil
}

// listCommand shows the user's files: name, size, upload date, expiry
// and URL, as a multi-item result form.
func (m *Module) listCommand() adhoc.Command {
	return adhoc.Command{Node: ListNode, Name: "List my uploaded files",
		Handler: func(ctx context.Context, user jid.JID, _ adhoc.Request) (adhoc.Response, error) {
			ups, err := m.userFiles(ctx, user)
			if err != nil {
				return adhoc.Response{}, err
			}
			f := &form.Form{Type: form.TypeResult, Title: "Your uploaded files",
				Reported: []form.Field{{Var: "name", Label: "Name"}, {Var: "size", Label: "Size (bytes)"},
					{Var: "uploaded", Label: "Uploaded"}, {Var: "expires", Label: "Deleted on"}, {Var: "url", Label: "URL"}}}
			for _, u := range ups {
				f.Items = append(f.Items, []form.Field{
					{Var: "name", Values: []string{u.Filename}}, {Var: "size", Values: []string{fmt.Sprint(u.Size)}},
					{Var: "uploaded", Values: []string{u.Created.UTC().Format(time.DateOnly)}},
					{Var: "expires", Values: []string{u.Expires.UTC().Format(time.DateOnly)}},
					{Var: "url", Values: []string{m.getURL(u)}},
				})
			}
			note := fmt.Sprintf("%d files.", len(ups))
			return adhoc.Response{Status: adhoc.Completed, Form: f, Notes: []adhoc.Note{{Type: "info", Text: note}}}, nil
		}}
}

// deleteCommand lets the user pick files to delete, or all of them.
func (m *Module) deleteCommand() adhoc.Command {
	const all = "all"
	confirm := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		if req.Form == nil {
			return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "info", Text: "Nothing was deleted."}}}, nil
		}
		ups, err := m.userFiles(ctx, user)
		if err != nil {
			return adhoc.Response{}, err
		}
		chosen := map[string]bool{}
		if fd := req.Form.Field("files"); fd != nil {
			for _, v := range fd.Values {
				chosen[v] = true
			}
		}
		n := 0
		for _, u := range ups {
			if chosen[all] || chosen[u.ID] {
				if err := remove(ctx, m.store, m.files, u.ID); err != nil {
					return adhoc.Response{}, err
				}
				n++
			}
		}
		return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "info", Text: fmt.Sprintf("%d files deleted.", n)}}}, nil
	}
	return adhoc.Command{Node: DeleteNode, Name: "Delete my uploaded files",
		Handler: func(ctx context.Context, user jid.JID, _ adhoc.Request) (adhoc.Response, error) {
			ups, err := m.userFiles(ctx, user)
			if err != nil {
				return adhoc.Response{}, err
			}
			if len(ups) == 0 {
				return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Type: "info", Text: "You have no uploaded files."}}}, nil
			}
			opts := []form.Option{{Label: "All my files", Value: all}}
			for _, u := range ups {
				opts = append(opts, form.Option{Label: fmt.Sprintf("%s (%d bytes, %s)", u.Filename, u.Size, u.Created.UTC().Format(time.DateOnly)), Value: u.ID})
			}
			return adhoc.Response{Status: adhoc.Executing, Actions: []adhoc.Action{adhoc.Complete}, Next: confirm,
				Form: &form.Form{Type: form.TypeForm, Title: "Delete my uploaded files",
					Instructions: "The chosen files are deleted from the server at once; links to them stop working.",
					Fields:       []form.Field{{Var: "files", Type: form.ListMulti, Label: "Files to delete", Required: true, Options: opts}}}}, nil
		}}
}
