package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kiez-im/kiez/storage"
	"github.com/kiez-im/kiez/storage/memory"
)

// An IP filter keeps the addresses it blocks in its namespace, each until
// its ban ends; the server's housekeeping removes the bans that ended.
func ExampleStore_PutServiceValue() {
	ctx := context.Background()
	s := memory.New()
	const ns = "ipfilter"

	ended := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, ban := range []struct {
		addr, reason string
		until        time.Time
	}{
		{"192.0.2.7", "failed logins", ended},
		{"198.51.100.1", "flood", until},
		{"203.0.113.9", "flood", until},
		{"203.0.113.10", "failed logins", until},
	} {
		if err := s.PutServiceValue(ctx, ns, "ban:"+ban.addr, []byte(ban.reason), ban.until); err != nil {
			fmt.Println(err)
			return
		}
	}

	// Page through the bans, two at a time. The one that ended is gone
	// already, before any housekeeping.
	q := storage.ServiceKeysQuery{Prefix: "ban:", Max: 2}
	for {
		keys, err := s.ServiceKeys(ctx, ns, q)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, k := range keys {
			reason, until, err := s.ServiceValue(ctx, ns, k)
			fmt.Println(k, string(reason), until.Format(time.DateOnly), err)
		}
		if len(keys) < q.Max {
			break
		}
		q.After = keys[len(keys)-1]
	}

	// Housekeeping removes what expired.
	n, err := s.ExpireServiceData(ctx, time.Now(), 0)
	fmt.Println("expired:", n, err)
	// Output:
	// ban:198.51.100.1 flood 2100-01-01 <nil>
	// ban:203.0.113.10 failed logins 2100-01-01 <nil>
	// ban:203.0.113.9 flood 2100-01-01 <nil>
	// expired: 1 <nil>
}
