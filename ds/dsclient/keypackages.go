package dsclient

import (
	"bytes"
	"context"
	"fmt"

	"github.com/mlskit/mls"
	mlsdv1 "github.com/mlskit/mls/proto/mlsd/v1"
)

// PublishKeyPackages creates n key packages of the client's suite, and a
// last-resort one if lastResort (RFC 9420, Section 16.8), and publishes them
// (RFC 9750, Section 5.1). It returns them as created.
func (c *Client) PublishKeyPackages(ctx context.Context, n int, lastResort bool) ([]*mls.KeyPackage, error) {
	if n < 0 || n > 1000 {
		return nil, fmt.Errorf("dsclient: %w: %d key packages", mls.ErrInvalidArgument, n)
	}
	var kps []*mls.KeyPackage
	var data [][]byte
	for i := 0; i < n+1; i++ {
		last := i == n
		if last && !lastResort {
			break
		}
		kp, err := c.mc.NewKeyPackage(ctx, c.suite, mls.KeyPackageOptions{LastResort: last})
		if err != nil {
			return nil, fmt.Errorf("dsclient: creating a key package: %w", err)
		}
		b, err := kp.MarshalMessage()
		if err != nil {
			return nil, fmt.Errorf("dsclient: encoding a key package: %w", err)
		}
		kps, data = append(kps, kp), append(data, b)
	}
	if len(data) == 0 {
		return nil, nil
	}
	if _, err := call(ctx, c, "PublishKeyPackages", c.rpc.PublishKeyPackages, &mlsdv1.PublishKeyPackagesRequest{KeyPackages: data}); err != nil {
		return nil, err
	}
	return kps, nil
}

// CountKeyPackages returns how many of the client's key packages of its
// suite the service can still hand out, and whether it holds a last-resort
// one.
func (c *Client) CountKeyPackages(ctx context.Context) (int, bool, error) {
	res, err := call(ctx, c, "CountKeyPackages", c.rpc.CountKeyPackages, &mlsdv1.CountKeyPackagesRequest{CipherSuite: uint32(c.suite)})
	if err != nil {
		return 0, false, err
	}
	return int(res.Count), res.HasLastResort, nil
}

// FetchKeyPackage takes one key package of identity, of the client's suite,
// from the service. The service is not trusted with it: the key package's
// signature is verified when it is parsed, and its credential must name
// identity.
func (c *Client) FetchKeyPackage(ctx context.Context, identity []byte) (*mls.KeyPackage, error) {
	res, err := call(ctx, c, "FetchKeyPackage", c.rpc.FetchKeyPackage, &mlsdv1.FetchKeyPackageRequest{Identity: identity, CipherSuite: uint32(c.suite)})
	if err != nil {
		return nil, err
	}
	msg, err := mls.ParseMessage(res.KeyPackage)
	if err != nil {
		return nil, fmt.Errorf("dsclient: key package of %q: %w", identity, err)
	}
	kp, err := msg.KeyPackage()
	if err != nil {
		return nil, fmt.Errorf("dsclient: key package of %q: %w", identity, err)
	}
	if got := kp.Credential().Identity(); !bytes.Equal(got, identity) {
		return nil, fmt.Errorf("%w: asked for a key package of %q, got one of %q", ErrUnexpected, identity, got)
	}
	if kp.CipherSuite() != c.suite {
		return nil, fmt.Errorf("%w: asked for a key package of suite %v, got %v", ErrUnexpected, c.suite, kp.CipherSuite())
	}
	return kp, nil
}
