package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// dockerHubAuthKey is where docker keeps Docker Hub's credentials.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// authKey is the key of host's credentials in docker's config file.
func authKey(host string) string {
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return dockerHubAuthKey
	}
	return host
}

// CheckLogin asks the registry at host whether user and password are
// good, as docker login does, by authenticating a request for /v2/.
func (c *Client) CheckLogin(ctx context.Context, host, user, password string) error {
	opts := []name.Option{}
	if PlainHTTP(host, c.opts.Insecure) {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, opts...)
	if err != nil {
		return fmt.Errorf("invalid registry %q: %w", host, err)
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	tr, err := transport.NewWithContext(ctx, reg, auth, c.transport(), []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", host, explainLogin(err, host))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", host, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return fmt.Errorf("logging in to %s: %w", host, explainLogin(err, host))
	}
	return nil
}

func explainLogin(err error, host string) error {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("%s refused the user name or password", host)
	}
	return err
}

// SaveLogin stores the credentials for host where docker login stores
// them: the credential helper docker's config names, else the config
// file itself ($DOCKER_CONFIG/config.json or ~/.docker/config.json). It
// returns the file it wrote.
func SaveLogin(host, user, password string) (string, error) {
	cf, err := config.Load("")
	if err != nil {
		return "", err
	}
	key := authKey(host)
	if err := cf.GetCredentialsStore(key).Store(types.AuthConfig{Username: user, Password: password, ServerAddress: key}); err != nil {
		return "", fmt.Errorf("storing the credentials for %s: %w", host, err)
	}
	if err := cf.Save(); err != nil {
		return "", fmt.Errorf("saving %s: %w", cf.GetFilename(), err)
	}
	return cf.GetFilename(), nil
}

// Logout removes host's credentials from docker's config (and its
// credential helper). It reports whether there were any.
func Logout(host string) (bool, error) {
	cf, err := config.Load("")
	if err != nil {
		return false, err
	}
	key := authKey(host)
	if _, ok := cf.AuthConfigs[key]; !ok && cf.CredentialsStore == "" && cf.CredentialHelpers[key] == "" {
		return false, nil
	}
	if err := cf.GetCredentialsStore(key).Erase(key); err != nil {
		return false, fmt.Errorf("removing the credentials for %s: %w", host, err)
	}
	if err := cf.Save(); err != nil {
		return false, fmt.Errorf("saving %s: %w", cf.GetFilename(), err)
	}
	return true, nil
}

// NormalizeRegistry turns what a user gives to login (a host, a URL,
// docker.io) into the host name the rest of the code uses.
func NormalizeRegistry(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	if s == "" || s == "docker.io" || s == "index.docker.io" {
		return name.DefaultRegistry
	}
	return s
}
