package main

// Decoding the configuration key by key: the toml package stops at the
// first value of the wrong type and names Go types ("cannot load TOML
// value of type string into a Go slice"). kiezd parses the file with it
// into plain values, then fills the config itself, so that every mistake
// is found in one run, at its key's line, in words an admin reads.

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// configErrors are all the errors in a configuration file, in the order
// of their lines. It unwraps to each *configError.
type configErrors []*configError

func (es configErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es configErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error: nil if empty, the only one, or all of them,
// sorted by line.
func (es configErrors) err() error {
	switch len(es) {
	case 0:
		return nil
	case 1:
		return es[0]
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	return es
}

// place is where a value sits in the file: its key and, inside an array
// of tables such as [[tls.certificates]], the entry's index.
type place struct {
	key   toml.Key
	table int // length of the key of the array of tables; 0 if none
	entry int
}

func (p place) child(k string) place {
	p.key = append(append(toml.Key(nil), p.key...), k)
	return p
}

// line finds the place's line in data: the key's own, within its entry
// of an array of tables.
func (p place) line(data []byte) int {
	if p.table == 0 {
		return keyLine(data, p.key)
	}
	return entryLine(data, p.key[:p.table], p.entry, p.key[p.table:])
}

// entryLine finds key rest in entry number entry of the array of tables
// named table: the entry's header, then the key below it. It returns the
// header's line if the key is not there, and 0 if the entry is not.
func entryLine(data []byte, table toml.Key, entry int, rest toml.Key) int {
	n, header := -1, 0
	for i, line := range strings.Split(string(data), "\n") {
		s := strings.TrimSpace(stripComment(line))
		if strings.HasPrefix(s, "[") {
			if header > 0 {
				return header // the entry ended without the key
			}
			if strings.HasPrefix(s, "[[") && slicesEqual(splitKey(strings.Trim(s, "[]")), table) {
				n++
				if n == entry {
					header = i + 1
					if len(rest) == 0 {
						return header
					}
				}
			}
			continue
		}
		if header == 0 {
			continue
		}
		if lhs, _, ok := strings.Cut(s, "="); ok && keyHasPrefix(splitKey(lhs), rest) {
			return i + 1
		}
	}
	if header == 0 {
		return keyLine(data, append(append(toml.Key(nil), table...), rest...)) // an inline array
	}
	return header
}

func slicesEqual(a []string, b toml.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// decoder fills a config from the values the toml package parsed,
// collecting an error for each key it cannot take.
type decoder struct {
	file string
	data []byte
	errs configErrors
}

func (d *decoder) fail(p place, format string, args ...any) {
	d.errs = append(d.errs, &configError{File: d.file, Line: p.line(d.data), Msg: p.key.String() + ": " + fmt.Sprintf(format, args...)})
}

// decodeConfig parses data and decodes it over cfg. A syntax error ends
// parsing, so it is returned alone as err; otherwise every key of a wrong
// type or value, or unknown, gives its error in errs, and the others are
// decoded.
func decodeConfig(file string, data []byte, cfg *config) (errs configErrors, err error) {
	var raw map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		return nil, tomlError(file, data, err)
	}
	d := &decoder{file: file, data: data}
	d.table(reflect.ValueOf(cfg).Elem(), raw, place{})
	return d.errs, nil
}

// table decodes the table m into the struct rv.
func (d *decoder) table(rv reflect.Value, m map[string]any, p place) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := field(rv, k)
		if !ok {
			c := p.child(k)
			d.errs = append(d.errs, &configError{File: d.file, Line: c.line(d.data), Msg: fmt.Sprintf("unknown key %q", c.key.String())})
			continue
		}
		d.value(f, m[k], p.child(k))
	}
}

// field finds the struct field tagged k, or tagged so in another case,
// as the toml package does.
func field(rv reflect.Value, k string) (reflect.Value, bool) {
	t := rv.Type()
	fold := -1
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		if tag == k {
			return rv.Field(i), true
		}
		if fold < 0 && strings.EqualFold(tag, k) {
			fold = i
		}
	}
	if fold >= 0 {
		return rv.Field(fold), true
	}
	return reflect.Value{}, false
}

var unmarshalerType = reflect.TypeFor[toml.Unmarshaler]()

// value decodes v into rv, leaving rv as it was if v does not fit.
func (d *decoder) value(rv reflect.Value, v any, p place) {
	if reflect.PointerTo(rv.Type()).Implements(unmarshalerType) {
		tmp := reflect.New(rv.Type())
		if err := tmp.Interface().(toml.Unmarshaler).UnmarshalTOML(v); err != nil {
			d.fail(p, "%v", err)
			return
		}
		rv.Set(tmp.Elem())
		return
	}
	switch rv.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.fail(p, "must be text in quotes, e.g. %s, not %s", example(p, `"…"`), describe(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.fail(p, "must be true or false, not %s", describe(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			d.fail(p, "must be a whole number, e.g. %s, not %s", example(p, "10"), describe(v))
			return
		}
		rv.SetInt(n)
	case reflect.Slice:
		d.slice(rv, v, p)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			d.fail(p, "must be a table, e.g. [%s] with keys below it, not %s", p.key, describe(v))
			return
		}
		out := reflect.MakeMapWithSize(rv.Type(), len(m))
		for k, ev := range m {
			e := reflect.New(rv.Type().Elem()).Elem()
			before := len(d.errs)
			d.value(e, ev, p.child(k))
			if len(d.errs) == before {
				out.SetMapIndex(reflect.ValueOf(k), e)
			}
		}
		rv.Set(out)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.fail(p, "must be a table: a line [%s] with its keys below it, not %s", p.key, describe(v))
			return
		}
		d.table(rv, m, p)
	default:
		d.other(rv, v, p)
	}
}

// other decodes the kinds kiezd's own keys do not use (yet) through the
// toml package, so that a new key of such a type still works.
func (d *decoder) other(rv reflect.Value, v any, p place) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"v": v}); err != nil {
		d.fail(p, "%s", strings.TrimPrefix(err.Error(), "toml: "))
		return
	}
	holder := reflect.New(reflect.StructOf([]reflect.StructField{{Name: "V", Type: rv.Type(), Tag: `toml:"v"`}}))
	if _, err := toml.Decode(buf.String(), holder.Interface()); err != nil {
		d.fail(p, "must not be %s", describe(v))
		return
	}
	rv.Set(holder.Elem().Field(0))
}

// slice decodes a list of values, or an array of tables.
func (d *decoder) slice(rv reflect.Value, v any, p place) {
	if rv.Type().Elem().Kind() == reflect.Struct {
		entries, ok := v.([]map[string]any)
		if list, isList := v.([]any); isList {
			// An inline array of tables: [{cert = "a", key = "b"}].
			entries, ok = make([]map[string]any, 0, len(list)), true
			for _, e := range list {
				m, isMap := e.(map[string]any)
				ok = ok && isMap
				entries = append(entries, m)
			}
		}
		if !ok {
			d.fail(p, "must be one or more tables, each starting with a line [[%s]], not %s", p.key, describe(v))
			return
		}
		out := reflect.MakeSlice(rv.Type(), len(entries), len(entries))
		for i, m := range entries {
			ep := p
			ep.table, ep.entry = len(p.key), i
			d.table(out.Index(i), m, ep)
		}
		rv.Set(out)
		return
	}
	if rv.Type().Elem().Kind() != reflect.String {
		d.other(rv, v, p)
		return
	}
	list, ok := v.([]any)
	if !ok {
		d.fail(p, "must be a list, e.g. %s, not %s", example(p, `["…"]`), describe(v))
		return
	}
	out := reflect.MakeSlice(rv.Type(), len(list), len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			d.fail(p, "must be a list of strings in quotes, e.g. %s; item %d is %s", example(p, `["…"]`), i+1, describe(e))
			return
		}
		out.Index(i).SetString(s)
	}
	rv.Set(out)
}

// examples are the values shown when a key has the wrong type.
var examples = map[string]string{
	"domains":                         `["example.org"]`,
	"data_dir":                        `"/var/lib/kiezd"`,
	"scram_iterations":                "10000",
	"listen.c2s":                      `[":5222"]`,
	"listen.direct_tls":               `[":5223"]`,
	"listen.https":                    `[":5281"]`,
	"listen.http":                     `["127.0.0.1:5280"]`,
	"filter.allow":                    `["192.0.2.0/24"]`,
	"registration.reserved":           `["admin", "root"]`,
	"registration.policy":             `"invite"`,
	"http.external_url":               `"https://upload.example.org/"`,
	"tls.certificates.cert":           `"/etc/letsencrypt/live/example.org/fullchain.pem"`,
	"tls.certificates.key":            `"/etc/letsencrypt/live/example.org/privkey.pem"`,
	"tls.acme.email":                  `"admin@example.org"`,
	"tls.acme.listen":                 `":443"`,
	"log.level":                       `"info"`,
	"log.format":                      `"text"`,
	"modules.archive_default":         `"always"`,
	"modules.contact.admin-addresses": `["xmpp:admin@example.org"]`,
}

// example returns the example for the key at p, or def.
func example(p place, def string) string {
	if e, ok := examples[p.key.String()]; ok {
		return e
	}
	if len(p.key) == 3 && p.key[0] == "modules" && p.key[1] == "contact" {
		return examples["modules.contact.admin-addresses"]
	}
	return def
}

// describe names the kind of a TOML value with the value, for errors.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the text %q", v)
	case int64:
		return fmt.Sprintf("the number %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any:
		return "a list"
	case []map[string]any:
		return "tables"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("%v", v)
}
