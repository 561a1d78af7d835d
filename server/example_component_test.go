package server_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"regexp"
	"strings"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// An external component (XEP-0114), such as a bridge, attaches to the
// server as bridge.localhost on a loopback listener: the server answers
// its stream header, checks the handshake and confirms it; from then on
// the stanzas to bridge.localhost and to addresses at it go to the
// component.
func ExampleServer_ServeComponents() {
	ctx := context.Background()
	srv, err := server.New(ctx, server.Config{
		Domains:    []string{"localhost"},
		Accounts:   memory.New(),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Components: []server.Component{{Domain: "bridge.localhost", Secret: "a secret", Name: "Bridge"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// Loopback only: the component protocol has no encryption.
	ln, err := server.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.ServeComponents(ln)

	// The component's side.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprint(c, `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='bridge.localhost'>`)
	header, err := r.ReadString('>') // the XML declaration
	if err == nil {
		header, err = r.ReadString('>') // the stream header
	}
	if err != nil {
		log.Fatal(err)
	}
	id := regexp.MustCompile(`id='([^']+)'`).FindStringSubmatch(header)[1]
	sum := sha1.Sum([]byte(id + "a secret"))
	fmt.Fprintf(c, "<handshake>%s</handshake>", hex.EncodeToString(sum[:]))
	answer, err := r.ReadString('>')
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Contains(header, "from='bridge.localhost'"), answer)
	// Output:
	// true <handshake/>
}
