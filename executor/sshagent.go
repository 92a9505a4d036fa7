package executor

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/builderdev/builder/executor/container"
	"github.com/builderdev/builder/parser"
)

// sshMount gives a RUN step the ssh agent --ssh named for the mount's id,
// through a socket of the step's own in dir, owned by the mount's uid and
// gid with its mode (0600), as BuildKit's forwarding socket is: the
// step's user reaches the agent whatever the host socket's owner. For a
// key file instead of a socket, the socket serves an agent of the
// builder's that holds that key. SSH_AUTH_SOCK points at the target.
func (b *build) sshMount(sm *stepMounts, m parser.RunMount, target, dir string) error {
	id := m.ID
	if id == "" {
		id = "default"
	}
	src, ok := b.opts.SSH[id]
	if !ok {
		return fmt.Errorf("no ssh agent for id %s: pass --ssh %s=SOCKET", id, id)
	}
	serve, err := agentServer(src)
	if err != nil {
		return fmt.Errorf("--ssh %s: %w", id, err)
	}
	// A socket's path is at most 107 bytes, and the store's may be
	// longer: the directory is reached through a descriptor instead.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	sock := fmt.Sprintf("/proc/self/fd/%d/agent.sock", d.Fd())
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // the step's directory goes whole
	uid, gid, mode := 0, 0, os.FileMode(0o600)
	if m.UID != nil {
		uid = *m.UID
	}
	if m.GID != nil {
		gid = *m.GID
	}
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode & 0o777)
	}
	if err := os.Chown(sock, uid, gid); err != nil {
		l.Close()
		return err
	}
	if err := os.Chmod(sock, mode); err != nil {
		l.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return // closed with the step
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	sm.release = append(sm.release, func() error {
		err := l.Close()
		wg.Wait()
		return err
	})
	sm.mounts = append(sm.mounts, container.Mount{Target: target, Source: dir, SubPath: "agent.sock"})
	sm.env = append(sm.env, "SSH_AUTH_SOCK="+target)
	return nil
}

// agentServer returns what serves one connection of a step: a relay to
// the agent socket src, or an agent holding the key in the file src.
func agentServer(src string) (func(conn net.Conn), error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSocket != 0 {
		return func(conn net.Conn) {
			up, err := net.Dial("unix", src)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(up, conn)
				up.(*net.UnixConn).CloseWrite()
				close(done)
			}()
			io.Copy(conn, up)
			conn.(*net.UnixConn).CloseWrite()
			<-done
		}, nil
	}
	data, err := readSecretFile(src)
	if err != nil {
		return nil, err
	}
	key, err := ssh.ParseRawPrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("%s is encrypted: add it to an ssh-agent and pass its socket", src)
	}
	if err != nil {
		return nil, fmt.Errorf("%s is neither an agent socket nor a private key: %w", src, err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key, Comment: filepath.Base(src)}); err != nil {
		return nil, err
	}
	return func(conn net.Conn) { agent.ServeAgent(keyring, conn) }, nil
}
