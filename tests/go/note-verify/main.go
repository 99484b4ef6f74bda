// Command note-verify checks a signed note (a bglass checkpoint, or a cosigned one) with Go's
// golang.org/x/mod/sumdb/note: an implementation of C2SP signed-note that shares no code
// with bglass. Usage: note-verify VERIFIER_KEY NOTE_FILE. Prints the note's text and exits 0
// when a signature by that key verifies; prints the error and exits 1 otherwise.
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: note-verify VERIFIER_KEY NOTE_FILE")
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifier key:", err)
		os.Exit(2)
	}
	msg, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fmt.Fprintln(os.Stderr, "note:", err)
		os.Exit(1)
	}
	fmt.Print(n.Text)
}
