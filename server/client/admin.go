package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/costor/costor/server/api"
)

// Whoami returns the identity the token stands for.
func (c *Client) Whoami(ctx context.Context) (api.Whoami, error) {
	r := &request{method: http.MethodGet, path: api.PathWhoami, action: "identify the token", retry: true}
	var w api.Whoami
	if err := c.getJSONInto(ctx, r, api.MaxJSONBody, &w); err != nil {
		return api.Whoami{}, err
	}
	c.mu.Lock()
	c.identity = &w
	c.mu.Unlock()
	return w, nil
}

// jsonRequest is a request whose body is v's JSON encoding.
func jsonRequest(method, path, action string, v any, retry bool) (*request, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", action, err)
	}
	return &request{
		method: method, path: path, action: action,
		body: func() io.Reader { return bytes.NewReader(body) }, bodyLen: int64(len(body)),
		contentType: "application/json", retry: retry,
	}, nil
}

// CreateToken creates a token (admin); the answer holds its secret, shown
// this once. Not retried: a lost answer would leave two tokens.
func (c *Client) CreateToken(ctx context.Context, req api.TokenRequest) (api.TokenCreated, error) {
	r, err := jsonRequest(http.MethodPost, api.PathTokens, "create tokens", req, false)
	if err != nil {
		return api.TokenCreated{}, err
	}
	var out api.TokenCreated
	if err := c.getJSONInto(ctx, r, api.MaxJSONBody, &out); err != nil {
		return api.TokenCreated{}, err
	}
	if out.Secret == "" {
		return api.TokenCreated{}, fmt.Errorf("%s at %s: bad answer: no secret", r.action, c.base)
	}
	return out, nil
}

// ListTokens lists the server's tokens (admin), revoked ones included.
func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	r := &request{method: http.MethodGet, path: api.PathTokens, action: "list tokens", retry: true}
	var out []api.Token
	if err := c.getJSONInto(ctx, r, maxListBody, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeToken revokes the token with that ID (admin); an unknown ID
// gives an error wrapping storage.ErrNotExist. Not retried, like every
// DELETE: a repeat after a lost answer could report success as an error.
func (c *Client) RevokeToken(ctx context.Context, tokenID string) error {
	if tokenID == "" {
		return fmt.Errorf("revoke token at %s: no token ID given", c.base)
	}
	r := &request{method: http.MethodDelete, path: api.PathTokens + "/" + url.PathEscape(tokenID), action: "revoke token " + tokenID}
	return c.call(ctx, r, nil)
}

// Audit returns the audit log's entries since that time (zero: all),
// after the server verified their hash chain.
func (c *Client) Audit(ctx context.Context, since time.Time) ([]api.AuditEntry, error) {
	path := api.PathAudit
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	r := &request{method: http.MethodGet, path: path, action: "read the audit log", retry: true}
	var out []api.AuditEntry
	if err := c.getJSONInto(ctx, r, maxListBody, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Prune asks the server to delete what no snapshot references (admin).
// It waits for the server as long as ctx allows: a prune of a large
// repository takes minutes.
func (c *Client) Prune(ctx context.Context, req api.PruneRequest) (api.PruneResult, error) {
	r, err := jsonRequest(http.MethodPost, api.PathPrune, "prune", req, false)
	if err != nil {
		return api.PruneResult{}, err
	}
	r.noDeadline = true
	var out api.PruneResult
	if err := c.getJSONInto(ctx, r, api.MaxJSONBody, &out); err != nil {
		return api.PruneResult{}, err
	}
	return out, nil
}
