package upload

import (
	"io"
	"net/http"

	"github.com/kiez-im/kiez/server"
	"github.com/kiez-im/kiez/server/metrics"
)

// uploadMetrics are the module's metrics; nil (counting nothing) until
// RegisterMetrics is given a registry.
type uploadMetrics struct {
	files         *metrics.Counter
	received      *metrics.Counter
	sent          *metrics.Counter
	slotsRefused  *metrics.Counter
	slotsAccepted *metrics.Counter
}

// RegisterMetrics registers kiez_upload_files_total (files received
// whole), kiez_upload_bytes_total with direction "received" (the bytes of
// those files) and "sent" (bytes of files served, ranges included), and
// kiez_upload_slots_total by result ("ok", or "refused" for a limit or
// quota).
func (m *Module) RegisterMetrics(r *metrics.Registry) {
	const bytesHelp = "Bytes of uploaded files received whole, and of files served, by direction."
	const slotsHelp = "Upload slots requested, by result."
	m.metrics = uploadMetrics{
		files:         r.Counter("kiez_upload_files_total", "Files uploaded whole."),
		received:      r.Counter("kiez_upload_bytes_total", bytesHelp, metrics.Label{Name: "direction", Value: "received"}),
		sent:          r.Counter("kiez_upload_bytes_total", bytesHelp, metrics.Label{Name: "direction", Value: "sent"}),
		slotsAccepted: r.Counter("kiez_upload_slots_total", slotsHelp, metrics.Label{Name: "result", Value: "ok"}),
		slotsRefused:  r.Counter("kiez_upload_slots_total", slotsHelp, metrics.Label{Name: "result", Value: "refused"}),
	}
}

// countingWriter counts the bytes of a response's body. It keeps
// io.ReaderFrom, through which net/http sends a file with sendfile(2).
type countingWriter struct {
	http.ResponseWriter
	c *metrics.Counter
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.c.Add(uint64(n))
	return n, err
}

func (w countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.c.Add(uint64(max(n, 0)))
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var _ server.MetricsRegistrar = (*Module)(nil)
