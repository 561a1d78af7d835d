package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiez-im/kiez/storage"
)

// TestServiceData checks an implementation of storage.ServiceData.
// newStore must return a fresh, empty store each time it is called; it may
// use t to register cleanup. Every subtest gets its own store. Expiry is
// tested with explicit times: entries that expired long ago, entries that
// expire long after the test, and sweeps at given times.
func TestServiceData(t *testing.T, newStore func(t *testing.T) storage.ServiceData) {
	tests := []struct {
		name string
		test func(t *testing.T, s storage.ServiceData)
	}{
		{"RoundTrip", testServiceRoundTrip},
		{"Copies", testServiceCopies},
		{"NotFound", testServiceNotFound},
		{"Overwrite", testServiceOverwrite},
		{"Delete", testServiceDelete},
		{"ExpiredHidden", testServiceExpiredHidden},
		{"Expire", testServiceExpire},
		{"ExpireReplaced", testServiceExpireReplaced},
		{"ExpireLimit", testServiceExpireLimit},
		{"KeysPrefix", testServiceKeysPrefix},
		{"KeysPaging", testServiceKeysPaging},
		{"DeleteNamespace", testServiceDeleteNamespace},
		{"Isolated", testServiceIsolated},
		{"Invalid", testServiceInvalid},
		{"Concurrent", testServiceConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, newStore(t))
		})
	}
}

// Times of the service data tests: entries that expired long ago, and
// expiries long after any run of the tests.
var (
	svcPast   = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	svcFuture = time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)
)

const (
	svcNS    = "muc:conference.example.org"
	svcOther = "ipfilter"
)

func mustPutService(t *testing.T, s storage.ServiceData, ns, key string, value []byte, expires time.Time) {
	t.Helper()
	if err := s.PutServiceValue(t.Context(), ns, key, value, expires); err != nil {
		t.Fatalf("PutServiceValue(%q, %q): %v", ns, key, err)
	}
}

// checkService fails unless key in ns holds want, expiring at expires.
func checkService(t *testing.T, s storage.ServiceData, ns, key string, want []byte, expires time.Time) {
	t.Helper()
	got, exp, err := s.ServiceValue(t.Context(), ns, key)
	if err != nil {
		t.Errorf("ServiceValue(%q, %q): %v", ns, key, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("ServiceValue(%q, %q) = %s, want %s", ns, key, abbrev(got), abbrev(want))
	}
	if !exp.Equal(expires) || exp.IsZero() != expires.IsZero() {
		t.Errorf("ServiceValue(%q, %q) expires %v, want %v", ns, key, exp, expires)
	}
}

// checkServiceGone fails unless key in ns is absent.
func checkServiceGone(t *testing.T, s storage.ServiceData, ns, key string) {
	t.Helper()
	if v, _, err := s.ServiceValue(t.Context(), ns, key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ServiceValue(%q, %q) = %s, %v; want ErrNotFound", ns, key, abbrev(v), err)
	}
}

// serviceKeys returns the keys of ns that q selects.
func serviceKeys(t *testing.T, s storage.ServiceData, ns string, q storage.ServiceKeysQuery) []string {
	t.Helper()
	keys, err := s.ServiceKeys(t.Context(), ns, q)
	if err != nil {
		t.Fatalf("ServiceKeys(%q, %+v): %v", ns, q, err)
	}
	return keys
}

// checkServiceKeys fails unless ns holds exactly want (sorted; nil for
// none), read in one page.
func checkServiceKeys(t *testing.T, s storage.ServiceData, ns string, want []string) {
	t.Helper()
	if got := serviceKeys(t, s, ns, storage.ServiceKeysQuery{Max: 1 << 20}); !slices.Equal(got, want) {
		t.Errorf("ServiceKeys(%q) = %q, want %q", ns, got, want)
	}
}

func mustExpireService(t *testing.T, s storage.ServiceData, at time.Time, want int) {
	t.Helper()
	n, err := s.ExpireServiceData(t.Context(), at, 0)
	if err != nil {
		t.Fatalf("ExpireServiceData(%v): %v", at, err)
	}
	if n != want {
		t.Errorf("ExpireServiceData(%v) = %d, want %d", at, n, want)
	}
}

func testServiceRoundTrip(t *testing.T, s storage.ServiceData) {
	values := map[string][]byte{
		"room@conference.example.org": []byte(`<room name="Room"/>`),
		"binary":                      {0, 1, 2, 0xff, 0, 0xfe},
		"empty":                       {},
		"big":                         big(300 << 10),
		"ключ with spaces/and:colons": []byte("ünïcode"),
		"\x00\xff":                    []byte("odd bytes in the key"),
	}
	for k, v := range values {
		mustPutService(t, s, svcNS, k, v, time.Time{})
	}
	for k, v := range values {
		checkService(t, s, svcNS, k, v, time.Time{})
	}
	// A nil value is stored as an empty one.
	mustPutService(t, s, svcNS, "nil", nil, time.Time{})
	checkService(t, s, svcNS, "nil", nil, time.Time{})

	// An expiry comes back as the same instant, to the microsecond.
	for i, exp := range []time.Time{
		svcFuture,
		svcFuture.Add(123456789 * time.Nanosecond),
		svcFuture.In(time.FixedZone("UTC+5", 5*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		key := fmt.Sprintf("expiring-%d", i)
		mustPutService(t, s, svcNS, key, []byte(key), exp)
		checkService(t, s, svcNS, key, []byte(key), exp.Truncate(time.Microsecond))
	}
}

func testServiceCopies(t *testing.T, s storage.ServiceData) {
	in := []byte("original")
	mustPutService(t, s, svcNS, "k", in, svcFuture)
	copy(in, "SCRIBBLE")
	checkService(t, s, svcNS, "k", []byte("original"), svcFuture)

	out, _, err := s.ServiceValue(t.Context(), svcNS, "k")
	if err != nil {
		t.Fatalf("ServiceValue: %v", err)
	}
	copy(out, "SCRIBBLE")
	_ = append(out[:2], "appended past the end"...)
	checkService(t, s, svcNS, "k", []byte("original"), svcFuture)
}

func testServiceNotFound(t *testing.T, s storage.ServiceData) {
	ctx := t.Context()
	mustPutService(t, s, svcNS, "room", []byte("v"), time.Time{})
	for _, tt := range []struct{ ns, key string }{
		{svcNS, "other"},
		{svcNS, "roo"},
		{svcNS, "room2"},
		{svcNS, ""},
		{svcOther, "room"},
		{svcNS + "x", "room"},
		{"muc:conference.example.or", "room"},
	} {
		checkServiceGone(t, s, tt.ns, tt.key)
		if err := s.DeleteServiceValue(ctx, tt.ns, tt.key); err != nil {
			t.Errorf("DeleteServiceValue(%q, %q) of an absent key = %v, want nil", tt.ns, tt.key, err)
		}
	}
	for _, ns := range []string{svcOther, "muc:"} {
		checkServiceKeys(t, s, ns, nil)
		if err := s.DeleteServiceNamespace(ctx, ns); err != nil {
			t.Errorf("DeleteServiceNamespace(%q) of an empty namespace = %v, want nil", ns, err)
		}
	}
	mustExpireService(t, s, svcFuture, 0)
	// None of that may have removed or created anything.
	checkServiceKeys(t, s, svcNS, []string{"room"})
	checkService(t, s, svcNS, "room", []byte("v"), time.Time{})
	checkServiceKeys(t, s, svcOther, nil)
}

func testServiceOverwrite(t *testing.T, s storage.ServiceData) {
	mustPutService(t, s, svcNS, "k", big(10<<10), time.Time{})
	mustPutService(t, s, svcNS, "k", []byte("short"), svcFuture)
	checkService(t, s, svcNS, "k", []byte("short"), svcFuture)
	mustPutService(t, s, svcNS, "k", big(20<<10), svcFuture.Add(time.Hour))
	checkService(t, s, svcNS, "k", big(20<<10), svcFuture.Add(time.Hour))
	mustPutService(t, s, svcNS, "k", []byte{}, time.Time{})
	checkService(t, s, svcNS, "k", []byte{}, time.Time{})
	// An entry that expired comes back when put again.
	mustPutService(t, s, svcNS, "k", []byte("old"), svcPast)
	checkServiceGone(t, s, svcNS, "k")
	mustPutService(t, s, svcNS, "k", []byte("new"), svcFuture)
	checkService(t, s, svcNS, "k", []byte("new"), svcFuture)
	checkServiceKeys(t, s, svcNS, []string{"k"})
}

func testServiceDelete(t *testing.T, s storage.ServiceData) {
	ctx := t.Context()
	for _, k := range []string{"a", "b", "c"} {
		mustPutService(t, s, svcNS, k, []byte("value of "+k), svcFuture)
	}
	mustPutService(t, s, svcOther, "b", []byte("other b"), svcFuture)
	if err := s.DeleteServiceValue(ctx, svcNS, "b"); err != nil {
		t.Fatalf("DeleteServiceValue: %v", err)
	}
	checkServiceGone(t, s, svcNS, "b")
	checkServiceKeys(t, s, svcNS, []string{"a", "c"})
	checkService(t, s, svcOther, "b", []byte("other b"), svcFuture)
	if err := s.DeleteServiceValue(ctx, svcNS, "b"); err != nil {
		t.Errorf("second DeleteServiceValue = %v, want nil", err)
	}
	// A deleted entry is not expired again, whatever its expiry was.
	mustExpireService(t, s, svcFuture, 3)

	// A namespace whose entries were all deleted is empty and usable.
	mustPutService(t, s, svcNS, "d", []byte("d"), time.Time{})
	if err := s.DeleteServiceValue(ctx, svcNS, "d"); err != nil {
		t.Fatalf("DeleteServiceValue: %v", err)
	}
	checkServiceKeys(t, s, svcNS, nil)
	mustPutService(t, s, svcNS, "e", []byte("e"), time.Time{})
	checkServiceKeys(t, s, svcNS, []string{"e"})
}

// Entries past their expiry are gone for reads before any sweep, and the
// sweep then counts them.
func testServiceExpiredHidden(t *testing.T, s storage.ServiceData) {
	mustPutService(t, s, svcNS, "a-kept", []byte("kept"), time.Time{})
	mustPutService(t, s, svcNS, "b-expired", []byte("expired"), svcPast)
	mustPutService(t, s, svcNS, "c-later", []byte("later"), svcFuture)
	mustPutService(t, s, svcNS, "d-expired", []byte("expired"), time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC))
	mustPutService(t, s, svcOther, "expired", []byte("expired"), svcPast)

	checkServiceGone(t, s, svcNS, "b-expired")
	checkServiceGone(t, s, svcNS, "d-expired")
	checkServiceGone(t, s, svcOther, "expired")
	checkServiceKeys(t, s, svcNS, []string{"a-kept", "c-later"})
	checkServiceKeys(t, s, svcOther, nil)
	// A page is filled past expired keys.
	if got := serviceKeys(t, s, svcNS, storage.ServiceKeysQuery{After: "a-kept", Max: 1}); !slices.Equal(got, []string{"c-later"}) {
		t.Errorf("page after a-kept = %q, want [c-later]", got)
	}

	mustExpireService(t, s, time.Now(), 3)
	mustExpireService(t, s, time.Now(), 0)
	checkServiceKeys(t, s, svcNS, []string{"a-kept", "c-later"})
	checkService(t, s, svcNS, "c-later", []byte("later"), svcFuture)
}

func testServiceExpire(t *testing.T, s storage.ServiceData) {
	// Entries expiring each minute from svcFuture on, in two namespaces,
	// put out of order.
	const n = 60
	for _, i := range shuffled(n) {
		exp := svcFuture.Add(time.Duration(i) * time.Minute)
		mustPutService(t, s, svcNS, fmt.Sprintf("ban-%02d", i), []byte("ban"), exp)
		mustPutService(t, s, svcOther, fmt.Sprintf("ip-%02d", i), []byte("ip"), exp)
	}
	mustPutService(t, s, svcNS, "forever", []byte("forever"), time.Time{})

	// Nothing expires before the first expiry; an entry expires at its
	// expiry, not a microsecond earlier.
	mustExpireService(t, s, svcPast, 0)
	mustExpireService(t, s, svcFuture.Add(-time.Microsecond), 0)
	mustExpireService(t, s, svcFuture, 2)
	checkServiceGone(t, s, svcNS, "ban-00")
	checkServiceGone(t, s, svcOther, "ip-00")
	checkService(t, s, svcNS, "ban-01", []byte("ban"), svcFuture.Add(time.Minute))

	// Up to minute 9 and a half: minutes 1 to 9 in both namespaces.
	mustExpireService(t, s, svcFuture.Add(9*time.Minute+30*time.Second), 18)
	keys := serviceKeys(t, s, svcNS, storage.ServiceKeysQuery{Max: 1000})
	if len(keys) != n-10+1 || keys[0] != "ban-10" || keys[len(keys)-1] != "forever" {
		t.Errorf("after expiry to minute 9: keys %q", keys)
	}
	// The rest, and twice.
	mustExpireService(t, s, svcFuture.Add(time.Duration(n)*time.Minute), 2*(n-10))
	mustExpireService(t, s, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), 0)
	checkServiceKeys(t, s, svcNS, []string{"forever"})
	checkServiceKeys(t, s, svcOther, nil)
	checkService(t, s, svcNS, "forever", []byte("forever"), time.Time{})
}

// shuffled returns 0 to n-1 in an order that is neither ascending nor
// descending.
func shuffled(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*37 + 11) % n
	}
	return out
}

// An entry put again with another expiry, or none, expires by the new one.
// testServiceExpireLimit checks ExpireServiceData's limit: a call
// removes at most limit entries, removing
// limit reports that more may be left, and repeated calls finish the job;
// entries without an expiry or expiring later stay.
func testServiceExpireLimit(t *testing.T, s storage.ServiceData) {
	ctx := t.Context()
	for i := range 10 {
		ns := svcNS
		if i%2 == 1 {
			ns = svcOther
		}
		mustPutService(t, s, ns, fmt.Sprintf("k%02d", i), []byte("v"), svcPast.Add(time.Duration(i)*time.Hour))
	}
	mustPutService(t, s, svcNS, "forever", []byte("v"), time.Time{})
	mustPutService(t, s, svcNS, "later", []byte("v"), svcFuture)
	n, err := s.ExpireServiceData(ctx, svcPast.Add(24*time.Hour), 3)
	if err != nil || n != 3 {
		t.Fatalf("ExpireServiceData(limit 3) = %d, %v; want 3", n, err)
	}
	total, calls := n, 1
	for storage.Limited(n, 3) {
		if calls > 10 {
			t.Fatalf("ExpireServiceData(limit 3) still reports more after %d calls", calls)
		}
		if n, err = s.ExpireServiceData(ctx, svcPast.Add(24*time.Hour), 3); err != nil || n > 3 {
			t.Fatalf("ExpireServiceData(limit 3) = %d, %v", n, err)
		}
		total += n
		calls++
	}
	if total != 10 || calls < 4 {
		t.Errorf("ExpireServiceData(limit 3) removed %d in %d calls; want 10 in at least 4", total, calls)
	}
	checkServiceKeys(t, s, svcNS, []string{"forever", "later"})
	checkServiceKeys(t, s, svcOther, nil)
	mustExpireService(t, s, svcFuture.Add(-time.Hour), 0)
}

func testServiceExpireReplaced(t *testing.T, s storage.ServiceData) {
	mustPutService(t, s, svcNS, "later", []byte("1"), svcFuture)
	mustPutService(t, s, svcNS, "later", []byte("2"), svcFuture.Add(time.Hour))
	mustPutService(t, s, svcNS, "never", []byte("1"), svcFuture)
	mustPutService(t, s, svcNS, "never", []byte("2"), time.Time{})
	mustPutService(t, s, svcNS, "sooner", []byte("1"), svcFuture.Add(2*time.Hour))
	mustPutService(t, s, svcNS, "sooner", []byte("2"), svcFuture)

	mustExpireService(t, s, svcFuture, 1)
	checkServiceGone(t, s, svcNS, "sooner")
	checkService(t, s, svcNS, "later", []byte("2"), svcFuture.Add(time.Hour))
	mustExpireService(t, s, svcFuture.Add(3*time.Hour), 1)
	checkServiceKeys(t, s, svcNS, []string{"never"})
}

func testServiceKeysPrefix(t *testing.T, s storage.ServiceData) {
	keys := []string{
		"ban:10.0.0.1", "ban:10.0.0.2", "ban:", "ban;", "ba", "ban", "bans",
		"invite:abc", "invite:abd", "room:x", "Ban:upper", "bän:",
	}
	for _, k := range keys {
		mustPutService(t, s, svcNS, k, []byte(k), time.Time{})
	}
	mustPutService(t, s, svcNS, "ban:expired", nil, svcPast)
	mustPutService(t, s, svcOther, "ban:other-namespace", nil, time.Time{})
	for _, tt := range []struct {
		prefix, after string
		max           int
		want          []string
	}{
		{"ban:", "", 10, []string{"ban:", "ban:10.0.0.1", "ban:10.0.0.2"}},
		{"ban:", "", 2, []string{"ban:", "ban:10.0.0.1"}},
		{"ban:", "ban:", 10, []string{"ban:10.0.0.1", "ban:10.0.0.2"}},
		{"ban:", "ban:10.0.0.1", 10, []string{"ban:10.0.0.2"}},
		{"ban:", "ban:10.0.0.2", 10, nil},
		{"ban:", "ban:10", 10, []string{"ban:10.0.0.1", "ban:10.0.0.2"}}, // After need not be a key
		{"ban:", "a", 10, []string{"ban:", "ban:10.0.0.1", "ban:10.0.0.2"}},
		{"ban:", "c", 10, nil},
		{"ban", "", 10, []string{"ban", "ban:", "ban:10.0.0.1", "ban:10.0.0.2", "ban;", "bans"}},
		{"invite:", "", 10, []string{"invite:abc", "invite:abd"}},
		{"invite:abc", "", 10, []string{"invite:abc"}},
		{"nothing", "", 10, nil},
		{"", "invite:abd", 10, []string{"room:x"}},
		{"", "room:x", 10, nil},
		{"", "", 3, []string{"Ban:upper", "ba", "ban"}},
		{"b", "bans", 10, []string{"bän:"}},
	} {
		q := storage.ServiceKeysQuery{Prefix: tt.prefix, After: tt.after, Max: tt.max}
		if got := serviceKeys(t, s, svcNS, q); !slices.Equal(got, tt.want) {
			t.Errorf("ServiceKeys(%+v) = %q, want %q", q, got, tt.want)
		}
	}
}

func testServiceKeysPaging(t *testing.T, s storage.ServiceData) {
	var want []string
	for i := range 250 {
		k := fmt.Sprintf("room-%03d@conference.example.org", (i*101)%250)
		exp := time.Time{}
		if i%10 == 3 {
			exp = svcPast // expired: skipped, and pages are still full
		} else {
			want = append(want, k)
		}
		mustPutService(t, s, svcNS, k, []byte(k), exp)
	}
	slices.Sort(want)
	for _, size := range []int{1, 7, 100, len(want), 1000} {
		var got []string
		q := storage.ServiceKeysQuery{Prefix: "room-", Max: size}
		for pages := 0; ; pages++ {
			if pages > len(want)+1 {
				t.Fatalf("Max %d: paging does not end", size)
			}
			page := serviceKeys(t, s, svcNS, q)
			if len(page) > size {
				t.Fatalf("Max %d: a page of %d keys", size, len(page))
			}
			got = append(got, page...)
			if len(page) < size {
				break
			}
			q.After = page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("Max %d: paged through %d keys, want %d (%q... vs %q...)", size, len(got), len(want), got[:min(3, len(got))], want[:3])
		}
	}
}

func testServiceDeleteNamespace(t *testing.T, s storage.ServiceData) {
	ctx := t.Context()
	const gone = "muc:gone.example.org"
	// Namespaces whose names share a prefix or suffix with the deleted one.
	others := []string{"muc:gone.example.org.evil", "muc:gone.example.or", "xmuc:gone.example.org", svcOther}
	for _, ns := range append([]string{gone}, others...) {
		mustPutService(t, s, ns, "forever", []byte("forever of "+ns), time.Time{})
		mustPutService(t, s, ns, "expiring", []byte("expiring of "+ns), svcFuture)
		mustPutService(t, s, ns, "expired", []byte("expired of "+ns), svcPast)
	}
	if err := s.DeleteServiceNamespace(ctx, gone); err != nil {
		t.Fatalf("DeleteServiceNamespace: %v", err)
	}
	checkServiceKeys(t, s, gone, nil)
	for _, k := range []string{"forever", "expiring", "expired"} {
		checkServiceGone(t, s, gone, k)
	}
	for _, ns := range others {
		checkServiceKeys(t, s, ns, []string{"expiring", "forever"})
		checkService(t, s, ns, "expiring", []byte("expiring of "+ns), svcFuture)
	}
	if err := s.DeleteServiceNamespace(ctx, gone); err != nil {
		t.Errorf("second DeleteServiceNamespace = %v, want nil", err)
	}
	// The deleted namespace's entries are not expired again; the others'
	// expiring and expired ones are.
	mustExpireService(t, s, svcFuture, 2*len(others))
	// A namespace of the same name starts clean.
	mustPutService(t, s, gone, "new", []byte("n"), svcFuture)
	checkServiceKeys(t, s, gone, []string{"new"})

	// A larger namespace goes at once too.
	const large = 300
	for i := range large {
		exp := time.Time{}
		if i%2 == 0 {
			exp = svcFuture.Add(time.Duration(i) * time.Second)
		}
		mustPutService(t, s, "large", fmt.Sprintf("k%05d", i), []byte("v"), exp)
	}
	if err := s.DeleteServiceNamespace(ctx, "large"); err != nil {
		t.Fatalf("DeleteServiceNamespace(large): %v", err)
	}
	checkServiceKeys(t, s, "large", nil)
	mustExpireService(t, s, svcFuture.Add(time.Duration(large)*time.Second), 1)
}

// Namespaces are separate from each other and, in a backend that also has
// them, from users' key-value data and from user data deletion.
func testServiceIsolated(t *testing.T, s storage.ServiceData) {
	ctx := t.Context()
	for _, ns := range []string{"a", "ab", "a:b", "b"} {
		mustPutService(t, s, ns, "key", []byte("in "+ns), time.Time{})
		mustPutService(t, s, ns, ns, []byte("own key of "+ns), time.Time{})
	}
	for _, ns := range []string{"a", "ab", "a:b", "b"} {
		checkService(t, s, ns, "key", []byte("in "+ns), time.Time{})
		want := []string{"key", ns}
		slices.Sort(want)
		checkServiceKeys(t, s, ns, want)
	}
	const jid = "alice@example.org"
	mustPutService(t, s, jid, "vcard", []byte("service data"), time.Time{})
	if kv, ok := s.(storage.KV); ok {
		if err := kv.Put(ctx, jid, "vcard", []byte("user data")); err != nil {
			t.Fatalf("KV Put: %v", err)
		}
		if err := kv.Put(ctx, jid, "other", []byte("user data")); err != nil {
			t.Fatalf("KV Put: %v", err)
		}
		checkServiceKeys(t, s, jid, []string{"vcard"})
		if err := kv.DeleteUser(ctx, jid); err != nil {
			t.Fatalf("KV DeleteUser: %v", err)
		}
	}
	if u, ok := s.(storage.UserDataDeleter); ok {
		if err := u.DeleteUserData(ctx, jid); err != nil {
			t.Fatalf("DeleteUserData: %v", err)
		}
	}
	checkService(t, s, jid, "vcard", []byte("service data"), time.Time{})
}

func testServiceInvalid(t *testing.T, s storage.ServiceData) {
	ctx := t.Context()
	if err := s.PutServiceValue(ctx, "", "k", []byte("v"), time.Time{}); err == nil {
		t.Error("PutServiceValue with an empty namespace succeeded")
	}
	if err := s.PutServiceValue(ctx, svcNS, "", []byte("v"), time.Time{}); err == nil {
		t.Error("PutServiceValue with an empty key succeeded")
	}
	for _, exp := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if err := s.PutServiceValue(ctx, svcNS, "k", []byte("v"), exp); err == nil {
			t.Errorf("PutServiceValue with expiry %v succeeded", exp)
		}
	}
	checkServiceKeys(t, s, svcNS, nil)

	if _, _, err := s.ServiceValue(ctx, "", "k"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ServiceValue with an empty namespace = %v, want an error other than ErrNotFound", err)
	}
	if err := s.DeleteServiceValue(ctx, "", "k"); err == nil {
		t.Error("DeleteServiceValue with an empty namespace succeeded")
	}
	if _, err := s.ServiceKeys(ctx, "", storage.ServiceKeysQuery{Max: 1}); err == nil {
		t.Error("ServiceKeys with an empty namespace succeeded")
	}
	if err := s.DeleteServiceNamespace(ctx, ""); err == nil {
		t.Error("DeleteServiceNamespace with an empty namespace succeeded")
	}
	mustPutService(t, s, svcNS, "k", []byte("v"), time.Time{})
	for _, max := range []int{0, -1} {
		if keys, err := s.ServiceKeys(ctx, svcNS, storage.ServiceKeysQuery{Max: max}); err == nil {
			t.Errorf("ServiceKeys with Max %d = %q, want an error", max, keys)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.PutServiceValue(cancelled, svcNS, "k2", []byte("v"), time.Time{}); err == nil {
		t.Error("PutServiceValue with a cancelled context succeeded")
	}
	if _, _, err := s.ServiceValue(cancelled, svcNS, "k"); err == nil {
		t.Error("ServiceValue with a cancelled context succeeded")
	}
	if err := s.DeleteServiceNamespace(cancelled, svcNS); err == nil {
		t.Error("DeleteServiceNamespace with a cancelled context succeeded")
	}
	checkServiceKeys(t, s, svcNS, []string{"k"})
}

func testServiceConcurrent(t *testing.T, s storage.ServiceData) {
	ctx := t.Context()
	const (
		workers = 8
		rounds  = 20
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			if err := serviceWorker(ctx, s, w, rounds); err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		})
	}
	// A sweep runs meanwhile; it may remove only expired entries.
	wg.Go(func() {
		for range rounds {
			if _, err := s.ExpireServiceData(ctx, time.Now(), 0); err != nil {
				t.Errorf("ExpireServiceData: %v", err)
				return
			}
		}
	})
	wg.Wait()

	var shared []string
	for w := range workers {
		ns := fmt.Sprintf("ns-%d", w)
		checkServiceKeys(t, s, ns, []string{"kept"})
		checkService(t, s, ns, "kept", fmt.Appendf(nil, "%d", rounds-1), svcFuture)
		checkServiceKeys(t, s, ns+"-tmp", nil)
		shared = append(shared, fmt.Sprintf("w%d", w))
	}
	slices.Sort(shared)
	checkServiceKeys(t, s, "shared", shared)
	mustExpireService(t, s, time.Now(), 0)
}

// serviceWorker mixes every method on namespaces of its own and writes its
// own key of a namespace shared by all workers.
func serviceWorker(ctx context.Context, s storage.ServiceData, w, rounds int) error {
	ns := fmt.Sprintf("ns-%d", w)
	tmp := ns + "-tmp"
	mine := fmt.Sprintf("w%d", w)
	for r := range rounds {
		v := fmt.Appendf(nil, "%d", r)
		for _, err := range []error{
			s.PutServiceValue(ctx, ns, "kept", v, svcFuture),
			s.PutServiceValue(ctx, ns, "tmp", v, time.Time{}),
			s.PutServiceValue(ctx, ns, "expired", v, svcPast),
			s.PutServiceValue(ctx, tmp, "a", v, svcFuture),
			s.PutServiceValue(ctx, tmp, "b", v, time.Time{}),
			s.PutServiceValue(ctx, "shared", mine, v, svcFuture),
		} {
			if err != nil {
				return err
			}
		}
		got, _, err := s.ServiceValue(ctx, "shared", mine)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, v) {
			return fmt.Errorf("shared key = %q, want %q", got, v)
		}
		keys, err := s.ServiceKeys(ctx, "shared", storage.ServiceKeysQuery{Prefix: "w", Max: 100})
		if err != nil {
			return err
		}
		if !slices.Contains(keys, mine) || slices.ContainsFunc(keys, func(k string) bool { return !strings.HasPrefix(k, "w") }) {
			return fmt.Errorf("shared keys %q", keys)
		}
		if err := s.DeleteServiceValue(ctx, ns, "tmp"); err != nil {
			return err
		}
		if err := s.DeleteServiceValue(ctx, ns, "expired"); err != nil {
			return err
		}
		if err := s.DeleteServiceNamespace(ctx, tmp); err != nil {
			return err
		}
	}
	return nil
}
