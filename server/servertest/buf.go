package servertest

import "bytes"

type bytesBuf = bytes.Buffer
