// Command agentprobe is run inside RUN steps by the ssh mount test: it
// lists the keys of the ssh agent at $SSH_AUTH_SOCK, one "FINGERPRINT
// COMMENT" line each, as "ssh-add -l" does (the test image has no
// ssh-add).
package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func main() {
	conn, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentprobe:", err)
		os.Exit(1)
	}
	keys, err := agent.NewClient(conn).List()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentprobe:", err)
		os.Exit(1)
	}
	for _, k := range keys {
		pub, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			fmt.Fprintln(os.Stderr, "agentprobe:", err)
			os.Exit(1)
		}
		fmt.Println(ssh.FingerprintSHA256(pub), k.Comment)
	}
}
