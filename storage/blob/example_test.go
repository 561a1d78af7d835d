package blob_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiez-im/kiez/storage/blob"
)

// A file is written as its bytes come, becomes visible whole on Commit,
// and is read back by its ID.
func ExampleNewDir() {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "kiez-blob-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	files, err := blob.NewDir(filepath.Join(tmp, "uploads"))
	if err != nil {
		log.Fatal(err)
	}
	const id = "d2hhdC1hLWZpbmUtZmlsZQ" // random in real use
	w, err := files.Create(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, strings.NewReader("hello, world\n")); err != nil {
		w.Abort()
		log.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	f, err := files.Open(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	fmt.Println(f.Size(), "bytes")
	io.Copy(os.Stdout, f)

	_, err = files.Open(ctx, "../../etc/passwd")
	fmt.Println(err)
	// Output:
	// 13 bytes
	// hello, world
	// blob: open: blob: invalid ID: "../../etc/passwd" (16 bytes)
}
