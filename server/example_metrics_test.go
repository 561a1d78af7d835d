package server_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
	"github.com/kiez-im/kiez/storage/memory"
)

// Greeter is a module that counts what it does through a counter it
// registers; its handlers would call g.seen.Inc().
type Greeter struct {
	seen *metrics.Counter // nil when metrics are off: counts nothing
}

func (*Greeter) Name() string { return "greeter" }

// RegisterMetrics is called by server.New, before Init.
func (g *Greeter) RegisterMetrics(r *metrics.Registry) {
	g.seen = r.Counter("example_greeter_seen_total", "Messages the greeter saw.")
}

var _ server.MetricsRegistrar = (*Greeter)(nil)

// Metrics: the server and its modules count into a registry the program
// serves (it is an http.Handler: mount it at /metrics on a listener of
// your own) or reads.
func ExampleMetricsRegistrar() {
	reg := metrics.NewRegistry()
	srv, err := server.New(context.Background(), server.Config{
		Domains:  []string{"localhost"},
		Accounts: memory.New(),
		Modules:  []server.Module{&Greeter{}},
		Metrics:  reg,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	for s := range reg.All() {
		if strings.HasPrefix(s.Name, "example_") || strings.HasPrefix(s.Name, "kiez_logins") {
			fmt.Println(s.Name, s.Labels, s.Value)
		}
	}
	// Output:
	// example_greeter_seen_total [] 0
	// kiez_logins_total [{result ok} {mechanism scram}] 0
	// kiez_logins_total [{result failed} {mechanism scram}] 0
	// kiez_logins_total [{result ok} {mechanism plain}] 0
	// kiez_logins_total [{result failed} {mechanism plain}] 0
	// kiez_logins_total [{result ok} {mechanism other}] 0
	// kiez_logins_total [{result failed} {mechanism other}] 0
}
