package xmltok

// The kinds of markup a token starting with '<' can be.
const (
	kindNone      = iota // not known yet
	kindStart            // <name ...> or <name .../>
	kindEnd              // </name>
	kindPI               // <?target ...?>
	kindComment          // <!--
	kindDirective        // <!X
	kindCDATA            // <![CDATA[...]]>
)

// Scanner states.
const (
	stLT         = iota // after '<'
	stStartName0        // the first byte of an element name
	stStartName         // in an element name
	stTagSpace          // between attributes
	stAttrName          // in an attribute name
	stAttrEq            // after an attribute name, before '='
	stAttrQuote         // after '=', before the quote
	stAttrValue         // in a quoted value
	stSlash             // after '/' in a start tag
	stEndName0          // the first byte of an end tag's name
	stEndName           // in an end tag's name
	stEndSpace          // after an end tag's name
	stPIName            // in a processing instruction's target
	stPI                // in a processing instruction
	stBang              // after "<!"
	stBangDash          // after "<!-"
	stCDATAOpen         // in "CDATA["
	stCDATA             // in a CDATA section
)

// span is a part of a token: bytes [s, e); e < 0 while it is not complete.
type span struct{ s, e int }

type attrSpan struct{ name, val span }

// scanner finds where a token starting with '<' ends, fed the input a
// piece at a time, and records where the names and values are. It stops
// at the first byte that cannot continue the markup (bad), including it.
type scanner struct {
	kind  int
	state int
	pos   int // bytes of the token scanned before the current piece
	name  span
	attrs []attrSpan
	quote byte
	p1    byte // the byte before, in processing instructions and CDATA
	p2    byte
	idx   int // into "CDATA["
	empty bool
	bad   bool
	msg   string // what is wrong when bad
}

func (sc *scanner) reset() {
	*sc = scanner{attrs: sc.attrs[:0], name: span{-1, -1}}
}

// fail stops the scan at the current byte.
func (sc *scanner) fail(msg string) {
	sc.bad = true
	sc.msg = msg
}

// scan consumes b, a piece of the token; it returns how many bytes of b
// belong to the token and whether the token ended.
func (sc *scanner) scan(b []byte) (int, bool) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		pos := sc.pos + i
		switch sc.state {
		case stLT:
			if pos == 0 {
				continue // the '<'
			}
			switch c {
			case '/':
				sc.kind, sc.state = kindEnd, stEndName0
			case '?':
				sc.kind, sc.state = kindPI, stPIName
				sc.name = span{pos + 1, -1}
			case '!':
				sc.state = stBang
			default:
				sc.kind, sc.state = kindStart, stStartName0
				i-- // the name's first byte
			}
		case stStartName0:
			sc.name = span{pos, -1}
			if !isNameByte(c) {
				sc.name.e = pos
				sc.fail("expected element name after <")
				return i + 1, true
			}
			sc.state = stStartName
		case stStartName, stTagSpace:
			if sc.state == stStartName {
				if isNameByte(c) {
					continue
				}
				sc.name.e = pos
			}
			switch {
			case isSpace(c):
				sc.state = stTagSpace
			case c == '>':
				return i + 1, true
			case c == '/':
				sc.state = stSlash
			case isNameByte(c):
				sc.attrs = append(sc.attrs, attrSpan{name: span{pos, -1}, val: span{-1, -1}})
				sc.state = stAttrName
			default:
				sc.fail("expected attribute name in element")
				return i + 1, true
			}
		case stAttrName:
			if isNameByte(c) {
				continue
			}
			sc.attrs[len(sc.attrs)-1].name.e = pos
			switch {
			case isSpace(c):
				sc.state = stAttrEq
			case c == '=':
				sc.state = stAttrQuote
			default:
				sc.fail("attribute name without = in element")
				return i + 1, true
			}
		case stAttrEq:
			switch {
			case isSpace(c):
			case c == '=':
				sc.state = stAttrQuote
			default:
				sc.fail("attribute name without = in element")
				return i + 1, true
			}
		case stAttrQuote:
			switch {
			case isSpace(c):
			case c == '"' || c == '\'':
				sc.quote = c
				sc.attrs[len(sc.attrs)-1].val = span{pos + 1, -1}
				sc.state = stAttrValue
			default:
				sc.fail("unquoted or missing attribute value in element")
				return i + 1, true
			}
		case stAttrValue:
			// Most of a tag is values: skip to the quote or a '<'.
			j := i
			for j < len(b) && b[j] != sc.quote && b[j] != '<' {
				j++
			}
			if j == len(b) {
				i = j - 1
				continue
			}
			if b[j] == '<' {
				sc.fail("unescaped < inside quoted string")
				return j + 1, true
			}
			i = j
			sc.attrs[len(sc.attrs)-1].val.e = sc.pos + j
			sc.state = stTagSpace
		case stSlash:
			if c != '>' {
				sc.fail("expected /> in element")
				return i + 1, true
			}
			sc.empty = true
			return i + 1, true
		case stEndName0:
			sc.name = span{pos, -1}
			if !isNameByte(c) {
				sc.name.e = pos
				sc.fail("expected element name after </")
				return i + 1, true
			}
			sc.state = stEndName
		case stEndName, stEndSpace:
			if sc.state == stEndName {
				if isNameByte(c) {
					continue
				}
				sc.name.e = pos
			}
			switch {
			case isSpace(c):
				sc.state = stEndSpace
			case c == '>':
				return i + 1, true
			default:
				sc.fail("invalid characters between </ and >")
				return i + 1, true
			}
		case stPIName:
			if isNameByte(c) {
				continue
			}
			sc.name.e = pos
			sc.state = stPI
			i-- // this byte may start "?>"
		case stPI:
			if sc.p1 == '?' && c == '>' {
				return i + 1, true
			}
			sc.p1 = c
		case stBang:
			switch c {
			case '-':
				sc.kind, sc.state = kindComment, stBangDash
			case '[':
				sc.kind, sc.state = kindCDATA, stCDATAOpen
			default:
				sc.kind = kindDirective
				return i + 1, true
			}
		case stBangDash:
			if c != '-' {
				sc.fail("invalid sequence <!- not part of <!--")
			}
			return i + 1, true
		case stCDATAOpen:
			if c != "CDATA["[sc.idx] {
				sc.fail("invalid <![ sequence")
				return i + 1, true
			}
			if sc.idx++; sc.idx == len("CDATA[") {
				sc.state = stCDATA
			}
		case stCDATA:
			if c == '>' && sc.p1 == ']' && sc.p2 == ']' {
				return i + 1, true
			}
			sc.p2, sc.p1 = sc.p1, c
		}
	}
	sc.pos += len(b)
	return len(b), false
}
