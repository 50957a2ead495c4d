package main

import (
	"errors"
	"os/exec"
	"runtime"
	"strings"
)

// openBrowser opens u with the program named in $BROWSER when set (as gh and git do: the value is
// split at spaces, "%s" in it is replaced by the URL, else the URL is appended), else with the
// platform's opener: open (macOS), rundll32 url.dll,FileProtocolHandler (Windows), xdg-open
// (elsewhere). The URL is passed as one argument, never through a shell. The program is started and
// not waited for: a browser may outlive the command.
func (g *globals) openBrowser(u string) error {
	var argv []string
	if b := strings.TrimSpace(g.getenv("BROWSER")); b != "" {
		argv = strings.Fields(b)
		replaced := false
		for i, a := range argv {
			if strings.Contains(a, "%s") {
				argv[i] = strings.ReplaceAll(a, "%s", u)
				replaced = true
			}
		}
		if !replaced {
			argv = append(argv, u)
		}
	} else {
		switch runtime.GOOS {
		case "darwin":
			argv = []string{"open", u}
		case "windows":
			argv = []string{"rundll32", "url.dll,FileProtocolHandler", u}
		default:
			argv = []string{"xdg-open", u}
		}
	}
	if len(argv) == 0 {
		return errors.New("$BROWSER is empty")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	// Stdin, Stdout and Stderr stay nil: the null device, so no copying goroutines.
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it; the login does not depend on the browser's exit
	return nil
}
