// Package flagenv parses a program's command line and environment into its
// config struct (kong), with the environment passed in as a function so a
// program's run stays callable from tests. It never reads os.Args or exits
// the process itself.
package flagenv

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// exit carries a kong exit (after --help) out of parsing without os.Exit.
type exit struct{ code int }

// Parse fills target from args, then from getenv for flags not given (each
// flag's `env` tag names the variables), then from defaults, and runs
// target's Validate (kong does, with those of groups embedded with
// `embed:""`). It returns a nil context and nil error after printing help.
func Parse(target any, args []string, getenv func(string) string, stdout io.Writer, opts ...kong.Option) (kctx *kong.Context, err error) {
	parser, err := kong.New(target, append(opts,
		kong.Writers(stdout, stdout),
		kong.Exit(func(code int) { panic(exit{code}) }),
		kong.Resolvers(envResolver(getenv)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("building flag parser: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exit)
			if !ok {
				panic(r)
			}
			kctx, err = nil, nil
			if e.code != 0 {
				err = fmt.Errorf("parsing flags: exit %d", e.code)
			}
		}
	}()
	kctx, err = parser.Parse(args)
	if err != nil {
		// kong runs the config's Validate while parsing; say which kind of
		// problem this is, so that a bad value is not read as bad syntax.
		if v, ok := target.(interface{ Validate() error }); ok {
			if verr := v.Validate(); verr != nil && verr.Error() == err.Error() {
				return nil, fmt.Errorf("invalid configuration: %w", err)
			}
		}
		return nil, fmt.Errorf("parsing flags: %w", err)
	}
	return kctx, nil
}

// envResolver makes kong read the `env` of each flag through getenv.
func envResolver(getenv func(string) string) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, name := range flag.Tag.Envs {
			if v := strings.TrimSpace(getenv(name)); v != "" {
				return v, nil
			}
		}
		return nil, nil
	})
}
