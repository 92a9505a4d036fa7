// Command netprobe is run inside RUN steps by the network tests: it tries
// what a hostile step would try and prints one line per attempt.
//
//	netprobe tcp ADDR      connect and read one line ("tcp ADDR: connected: LINE" or "tcp ADDR: failed: ...")
//	netprobe unix @NAME    connect to an abstract unix socket
//	netprobe packet IF     open an AF_PACKET socket and bind it to interface IF
//	netprobe ifaces        list the interfaces
//
// Several probes may follow one another on one command line.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	args := os.Args[1:]
	for len(args) > 0 {
		switch args[0] {
		case "ifaces":
			ifaces()
			args = args[1:]
			continue
		case "tcp", "unix", "packet":
			if len(args) < 2 {
				fmt.Println("usage: missing argument")
				os.Exit(2)
			}
		default:
			fmt.Println("usage: unknown probe", args[0])
			os.Exit(2)
		}
		what, arg := args[0], args[1]
		args = args[2:]
		var err error
		var line string
		switch what {
		case "tcp", "unix":
			line, err = dial(what, arg)
		case "packet":
			err = packet(arg)
		}
		if err != nil {
			fmt.Printf("%s %s: failed: %v\n", what, arg, err)
			continue
		}
		fmt.Printf("%s %s: connected: %s\n", what, arg, line)
	}
}

func dial(network, addr string) (string, error) {
	c, err := net.DialTimeout(network, addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), nil
}

func packet(name string) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("interface: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

func ifaces() {
	list, err := net.Interfaces()
	if err != nil {
		fmt.Println("ifaces: failed:", err)
		return
	}
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
	}
	fmt.Println("ifaces:", strings.Join(names, " "))
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
