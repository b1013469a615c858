package ds_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/mlskit/mls/ds"
	"github.com/mlskit/mls/ds/store/sqlite"
)

// An mlsd on a loopback port over a fresh SQLite file, as `mls demo`
// embeds it: clients use the URL with mlsdv1connect (or dsclient).
func ExampleListen() {
	dir, err := os.MkdirTemp("", "mlsd-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "mlsd.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	url, stop, err := ds.Listen(ctx, "127.0.0.1:0", store, ds.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	res, err := http.Get(url + "/healthz")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	fmt.Print(res.StatusCode, " ", string(body))
	// Output: 200 ok
}
