// Command cosig-verify checks C2SP tlog-cosignature/v1 cosignatures (Ed25519, signature type
// 0x04) on a checkpoint. It is written from the specification with Go's standard library,
// and reads the note with golang.org/x/mod/sumdb/note: it shares no code with bglass.
//
// Usage: cosig-verify LOG_VERIFIER_KEY NOTE_FILE NAME=BASE64_ED25519_KEY...
//
// The note must carry a valid signature by the log's key, and a valid cosignature by every
// cosigner given; it prints "NAME time T" for each and exits 0. Otherwise it names what
// failed and exits 1.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

const cosignatureV1 = 0x04

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}

// keyID is the first four bytes of SHA-256(name || 0x0A || type || public key), as the
// signed-note specification defines key IDs.
func keyID(name string, pub []byte) []byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', cosignatureV1})
	h.Write(pub)
	return h.Sum(nil)[:4]
}

func main() {
	if len(os.Args) < 4 {
		fail(2, "usage: cosig-verify LOG_VERIFIER_KEY NOTE_FILE NAME=BASE64_ED25519_KEY...")
	}
	verifier, err := note.NewVerifier(os.Args[1])
	if err != nil {
		fail(2, "verifier key: %v", err)
	}
	msg, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail(2, "%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail(1, "note: %v", err)
	}
	for _, arg := range os.Args[3:] {
		name, b64, ok := strings.Cut(arg, "=")
		pub, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil || len(pub) != ed25519.PublicKeySize {
			fail(2, "cosigner %q: give NAME=BASE64 of a 32-byte Ed25519 key", arg)
		}
		id := keyID(name, pub)
		found := false
		for _, sig := range n.UnverifiedSigs {
			if sig.Name != name || sig.Hash != binary.BigEndian.Uint32(id) {
				continue
			}
			raw, err := base64.StdEncoding.DecodeString(sig.Base64)
			// key ID (4 bytes) || timestamp (8 bytes, big-endian) || signature (64 bytes)
			if err != nil || len(raw) != 4+8+ed25519.SignatureSize || !bytes.Equal(raw[:4], id) {
				continue
			}
			t := binary.BigEndian.Uint64(raw[4:12])
			signed := fmt.Sprintf("cosignature/v1\ntime %d\n%s", t, n.Text)
			if ed25519.Verify(pub, []byte(signed), raw[12:]) {
				fmt.Printf("%s time %d\n", name, t)
				found = true
				break
			}
		}
		if !found {
			fail(1, "no valid cosignature by %s", name)
		}
	}
}
