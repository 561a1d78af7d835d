package server_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// files serves /files/{name} and hands out the URL of a file through its
// Host.
type files struct{ host server.Host }

func (*files) Name() string { return "files" }

func (f *files) Init(ctx context.Context, h server.Host) error {
	f.host = h
	return nil
}

func (f *files) HTTPRoutes() []server.HTTPRoute {
	return []server.HTTPRoute{{Pattern: "GET /files/{name}", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.PathValue("name"))
	})}}
}

// url returns the URL of the file name for clients of domain.
func (f *files) url(domain, name string) string { return f.host.HTTPURL(domain, "/files/"+name) }

var (
	_ server.Initializer  = (*files)(nil)
	_ server.HTTPProvider = (*files)(nil)
)

func newFilesServer(t testing.TB, base func(string) string) *files {
	t.Helper()
	f := &files{}
	srv, err := server.New(t.Context(), server.Config{
		Domains:     []string{"example.org", "example.net"},
		Accounts:    memory.New(),
		Modules:     []server.Module{f},
		HTTPBaseURL: base,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return f
}

func TestHostHTTPURL(t *testing.T) {
	perDomain := func(d string) string {
		if d == "example.net" {
			return "" // not served over HTTP
		}
		return "https://" + d + ":5281"
	}
	for _, tc := range []struct {
		name         string
		base         func(string) string
		domain, path string
		want         string
	}{
		{"no base", nil, "example.org", "/files/a", ""},
		{"per domain", perDomain, "example.org", "/files/a", "https://example.org:5281/files/a"},
		{"domain without", perDomain, "example.net", "/files/a", ""},
		{"proxy", func(string) string { return "https://upload.example.org/" }, "example.net", "/files/a", "https://upload.example.org/files/a"},
		{"prefix", func(string) string { return "https://example.org/xmpp/" }, "example.org", "/files/a%20b", "https://example.org/xmpp/files/a%20b"},
		{"prefix without slash", func(string) string { return "https://example.org/xmpp" }, "example.org", "files/a", "https://example.org/xmpp/files/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilesServer(t, tc.base)
			if got := f.host.HTTPURL(tc.domain, tc.path); got != tc.want {
				t.Errorf("HTTPURL(%q, %q) = %q, want %q", tc.domain, tc.path, got, tc.want)
			}
		})
	}
}

// A module hands out a URL for a file its HTTP route serves; the embedding
// program says where clients reach the server's HTTP handler.
func ExampleHost_HTTPURL() {
	f := &files{}
	srv, err := server.New(context.Background(), server.Config{
		Domains:  []string{"example.org"},
		Accounts: memory.New(),
		Modules:  []server.Module{f},
		HTTPBaseURL: func(domain string) string {
			return "https://" + domain + ":5281/"
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	fmt.Println(f.url("example.org", "cat.jpg"))

	rec := httptest.NewRecorder()
	srv.HTTPHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/files/cat.jpg", nil))
	fmt.Println(rec.Body)
	// Output:
	// https://example.org:5281/files/cat.jpg
	// cat.jpg
}
