package redisstore_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/smartfhir/smartfhir/redisstore"
)

// TestParseKeys: standard and URL base64, padded or not, separated by commas or white space, newest
// first; anything else is ErrConfig with the key's position and never its text.
func TestParseKeys(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(), newKey()
	std, url := base64.StdEncoding.EncodeToString(k1), base64.RawURLEncoding.EncodeToString(k2)
	for _, in := range []string{std + "," + url, " " + std + "\n" + url + "\t", std + ", " + url + ","} {
		keys, err := redisstore.ParseKeys(in)
		if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], k1) || !bytes.Equal(keys[1], k2) {
			t.Errorf("ParseKeys(%q) = %d keys, %v", in, len(keys), err)
		}
	}
	short := base64.StdEncoding.EncodeToString(k1[:16])
	for _, in := range []string{"", " , ", short, std + "," + short, std + ",not*base64", std + "," + std + "AAAA"} {
		_, err := redisstore.ParseKeys(in)
		if !errors.Is(err, redisstore.ErrConfig) {
			t.Errorf("ParseKeys(%q) = %v, want ErrConfig", in, err)
			continue
		}
		if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), std) {
			t.Errorf("error shows a key: %v", err)
		}
	}
}
