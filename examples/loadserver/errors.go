package main

import (
	"errors"

	"github.com/kiez-im/kiez/storage"
)

func errorsIsExists(err error) bool { return errors.Is(err, storage.ErrExists) }
