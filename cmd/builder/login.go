package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/builderdev/builder/registry"
)

var cmdLogin = &command{
	Name:  "login",
	Args:  "[flags] REGISTRY",
	Short: "Log in to a registry",
	Long: `
Login checks a user name and password with REGISTRY and stores them where
docker login does: the credential helper named in docker's config, else
$DOCKER_CONFIG/config.json or ~/.docker/config.json. Pull, push and build
read them from there. The password comes from stdin with --password-stdin,
so that it stays out of the shell history and the process list.`,
	Example: `
builder login 127.0.0.1:5000 -u ci --password-stdin < password.txt
echo "$TOKEN" | builder login ghcr.io -u me --password-stdin`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		var user string
		var stdin bool
		var insecure []string
		fs.StringVarP(&user, "username", "u", "", "the `USER` name")
		fs.BoolVar(&stdin, "password-stdin", false, "read the password from stdin")
		registerInsecureFlag(fs, &insecure)
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 1, "REGISTRY"); err != nil {
				return err
			}
			if user == "" || !stdin {
				return usagef("login needs -u USER and --password-stdin (the password is read from stdin)")
			}
			data, err := io.ReadAll(io.LimitReader(a.stdin, 64<<10))
			if err != nil {
				return fmt.Errorf("reading the password from stdin: %w", err)
			}
			password := strings.TrimRight(string(data), "\r\n")
			if password == "" {
				return usagef("the password on stdin is empty")
			}
			host := registry.NormalizeRegistry(args[0])
			client := registry.New(nil, registry.Options{Insecure: env.insecureRegistries(insecure)})
			if err := client.CheckLogin(ctx, host, user, password); err != nil {
				return err
			}
			file, err := registry.SaveLogin(host, user, password)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "Login Succeeded (credentials for %s in %s)\n", host, file)
			return nil
		}
	},
}

var cmdLogout = &command{
	Name:  "logout",
	Args:  "REGISTRY",
	Short: "Forget the credentials of a registry",
	Long: `
Logout removes the credentials that login (or docker login) stored for
REGISTRY.`,
	Example: `builder logout ghcr.io`,
	Setup: func(fs *pflag.FlagSet, env *environment) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			if err := exactArgs(args, 1, "REGISTRY"); err != nil {
				return err
			}
			host := registry.NormalizeRegistry(args[0])
			had, err := registry.Logout(host)
			if err != nil {
				return err
			}
			if !had {
				fmt.Fprintf(a.stderr, "Not logged in to %s\n", host)
				return nil
			}
			fmt.Fprintf(a.stderr, "Removing login credentials for %s\n", host)
			return nil
		}
	},
}
