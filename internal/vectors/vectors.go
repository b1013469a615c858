// Package vectors locates and loads the official MLS test vectors
// (https://github.com/mlswg/mls-implementations, test-vectors/). The files
// are not part of this repository: they are read from the directory named by
// the MLS_TEST_VECTORS environment variable, or from ../shared/test-vectors
// beside the module root.
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvVar names the environment variable that overrides the vector directory.
const EnvVar = "MLS_TEST_VECTORS"

// ErrNotFound is returned when the vector directory or file does not exist.
var ErrNotFound = errors.New("test vectors not found")

// Dir returns the vector directory: $MLS_TEST_VECTORS if set, otherwise
// ../shared/test-vectors relative to the directory holding go.mod, searched
// upwards from the working directory.
func Dir() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "test-vectors"), nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return filepath.Join("..", "shared", "test-vectors"), nil
}

// Read returns the contents of the named vector file in dir.
func Read(dir, name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (put the official vector files in %s or set %s)", ErrNotFound, filepath.Join(dir, name), dir, EnvVar)
	}
	return b, err
}

// Hex is a byte string that unmarshals from a JSON hex string. JSON null
// gives a nil Hex.
type Hex []byte

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hex) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// MarshalJSON implements json.Marshaler.
func (h Hex) MarshalJSON() ([]byte, error) {
	return json.Marshal(hex.EncodeToString(h))
}
