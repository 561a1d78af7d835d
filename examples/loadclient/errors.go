package main

import (
	"errors"
	"strings"
	"sync"
)

// tally counts errors by kind and keeps the first few messages.
type tally struct {
	mu      sync.Mutex
	kinds   map[string]int
	samples []string
}

// Errors is the error part of every result line.
type Errors struct {
	Count   int            `json:"errors"`
	Kinds   map[string]int `json:"error_kinds,omitempty"`
	Samples []string       `json:"error_samples,omitempty"`
}

// add counts err, which happened at stage ("dial", "login", "send" …).
func (t *tally) add(stage string, err error) {
	kind := stage + ":" + errorKind(err)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kinds == nil {
		t.kinds = make(map[string]int)
	}
	t.kinds[kind]++
	if len(t.samples) < 5 {
		t.samples = append(t.samples, stage+": "+err.Error())
	}
}

func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.kinds {
		n += v
	}
	return n
}

func (t *tally) result() Errors {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := Errors{Samples: t.samples}
	for _, v := range t.kinds {
		e.Count += v
	}
	if e.Count > 0 {
		e.Kinds = t.kinds
	}
	return e
}

// errorKind classifies an error for the tally.
func errorKind(err error) string {
	var se *streamError
	var sf *saslFailure
	var ie *iqError
	switch {
	case errors.As(err, &se):
		return "stream-error:" + se.cond
	case errors.As(err, &sf):
		return "sasl:" + sf.cond
	case errors.As(err, &ie):
		return "iq:" + ie.cond
	}
	s := err.Error()
	for _, k := range []struct{ substr, kind string }{
		{"timeout", "timeout"},
		{"connection reset", "reset"},
		{"refused", "refused"},
		{"EOF", "eof"},
		{"too many open files", "emfile"},
		{"cannot assign requested address", "eaddrnotavail"},
	} {
		if strings.Contains(s, k.substr) {
			return k.kind
		}
	}
	return "other"
}
