package server

import (
	"bufio"
	"io"
	"sync"
)

// writerPool lends bufio.Writers to sessions while they write, so an idle
// session holds no write buffer.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

func getWriter(w io.Writer) *bufio.Writer {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writerPool.Put(bw)
}
