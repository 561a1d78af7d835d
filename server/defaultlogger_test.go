package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/storage/memory"
)

// initLogger logs one line from Init.
type initLogger struct{}

func (initLogger) Name() string { return "initlogger" }

func (initLogger) Init(ctx context.Context, h server.Host) error {
	h.Logger().Warn("hello from init")
	return nil
}

// TestNilLoggerUsesDefault checks that a Config without a Logger logs
// through slog.Default(), through the privacy handler. It changes the
// process's default logger, so it does not run in parallel.
func TestNilLoggerUsesDefault(t *testing.T) {
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	srv, err := server.New(context.Background(), server.Config{
		Domains:  []string{"localhost"},
		Accounts: memory.New(),
		Modules:  []server.Module{initLogger{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	out := buf.String()
	if !strings.Contains(out, "hello from init") || !strings.Contains(out, "module=initlogger") {
		t.Errorf("default logger got %q, want the module's line", out)
	}
}
