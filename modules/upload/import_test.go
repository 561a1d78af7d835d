package upload_test

import (
	"strings"
	"testing"

	"github.com/kiez-im/kiez/modules/upload"
	"github.com/kiez-im/kiez/server"
)

// TestImport: the list of uploads is recognised and not imported, as its
// files are not in the export; the report says so.
func TestImport(t *testing.T) {
	e := start(t, upload.Options{})
	doc := `<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol' password='pw'>` +
		`<uploads xmlns='urn:xmpp:http:upload:0'><upload filename='cat.jpg' size='3' content-type='image/jpeg' url='https://example.org/cat.jpg'/>` +
		`<upload filename='dog.jpg' size='4' content-type='image/jpeg' url='https://example.org/dog.jpg'/></uploads></user></host></server-data>`
	r, err := e.srv.ImportUsers(t.Context(), strings.NewReader(doc), server.ImportOptions{})
	if err != nil || r.Failed() != nil {
		t.Fatalf("import: %v, %v", err, r.Failed())
	}
	u := r.Users[0]
	if len(u.Notes) != 1 || !strings.Contains(u.Notes[0], "upload list of 2 files: the files are not carried by XEP-0227") || len(u.Unknown) != 0 {
		t.Fatalf("report: %+v", u)
	}
	ups, err := e.store.UserUploads(t.Context(), "carol@localhost")
	if err != nil || len(ups) != 0 {
		t.Fatalf("uploads after the import: %+v, %v", ups, err)
	}
}
