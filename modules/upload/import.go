package upload

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"

	"mellium.im/xmpp/jid"

	"github.com/kiez-im/kiez/server"
)

// ImportUser takes the <uploads xmlns='urn:xmpp:http:upload:0'/> list
// ExportUser writes and imports nothing: the list describes files
// without their bytes, which XEP-0227 does not carry, and a record of a
// file that is not there would only serve broken URLs. The import
// reports it as not carried (server.ErrNotCarried), with the number of
// files; the files themselves are moved with the upload directory, or
// not at all.
func (m *Module) ImportUser(ctx context.Context, user jid.JID, el *server.ImportElement) (bool, error) {
	if el.Start.Name != (xml.Name{Space: NS, Local: "uploads"}) {
		return false, nil
	}
	n := 0
	for {
		_, err := el.Child()
		if err == io.EOF {
			break
		}
		if err != nil {
			return true, err
		}
		n++
	}
	return true, fmt.Errorf("upload list of %d files: the files are not carried by XEP-0227: %w", n, server.ErrNotCarried)
}

var _ server.UserDataImporter = (*Module)(nil)
