// Package archtest holds the test that keeps the arrows of the house (see
// DESIGN.md): which part may import which. It has no code outside tests.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/stockpipe/stock/"

// deps lists every package pattern's transitive imports.
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", pattern).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pattern, err)
	}
	res := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		res[p.ImportPath] = p.Deps
	}
	return res
}

func TestArrowsOfTheHouse(t *testing.T) {
	kafka := []string{"github.com/twmb/franz-go"}
	postgres := []string{"github.com/jackc/pgx", "github.com/jackc/pglogrepl"}
	redis := []string{"github.com/redis/go-redis"}
	http := []string{"github.com/labstack/echo"}
	programs := []string{module + "producer", module + "projector", module + "query-api"}
	for _, rule := range []struct {
		pattern   string
		forbidden []string
		why       string
	}{
		{"../../producer/...", append(append(redis, http...), module+"projector", module+"query-api", module+"internal/stockstore"),
			"the producer knows nothing of Redis or HTTP serving, nor of the other programs"},
		{"../../projector/...", append(append(postgres, http...), module+"producer", module+"query-api"),
			"the projector knows nothing of PostgreSQL or HTTP serving besides its metrics endpoint"},
		{"../../query-api/...", append(append(kafka, postgres...), module+"producer", module+"projector"),
			"the query API reads Redis only"},
		{"../../schemas/...", append(append([]string{}, programs...), redis...),
			"the Kafka contract never imports a program or Redis"},
		{"../../internal/...", programs, "shared code never imports a program folder"},
	} {
		t.Run(rule.pattern, func(t *testing.T) {
			for pkg, ds := range deps(t, rule.pattern) {
				if strings.HasSuffix(pkg, ".test") || strings.Contains(pkg, "internal/archtest") || strings.Contains(pkg, "internal/e2e") {
					continue
				}
				for _, d := range ds {
					for _, f := range rule.forbidden {
						if d == f || strings.HasPrefix(d, f+"/") {
							t.Errorf("%s imports %s: %s", pkg, d, rule.why)
						}
					}
				}
			}
		})
	}
}

// TestNothingImportsScripts keeps the tools and benchmarks under scripts/ a
// leaf: they may import the programs' packages, but no program, shared
// package or test may depend on them, so that a change to a benchmark never
// reaches what ships. Test imports count too; there is no exemption.
func TestNothingImportsScripts(t *testing.T) {
	scripts := module + "scripts"
	out, err := exec.Command("go", "list", "-json", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		seen++
		if p.ImportPath == scripts || strings.HasPrefix(p.ImportPath, scripts+"/") {
			continue
		}
		for _, imps := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
			for _, d := range imps {
				if d == scripts || strings.HasPrefix(d, scripts+"/") {
					t.Errorf("%s imports %s: nothing outside scripts/ imports it", p.ImportPath, d)
				}
			}
		}
	}
	// A pattern that matched nothing would pass for the wrong reason.
	if seen < 10 {
		t.Fatalf("go list ../../... listed %d packages", seen)
	}
}
