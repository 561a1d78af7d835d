package qr

// mul multiplies in GF(256) modulo x^8 + x^4 + x^3 + x^2 + 1 (0x11D).
func mul(a, b byte) byte {
	var p byte
	for ; b != 0; b >>= 1 {
		if b&1 != 0 {
			p ^= a
		}
		carry := a & 0x80
		a <<= 1
		if carry != 0 {
			a ^= 0x1D
		}
	}
	return p
}

// generator returns the Reed–Solomon generator polynomial of degree n,
// (x - α^0)(x - α^1)…(x - α^(n-1)) with α = 2, without its leading 1:
// coefficients from x^(n-1) down to x^0.
func generator(n int) []byte {
	g := make([]byte, n)
	g[n-1] = 1 // the polynomial 1, leading term implied
	root := byte(1)
	for i := 0; i < n; i++ {
		// Multiply by (x + root): shift left, add root times the old.
		for j := 0; j < n; j++ {
			g[j] = mul(g[j], root)
			if j+1 < n {
				g[j] ^= g[j+1]
			}
		}
		root = mul(root, 2)
	}
	return g
}

// remainder writes into ecc (len(gen) bytes) the remainder of data·x^n
// divided by the generator: the error correction codewords.
func remainder(data, gen, ecc []byte) {
	clear(ecc)
	for _, d := range data {
		f := d ^ ecc[0]
		copy(ecc, ecc[1:])
		ecc[len(ecc)-1] = 0
		for i, g := range gen {
			ecc[i] ^= mul(g, f)
		}
	}
}
