package adhoc_test

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/stanza/form"
)

// A module offers a command; the integrator hands it to the adhoc module
// in Deps.Commands, and the module serves it at the server's address.
func Example() {
	hello := adhoc.Command{
		Node: "urn:example:hello",
		Name: "Say hello",
		Handler: func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
			return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "Hello, " + user.Localpart()}}}, nil
		},
	}
	m, err := adhoc.New(adhoc.Options{}, adhoc.Deps{Commands: []adhoc.Command{hello}})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{Domains: []string{"example.org"}, Modules: []server.Module{m}}
	fmt.Println(cfg.Modules[0].Name())
	// Output: adhoc
}

// A two-stage command shows a form and acts on the answer, checked
// against the form it showed.
func ExampleResponse() {
	shown := &form.Form{Type: form.TypeForm, Fields: []form.Field{{Var: "sure", Type: form.Boolean, Label: "Are you sure?", Required: true}}}
	confirm := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		if err := req.Form.Validate(shown); err != nil {
			var fe *form.FieldError
			errors.As(err, &fe)
			return adhoc.Response{}, fe.StanzaError() // bad-request; the session stays
		}
		if !req.Form.Bool("sure") {
			return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "Nothing done."}}}, nil
		}
		return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "Done."}}}, nil
	}
	start := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		return adhoc.Response{Status: adhoc.Executing, Form: shown, Actions: []adhoc.Action{adhoc.Complete}, Next: confirm}, nil
	}
	resp, _ := start(context.Background(), jid.MustParse("alice@example.org/phone"), adhoc.Request{Action: adhoc.Execute})
	answer := &form.Form{Type: form.TypeSubmit, Fields: []form.Field{{Var: "sure", Values: []string{"1"}}}}
	done, _ := resp.Next(context.Background(), jid.MustParse("alice@example.org/phone"), adhoc.Request{Action: adhoc.Complete, Form: answer})
	fmt.Println(resp.Status, done.Status, done.Notes[0].Text)
	// Output: executing completed Done.
}
