package adhoc_test

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/modules/adhoc"
	"github.com/kiez-im/kiez/server"
)

// A module offers a command; the integrator hands it to the adhoc module,
// which serves it at the server's address.
func Example() {
	hello := adhoc.Command{
		Node: "urn:example:hello",
		Name: "Say hello",
		Handler: func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
			return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "Hello, " + user.Localpart()}}}, nil
		},
	}
	m, err := adhoc.New(adhoc.Options{}, hello)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{Domains: []string{"example.org"}, Modules: []server.Module{m}}
	fmt.Println(cfg.Modules[0].Name())
	// Output: adhoc
}

// A two-stage command shows a form and acts on the answer.
func ExampleResponse() {
	confirm := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		if !req.Form.Bool("sure") {
			return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "Nothing done."}}}, nil
		}
		return adhoc.Response{Status: adhoc.Completed, Notes: []adhoc.Note{{Text: "Done."}}}, nil
	}
	start := func(ctx context.Context, user jid.JID, req adhoc.Request) (adhoc.Response, error) {
		return adhoc.Response{
			Status:  adhoc.Executing,
			Form:    &adhoc.Form{Type: "form", Fields: []adhoc.Field{{Var: "sure", Type: "boolean", Label: "Are you sure?", Required: true}}},
			Actions: []adhoc.Action{adhoc.Complete},
			Next:    confirm,
		}, nil
	}
	resp, _ := start(context.Background(), jid.MustParse("alice@example.org/phone"), adhoc.Request{Action: adhoc.Execute})
	answer := &adhoc.Form{Type: "submit", Fields: []adhoc.Field{{Var: "sure", Values: []string{"1"}}}}
	done, _ := resp.Next(context.Background(), jid.MustParse("alice@example.org/phone"), adhoc.Request{Action: adhoc.Complete, Form: answer})
	fmt.Println(resp.Status, done.Status, done.Notes[0].Text)
	// Output: executing completed Done.
}

// ParseForm reads a submitted data form.
func ExampleParseForm() {
	f := &adhoc.Form{Type: "submit", Fields: []adhoc.Field{{Var: "confirm", Values: []string{"true"}}}}
	back, err := adhoc.ParseForm(f.TokenReader())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back.Type, back.Bool("confirm"))
	// Output: submit true
}
