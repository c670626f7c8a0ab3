package testenv

import (
	"net/http"
	"os"
	"testing"
	"time"
)

// SchemaRegistryURL is the Confluent-compatible API of the local schema
// registry (scripts/registry.sh starts it). Tests that need it call
// RequireSchemaRegistry instead.
func SchemaRegistryURL() string {
	return getenv("STOCK_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
}

// RequireSchemaRegistry returns SchemaRegistryURL when the registry answers.
// When it does not, the test is skipped on a developer's machine, but fails
// in CI (CI set in the environment), where a skipped registry test would
// hide a broken registry path.
func RequireSchemaRegistry(t testing.TB) string {
	t.Helper()
	url := SchemaRegistryURL()
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url + "/subjects")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return url
		}
		err = &statusError{resp.Status}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("schema registry at %s: %v (start it with scripts/registry.sh up)", url, err)
	}
	t.Skipf("schema registry at %s: %v (start it with scripts/registry.sh up)", url, err)
	return ""
}

type statusError struct{ status string }

func (e *statusError) Error() string { return "answered " + e.status }
