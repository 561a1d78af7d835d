package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// errStreamEnd reports that the server closed its stream with
// </stream:stream>.
var errStreamEnd = errors.New("stream closed by the server")

// maxElement caps one top-level element, so that a misbehaving server cannot
// make the client buffer without bound. A MAM page of 50 messages is far
// below it.
const maxElement = 4 << 20

// splitter cuts an XMPP stream into its header and its top-level elements
// without building a tree: it only follows element depth, skipping quoted
// attribute values, comments, processing instructions and CDATA sections. It
// trusts the server to send well-formed XML and does not validate it; the
// few elements the client needs to understand are decoded with encoding/xml
// (see node.go).
type splitter struct {
	src      io.Reader
	buf      []byte
	pos, end int  // unread bytes are buf[pos:end]
	inStream bool // the stream header has been read
	// beforeRead runs before each read from src (to refresh a deadline).
	beforeRead func()
}

func newSplitter(src io.Reader, beforeRead func()) *splitter {
	return &splitter{src: src, buf: make([]byte, 4096), beforeRead: beforeRead}
}

// restart expects a new stream header, as after STARTTLS and SASL.
func (s *splitter) restart() { s.inStream = false }

// next returns the stream header or the next top-level element. The slice
// is valid until the next call. After the server's </stream:stream> it
// returns errStreamEnd.
func (s *splitter) next() ([]byte, error) {
	for {
		el, err := s.scan()
		if err != nil || el != nil {
			return el, err
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads more bytes, compacting or growing the buffer first.
func (s *splitter) fill() error {
	if s.pos > 0 {
		s.end = copy(s.buf, s.buf[s.pos:s.end])
		s.pos = 0
	}
	if s.end == len(s.buf) {
		if len(s.buf) >= maxElement {
			return fmt.Errorf("element larger than %d bytes", maxElement)
		}
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
	}
	if s.beforeRead != nil {
		s.beforeRead()
	}
	n, err := s.src.Read(s.buf[s.end:])
	s.end += n
	if n == 0 && err != nil {
		return err
	}
	return nil
}

// Kinds of markup tagEnd recognises.
const (
	markupOther = iota // comment, processing instruction, CDATA, declaration
	markupStart
	markupEnd
	markupEmpty
)

// scan looks for one complete header or element in the buffered bytes. It
// returns nil, nil when more input is needed.
func (s *splitter) scan() ([]byte, error) {
	b := s.buf[s.pos:s.end]
	depth, start := 0, -1
	for i := 0; i < len(b); {
		lt := bytes.IndexByte(b[i:], '<')
		if lt < 0 {
			break
		}
		i += lt
		end, kind := tagEnd(b, i)
		if end < 0 {
			break
		}
		switch {
		case kind == markupOther:
		case !s.inStream && kind == markupStart:
			s.pos += end
			s.inStream = true
			return b[i:end], nil
		case !s.inStream:
			return nil, fmt.Errorf("expected a stream header, got %q", truncate(b[i:end], 80))
		case kind == markupStart:
			if depth == 0 {
				start = i
			}
			depth++
		case kind == markupEnd && depth == 0:
			s.pos += end
			s.inStream = false
			return nil, errStreamEnd
		case kind == markupEnd:
			depth--
			if depth == 0 {
				s.pos += end
				return b[start:end], nil
			}
		case kind == markupEmpty && depth == 0:
			s.pos += end
			return b[i:end], nil
		}
		i = end
	}
	if depth == 0 && start < 0 {
		// Only whitespace or skipped markup is buffered: drop what is complete.
		if lt := bytes.IndexByte(b, '<'); lt < 0 {
			s.pos = s.end
		} else {
			s.pos += lt
		}
	}
	return nil, nil
}

// tagEnd returns the index just past the markup that starts at b[i] ('<')
// and its kind, or -1 when the markup is not complete yet.
func tagEnd(b []byte, i int) (int, int) {
	rest := b[i:]
	for _, skip := range []struct{ open, close string }{
		{"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"},
	} {
		if bytes.HasPrefix(rest, []byte(skip.open)) {
			j := bytes.Index(rest[len(skip.open):], []byte(skip.close))
			if j < 0 {
				return -1, 0
			}
			return i + len(skip.open) + j + len(skip.close), markupOther
		}
		if len(rest) < len(skip.open) && bytes.HasPrefix([]byte(skip.open), rest) {
			return -1, 0 // could still become one of these
		}
	}
	var quote byte
	for j := 1; j < len(rest); j++ {
		c := rest[j]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			switch {
			case rest[1] == '/':
				return i + j + 1, markupEnd
			case rest[1] == '!':
				return i + j + 1, markupOther
			case rest[j-1] == '/':
				return i + j + 1, markupEmpty
			}
			return i + j + 1, markupStart
		}
	}
	return -1, 0
}

// truncate shortens b for an error message.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
