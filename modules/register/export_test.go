package register

import (
	"context"
	"net/netip"

	"github.com/kiez-im/kiez/stanza"
)

// SetAddrOf replaces where the module learns the registering client's
// address, for tests of Deps.RateLimit until the server tells it.
func SetAddrOf(m *Module, f func(ctx context.Context, iq stanza.IQ) (netip.Addr, bool)) { m.addrOf = f }
