package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ParseSecret reads one --secret value as buildx does: "id=ID,src=FILE",
// "id=ID,env=VAR", with type=file|env, or just "id=ID", which is the
// variable ID when the environment has it and else the file ID. It
// returns the id and the value, at most 500 KB.
func ParseSecret(spec string, lookupEnv func(string) (string, bool)) (string, []byte, error) {
	var id, typ, src, env string
	for _, field := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return "", nil, fmt.Errorf("invalid --secret %q: want id=ID[,src=FILE|env=VAR]", spec)
		}
		switch strings.ToLower(k) {
		case "id":
			id = v
		case "type":
			typ = v
		case "src", "source":
			src = v
		case "env":
			env = v
		default:
			return "", nil, fmt.Errorf("invalid --secret %q: unknown key %s (use id, type, src, env)", spec, k)
		}
	}
	if id == "" {
		return "", nil, fmt.Errorf("invalid --secret %q: no id", spec)
	}
	if typ == "" {
		switch {
		case src != "":
			typ = "file"
		case env != "":
			typ = "env"
		default:
			if _, ok := lookupEnv(id); ok {
				typ = "env"
			} else {
				typ = "file"
			}
		}
	}
	switch typ {
	case "env":
		if env == "" {
			env = id
		}
		v, ok := lookupEnv(env)
		if !ok {
			return "", nil, fmt.Errorf("--secret id=%s: the variable %s is not set", id, env)
		}
		if len(v) > maxSecretSize {
			return "", nil, fmt.Errorf("--secret id=%s: the value is larger than 500 KB", id)
		}
		return id, []byte(v), nil
	case "file":
		if src == "" {
			src = id
		}
		data, err := readSecretFile(src)
		if err != nil {
			return "", nil, fmt.Errorf("--secret id=%s: %w", id, err)
		}
		return id, data, nil
	}
	return "", nil, fmt.Errorf("invalid --secret %q: type %s (use file or env)", spec, typ)
}

func readSecretFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretSize {
		return nil, fmt.Errorf("%s is larger than 500 KB", name)
	}
	return data, nil
}

// ParseSSH reads one --ssh value: "default" (or any ID) for the agent
// $SSH_AUTH_SOCK names, or "ID=PATH", PATH an agent's socket or an
// unencrypted private key file. It returns the id and the path.
func ParseSSH(spec string, lookupEnv func(string) (string, bool)) (string, string, error) {
	id, p, ok := strings.Cut(spec, "=")
	if id == "" {
		return "", "", fmt.Errorf("invalid --ssh %q: want default, ID or ID=PATH", spec)
	}
	if !ok {
		if p, ok = lookupEnv("SSH_AUTH_SOCK"); !ok || p == "" {
			return "", "", fmt.Errorf("--ssh %s: SSH_AUTH_SOCK is not set (start ssh-agent, or give --ssh %s=SOCKET|KEY)", id, id)
		}
	}
	if strings.Contains(p, ",") {
		return "", "", errors.New("--ssh: one socket or key per id")
	}
	if _, err := agentServer(p); err != nil {
		return "", "", fmt.Errorf("--ssh %s: %w", id, err)
	}
	return id, p, nil
}
