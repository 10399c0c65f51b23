package client

import (
	"context"
	"net/http"

	"github.com/costor/costor/server/api"
)

// Proto returns the protocol a whoami request to the server runs over.
func Proto(ctx context.Context, c *Client) (string, error) {
	var proto string
	r := &request{method: http.MethodGet, path: api.PathWhoami, action: "identify the token"}
	err := c.call(ctx, r, func(resp *http.Response) error {
		proto = resp.Proto
		return nil
	})
	return proto, err
}
