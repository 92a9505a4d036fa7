package main

import (
	"os"

	"github.com/builderdev/builder/executor"
)

func main() {
	if executor.ReexecMain() {
		return
	}
	os.Exit(2)
}
