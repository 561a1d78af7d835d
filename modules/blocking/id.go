package blocking

import (
	"crypto/rand"
	"encoding/hex"
)

func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
