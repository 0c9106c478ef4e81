package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
)

const (
	hashKey   = `,"hash":"`
	hashLen   = 64
	hashTail  = len(hashKey) + hashLen + len(`"}`) // the bytes a line ends with, before "\n"
	emptyHash = `,"hash":""}`
)

// encode appends to dst the line for r (whose Seq and Prev are set): its
// canonical bytes with the hash member appended, and a final "\n".
func encode(dst []byte, r Record) (line []byte, hash string, err error) {
	r.Hash = ""
	b, err := json.Marshal(r)
	if err != nil {
		return dst, "", err
	}
	if !bytes.HasSuffix(b, []byte(emptyHash)) {
		return dst, "", errors.New("record encoding does not end with its hash member")
	}
	canon := append(b[:len(b)-len(emptyHash)], '}')
	sum := sha256.Sum256(canon)
	hash = hex.EncodeToString(sum[:])
	line = append(dst, canon[:len(canon)-1]...)
	line = append(line, hashKey...)
	line = append(line, hash...)
	line = append(line, "\"}\n"...)
	return line, hash, nil
}

// link is what the chain needs from one line.
type link struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
	Hash string `json:"-"`
}

// checkLine checks one line (without its "\n") on its own: its form and its
// hash. It returns the reason it fails, or "".
func checkLine(line []byte) (link, string) {
	n := len(line)
	if n < hashTail+2 || line[0] != '{' ||
		!bytes.Equal(line[n-hashTail:n-hashTail+len(hashKey)], []byte(hashKey)) ||
		!bytes.HasSuffix(line, []byte(`"}`)) {
		return link{}, "malformed record: it does not end with its hash member"
	}
	want := line[n-hashLen-2 : n-2]
	for _, c := range want {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return link{}, "malformed record: the hash is not 64 lowercase hex digits"
		}
	}
	canon := make([]byte, 0, n-hashTail+1)
	canon = append(canon, line[:n-hashTail]...)
	canon = append(canon, '}')
	sum := sha256.Sum256(canon)
	got := hex.EncodeToString(sum[:])
	if got != string(want) {
		return link{}, "hash does not match the record's contents"
	}
	var c link
	if err := json.Unmarshal(canon, &c); err != nil {
		return link{}, "malformed record: " + err.Error()
	}
	c.Hash = got
	return c, ""
}
