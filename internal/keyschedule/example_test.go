package keyschedule_test

import (
	"bytes"
	"fmt"

	"github.com/mlskit/mls/ciphersuite"
	"github.com/mlskit/mls/internal/keyschedule"
)

func Example() {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	groupContext := []byte("encoded GroupContext of the new epoch")

	// The committer: init_secret of the old epoch -> new epoch.
	init, _ := keyschedule.GenerateInitSecret(s, bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	commitSecret := bytes.Repeat([]byte{2}, s.HashSize()) // from TreeKEM
	joiner, _ := init.Joiner(commitSecret, groupContext)
	mid, _ := joiner.Intermediate(nil) // no PSKs
	epoch, _ := mid.Epoch(groupContext)
	encryptedGroupInfo, _ := mid.Welcome().SealGroupInfo([]byte("GroupInfo"))

	// A new member gets joiner_secret from the Welcome's GroupSecrets.
	j2, _ := keyschedule.NewJoinerSecret(s, joiner.Bytes())
	mid2, _ := j2.Intermediate(nil)
	gi, _ := mid2.Welcome().OpenGroupInfo(encryptedGroupInfo)
	epoch2, _ := mid2.Epoch(groupContext)

	fmt.Printf("%s\n", gi)
	fmt.Println(epoch.Equal(epoch2))
	fmt.Println(epoch2)
	a, _ := epoch.Export("example", nil, 16)
	b, _ := epoch2.Export("example", nil, 16)
	fmt.Println(bytes.Equal(a, b))
	// Output:
	// GroupInfo
	// true
	// keyschedule.EpochSecrets{REDACTED}
	// true
}
