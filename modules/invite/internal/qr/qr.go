// Package qr encodes bytes as a QR Code Model 2 symbol (ISO/IEC 18004):
// byte mode, versions 1 to 40, error correction levels L, M, Q and H,
// the mask with the lowest penalty. It draws the symbol as SVG or as an
// image; it does not decode.
package qr

import (
	"errors"
	"fmt"
)

// Level is an error correction level.
type Level int

// The error correction levels, recovering about 7, 15, 25 and 30 % of the
// codewords.
const (
	L Level = iota
	M
	Q
	H
)

// String returns "L", "M", "Q" or "H".
func (l Level) String() string {
	if l < L || l > H {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return "LMQH"[l : l+1]
}

// ErrTooLong is returned (wrapped) when the data do not fit in a version 40
// symbol at the requested level.
var ErrTooLong = errors.New("qr: data too long")

// Code is an encoded symbol. Module (0, 0) is the top left corner.
type Code struct {
	version int
	level   Level
	mask    int
	size    int
	dark    []bool // size*size, row by row
}

// Size returns the number of modules on a side, 21 to 177, without the
// quiet zone.
func (c *Code) Size() int { return c.size }

// Version returns the symbol's version, 1 to 40.
func (c *Code) Version() int { return c.version }

// Level returns the symbol's error correction level.
func (c *Code) Level() Level { return c.level }

// Mask returns the mask pattern applied, 0 to 7.
func (c *Code) Mask() int { return c.mask }

// Black reports whether module (x, y) is dark; x is the column. Modules
// outside the symbol (the quiet zone) are light.
func (c *Code) Black(x, y int) bool {
	return x >= 0 && y >= 0 && x < c.size && y < c.size && c.dark[y*c.size+x]
}

// Encode encodes data in byte mode (text should be UTF-8) as the smallest
// symbol that holds it at level. Data longer than version 40 holds give an
// error wrapping ErrTooLong.
func Encode(data []byte, level Level) (*Code, error) {
	if level < L || level > H {
		return nil, fmt.Errorf("qr: invalid level %d", int(level))
	}
	version := 0
	for v := 1; v <= 40; v++ {
		if bits := 4 + countBits(v) + 8*len(data); bits <= 8*dataCodewords(v, level) {
			version = v
			break
		}
	}
	if version == 0 {
		return nil, fmt.Errorf("%w: %d bytes, at most %d at level %v", ErrTooLong, len(data), dataCodewords(40, level)-3, level)
	}
	codewords := addECC(dataBytes(data, version, level), version, level)
	c := &Code{version: version, level: level, size: 17 + 4*version}
	c.draw(codewords)
	return c, nil
}

// countBits is the width of the byte mode character count.
func countBits(version int) int {
	if version <= 9 {
		return 8
	}
	return 16
}

// dataBytes builds the data codewords: mode, count, data, terminator and
// the pad bytes 0xEC 0x11.
func dataBytes(data []byte, version int, level Level) []byte {
	n := dataCodewords(version, level)
	out := make([]byte, 0, n)
	// Byte mode (0100) and the count put every data byte 4 bits off the
	// byte grid: each byte holds the low nibble of one and the high
	// nibble of the next.
	if countBits(version) == 8 {
		out = append(out, 0x40|byte(len(data)>>4))
	} else {
		out = append(out, 0x40|byte(len(data)>>12), byte(len(data)>>4))
	}
	prev := byte(len(data))
	for _, b := range data {
		out = append(out, prev<<4|b>>4)
		prev = b
	}
	out = append(out, prev<<4) // the low nibble, then 4 terminator bits
	for pad := byte(0xEC); len(out) < n; pad ^= 0xEC ^ 0x11 {
		out = append(out, pad)
	}
	return out
}

// eccPerBlock and blocks are ISO/IEC 18004 table 9 by level and version
// (index 0 unused): error correction codewords per block and the number
// of blocks.
var (
	eccPerBlock = [4][41]int8{
		{0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30},
		{0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28},
		{0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30},
		{0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30},
	}
	blocks = [4][41]int8{
		{0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25},
		{0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49},
		{0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68},
		{0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81},
	}
)

// rawCodewords is the number of codewords a version holds: its modules
// minus the function patterns and the format and version information,
// divided by 8 (the 0 to 7 remainder bits stay unused).
func rawCodewords(version int) int {
	size := 17 + 4*version
	n := size*size - 3*64 - 2*(size-16) - 31 // finders with separators, timing, format, dark module
	if version >= 2 {
		a := version/7 + 2
		n -= 25 * (a*a - 3)  // alignment patterns,
		n += 2 * 5 * (a - 2) // less their overlap with the timing patterns
		if version >= 7 {
			n -= 36 // version information
		}
	}
	return n / 8
}

// dataCodewords is the number of data codewords at level.
func dataCodewords(version int, level Level) int {
	return rawCodewords(version) - int(eccPerBlock[level][version])*int(blocks[level][version])
}

// addECC splits data into blocks, computes each block's error correction
// codewords and interleaves them: the data codewords of the blocks in
// turn, then their error correction codewords.
func addECC(data []byte, version int, level Level) []byte {
	nb, ne := int(blocks[level][version]), int(eccPerBlock[level][version])
	raw := rawCodewords(version)
	short := raw / nb       // codewords in a short block; long ones have one more
	numShort := nb - raw%nb // short blocks come first
	gen := generator(ne)
	out := make([]byte, raw)
	ecc := make([]byte, ne)
	for b, off := 0, 0; b < nb; b++ {
		n := short - ne
		if b >= numShort {
			n++
		}
		block := data[off : off+n]
		off += n
		for i, d := range block {
			// Short blocks lack the last data codeword: from there
			// on, column i holds only long blocks.
			j := i*nb + b
			if i == short-ne {
				j -= numShort
			}
			out[j] = d
		}
		remainder(block, gen, ecc)
		for i, e := range ecc {
			out[raw-ne*nb+i*nb+b] = e
		}
	}
	return out
}
