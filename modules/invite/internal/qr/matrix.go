package qr

// draw lays out the function patterns and codewords, then applies each
// mask in turn and keeps the one with the lowest penalty.
func (c *Code) draw(codewords []byte) {
	n := c.size
	c.dark = make([]bool, n*n)
	fixed := make([]bool, n*n) // function patterns and format/version information
	set := func(x, y int, dark bool) {
		c.dark[y*n+x] = dark
		fixed[y*n+x] = true
	}
	// Timing patterns; the finders and alignment patterns overwrite
	// their ends.
	for i := 0; i < n; i++ {
		set(6, i, i%2 == 0)
		set(i, 6, i%2 == 0)
	}
	// Finder patterns with their light separators.
	for _, f := range [3][2]int{{3, 3}, {n - 4, 3}, {3, n - 4}} {
		for dy := -4; dy <= 4; dy++ {
			for dx := -4; dx <= 4; dx++ {
				x, y := f[0]+dx, f[1]+dy
				if x >= 0 && y >= 0 && x < n && y < n {
					d := max(abs(dx), abs(dy))
					set(x, y, d != 2 && d != 4)
				}
			}
		}
	}
	// Alignment patterns, except where the finders are.
	pos := alignment(c.version)
	for i, px := range pos {
		for j, py := range pos {
			if i == 0 && j == 0 || i == 0 && j == len(pos)-1 || i == len(pos)-1 && j == 0 {
				continue
			}
			for dy := -2; dy <= 2; dy++ {
				for dx := -2; dx <= 2; dx++ {
					set(px+dx, py+dy, max(abs(dx), abs(dy)) != 1)
				}
			}
		}
	}
	// Reserve the format information (drawn per mask) and draw the
	// version information.
	c.format(0, set)
	if c.version >= 7 {
		bits := bch(c.version, 12, 0x1F25)
		for i := 0; i < 18; i++ {
			dark := bits>>i&1 != 0
			a, b := n-11+i%3, i/3
			set(a, b, dark)
			set(b, a, dark)
		}
	}
	// Codewords, most significant bit first, in two-module columns from
	// the right, upwards then downwards, skipping the vertical timing
	// pattern and the fixed modules. Remainder bits stay light.
	i := 0
	for right := n - 1; right >= 1; right -= 2 {
		if right == 6 {
			right = 5
		}
		up := (right+1)&2 == 0
		for v := 0; v < n; v++ {
			y := v
			if up {
				y = n - 1 - v
			}
			for x := right; x > right-2; x-- {
				if !fixed[y*n+x] && i < len(codewords)*8 {
					c.dark[y*n+x] = codewords[i>>3]>>(7-i&7)&1 != 0
					i++
				}
			}
		}
	}
	// Masks are their own inverse: apply, score, undo.
	best, bestScore := 0, -1
	for m := 0; m < 8; m++ {
		c.applyMask(m, fixed)
		c.format(m, set)
		if s := c.penalty(); bestScore < 0 || s < bestScore {
			best, bestScore = m, s
		}
		c.applyMask(m, fixed)
	}
	c.mask = best
	c.applyMask(best, fixed)
	c.format(best, set)
}

// format draws the format information for mask in both places, and the
// dark module.
func (c *Code) format(mask int, set func(x, y int, dark bool)) {
	bits := formatBits(c.level, mask)
	n := c.size
	bit := func(i int) bool { return bits>>i&1 != 0 }
	// Around the top left finder: bits 0–7 down column 8 (skipping the
	// timing pattern), bits 8–14 leftwards along row 8.
	for i := 0; i < 6; i++ {
		set(8, i, bit(i))
	}
	set(8, 7, bit(6))
	set(8, 8, bit(7))
	set(7, 8, bit(8))
	for i := 9; i < 15; i++ {
		set(14-i, 8, bit(i))
	}
	// Split between the other finders: bits 0–7 leftwards along row 8
	// from the right edge, bits 8–14 down column 8 to the bottom.
	for i := 0; i < 8; i++ {
		set(n-1-i, 8, bit(i))
	}
	for i := 8; i < 15; i++ {
		set(8, n-15+i, bit(i))
	}
	set(8, n-8, true)
}

// formatBits is the 15-bit format information: the level's indicator and
// the mask, their BCH(15,5) check bits, XOR 101010000010010.
func formatBits(level Level, mask int) int {
	indicator := [4]int{1, 0, 3, 2}[level] // L 01, M 00, Q 11, H 10
	return bch(indicator<<3|mask, 10, 0x537) ^ 0x5412
}

// bch appends to data the remainder of data·x^n divided by the generator
// polynomial gen (of degree n).
func bch(data, n, gen int) int {
	r := data << n
	for i := bitLen(r) - 1; i >= n; i-- {
		if r>>i&1 != 0 {
			r ^= gen << (i - n)
		}
	}
	return data<<n | r
}

func bitLen(x int) int {
	n := 0
	for ; x != 0; x >>= 1 {
		n++
	}
	return n
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// alignment returns the rows (and columns) of the alignment pattern
// centres: 6, then evenly spaced (an even step) up to size-7.
func alignment(version int) []int {
	if version == 1 {
		return nil
	}
	a := version/7 + 2
	last := 4*version + 10
	step := 26 // version 32 is the exception to the rule below
	if version != 32 {
		// (last-6)/(a-1) rounded up, then up to an even number.
		q := (last - 6 + a - 2) / (a - 1)
		step = q + q%2
	}
	pos := make([]int, a)
	pos[0] = 6
	for i := a - 1; i >= 1; i-- {
		pos[i] = last - (a-1-i)*step
	}
	return pos
}

// applyMask flips the non-fixed modules where mask pattern m is true.
func (c *Code) applyMask(m int, fixed []bool) {
	n := c.size
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			var flip bool
			switch m {
			case 0:
				flip = (x+y)%2 == 0
			case 1:
				flip = y%2 == 0
			case 2:
				flip = x%3 == 0
			case 3:
				flip = (x+y)%3 == 0
			case 4:
				flip = (x/3+y/2)%2 == 0
			case 5:
				flip = x*y%2+x*y%3 == 0
			case 6:
				flip = (x*y%2+x*y%3)%2 == 0
			case 7:
				flip = ((x+y)%2+x*y%3)%2 == 0
			}
			if flip && !fixed[y*n+x] {
				c.dark[y*n+x] = !c.dark[y*n+x]
			}
		}
	}
}

// penalty scores the symbol by ISO/IEC 18004 7.8.3: runs of five or more
// modules of one colour in a row or column (3 plus 1 per module beyond
// five), 2×2 blocks of one colour (3 each), finder-like 1:1:3:1:1
// patterns with 4 light modules on a side (40 each, the quiet zone being
// light), and 10 per 5 % the dark share strays from 50 %.
func (c *Code) penalty() int {
	n := c.size
	score, dark := 0, 0
	for pass := 0; pass < 2; pass++ { // rows, then columns
		at := func(i, j int) bool { // module j of line i; outside is light
			if j < 0 || j >= n {
				return false
			}
			if pass == 0 {
				return c.dark[i*n+j]
			}
			return c.dark[j*n+i]
		}
		for i := 0; i < n; i++ {
			run := 0
			for j := 0; j < n; j++ {
				if j > 0 && at(i, j) == at(i, j-1) {
					run++
				} else {
					run = 1
				}
				if run == 5 {
					score += 3
				} else if run > 5 {
					score++
				}
				if finderLike(at, i, j) {
					score += 40
				}
			}
		}
	}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			d := c.dark[y*n+x]
			if d {
				dark++
			}
			if x+1 < n && y+1 < n && d == c.dark[y*n+x+1] && d == c.dark[(y+1)*n+x] && d == c.dark[(y+1)*n+x+1] {
				score += 3
			}
		}
	}
	total := n * n
	return score + 10*(abs(dark*20-total*10)/total)
}

// finderLike reports whether dark, light, dark×3, light, dark starts at
// module j of line i with 4 light modules before or after it.
func finderLike(at func(i, j int) bool, i, j int) bool {
	for k, d := range [7]bool{true, false, true, true, true, false, true} {
		if at(i, j+k) != d {
			return false
		}
	}
	return !at(i, j-1) && !at(i, j-2) && !at(i, j-3) && !at(i, j-4) ||
		!at(i, j+7) && !at(i, j+8) && !at(i, j+9) && !at(i, j+10)
}
