package time_test

import (
	"fmt"
	"time"

	kieztime "github.com/kiez-im/kiez/modules/time"
	"github.com/kiez-im/kiez/server"
)

// An integrator adds the module to Config.Modules. Without a Location the
// server reports UTC; here it reports the offset of a fixed zone. The
// module has no dependencies: Deps is empty.
func Example() {
	m, err := kieztime.New(kieztime.Options{Location: time.FixedZone("CET", 3600)}, kieztime.Deps{})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := server.Config{
		Domains: []string{"example.org"},
		Modules: []server.Module{m},
	}
	fmt.Println(cfg.Modules[0].Name())
	// Output: time
}
