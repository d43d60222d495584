package partition

import (
	"testing"

	"github.com/rein-k8s/rein/pkg/testenv"
)

// UngatedEnv is the control plane without the feature gate, for the
// external tests.
func UngatedEnv(t *testing.T) *testenv.Env { return ungated.Get(t) }
