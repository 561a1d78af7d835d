package qr_test

import (
	"fmt"
	"strings"

	"github.com/kiez-im/kiez/modules/invite/internal/qr"
)

func ExampleEncode() {
	c, err := qr.Encode([]byte("xmpp:example.org?register;preauth=TOKEN"), qr.M)
	if err != nil {
		panic(err)
	}
	var svg strings.Builder
	c.SVG(&svg, 4, "QR code of the invitation")
	fmt.Println(c.Version(), c.Size(), strings.HasPrefix(svg.String(), "<svg"))
	// Output: 3 29 true
}
