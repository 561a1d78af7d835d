package qr

import (
	"bufio"
	"html"
	"image"
	"io"
	"strconv"
)

// QuietZone is the light margin, in modules, that SVG and Image draw
// around the symbol.
const QuietZone = 4

// SVG writes the symbol as one <svg> element, moduleSize pixels (at
// least 1) a module: a white background and one black <path> of
// horizontal runs, no style or script, suitable for inline HTML. A
// non-empty label becomes the image's accessible name (role="img",
// aria-label and <title>).
func (c *Code) SVG(w io.Writer, moduleSize int, label string) error {
	moduleSize = max(moduleSize, 1)
	side := c.size + 2*QuietZone
	px := strconv.Itoa(side * moduleSize)
	b := bufio.NewWriter(w)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="` + px + `" height="` + px +
		`" viewBox="0 0 ` + strconv.Itoa(side) + " " + strconv.Itoa(side) + `" shape-rendering="crispEdges"`)
	if label != "" {
		l := html.EscapeString(label)
		b.WriteString(` role="img" aria-label="` + l + `"><title>` + l + `</title>`)
	} else {
		b.WriteString(`>`)
	}
	b.WriteString(`<rect width="100%" height="100%" fill="#fff"/><path fill="#000" d="`)
	var num [20]byte
	for y := 0; y < c.size; y++ {
		for x := 0; x < c.size; {
			if !c.dark[y*c.size+x] {
				x++
				continue
			}
			run := 1
			for x+run < c.size && c.dark[y*c.size+x+run] {
				run++
			}
			// M x y h run v1 h -run z
			b.WriteByte('M')
			b.Write(strconv.AppendInt(num[:0], int64(x+QuietZone), 10))
			b.WriteByte(' ')
			b.Write(strconv.AppendInt(num[:0], int64(y+QuietZone), 10))
			b.WriteByte('h')
			b.Write(strconv.AppendInt(num[:0], int64(run), 10))
			b.WriteString("v1h-")
			b.Write(strconv.AppendInt(num[:0], int64(run), 10))
			b.WriteByte('z')
			x += run
		}
	}
	b.WriteString(`"/></svg>`)
	return b.Flush()
}

// Image returns the symbol as a grey image (black on white), moduleSize
// pixels (at least 1) a module, with the quiet zone; image/png encodes
// it.
func (c *Code) Image(moduleSize int) *image.Gray {
	moduleSize = max(moduleSize, 1)
	side := (c.size + 2*QuietZone) * moduleSize
	img := image.NewGray(image.Rect(0, 0, side, side))
	for i := range img.Pix {
		img.Pix[i] = 0xFF
	}
	for y := 0; y < c.size; y++ {
		for x := 0; x < c.size; x++ {
			if !c.dark[y*c.size+x] {
				continue
			}
			for py := 0; py < moduleSize; py++ {
				row := img.Pix[((y+QuietZone)*moduleSize+py)*img.Stride:]
				start := (x + QuietZone) * moduleSize
				clear(row[start : start+moduleSize])
			}
		}
	}
	return img
}
