package hypervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls a hypervisor's HTTP API. It is safe for concurrent use.
//
// Every method returns an *Error when the hypervisor answered with an
// error (test it with IsNotFound, IsImageRefused or errors.As), and another
// error when it could not be reached or its answer could not be read.
type Client struct {
	baseURL string
	http    *http.Client
}

// NewClient returns a Client for the hypervisor at baseURL, e.g.
// "http://127.0.0.1:8090". A nil httpClient means one with a 10s timeout.
func NewClient(baseURL string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), http: httpClient}
}

// Create creates a VM, idempotently on req.Token: if a VM exists for the
// token, it is returned as it is (whatever the rest of req says) and no
// second one is made.
func (c *Client) Create(ctx context.Context, req CreateRequest) (*VM, error) {
	var vm VM
	if err := c.do(ctx, http.MethodPost, "/vms", nil, req, &vm); err != nil {
		return nil, err
	}
	return &vm, nil
}

// Get returns the VM with the given ID.
func (c *Client) Get(ctx context.Context, id string) (*VM, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var vm VM
	if err := c.do(ctx, http.MethodGet, "/vms/"+url.PathEscape(id), nil, nil, &vm); err != nil {
		return nil, err
	}
	return &vm, nil
}

// FindByToken returns the VM created with token, or a NotFound error.
func (c *Client) FindByToken(ctx context.Context, token string) (*VM, error) {
	var vms []VM
	if err := c.do(ctx, http.MethodGet, "/vms", url.Values{"token": {token}}, nil, &vms); err != nil {
		return nil, err
	}
	if len(vms) == 0 {
		return nil, notFound("no vm with token %q", token)
	}
	return &vms[0], nil // the lowest ID, should there ever be more
}

// CheckImage asks whether the hypervisor would boot image: its catalogue
// check, without creating anything.
func (c *Client) CheckImage(ctx context.Context, image string) (*ImageCheck, error) {
	var check ImageCheck
	if err := c.do(ctx, http.MethodGet, "/images/check", url.Values{"image": {image}}, nil, &check); err != nil {
		return nil, err
	}
	return &check, nil
}

// List returns every VM, sorted by ID.
func (c *Client) List(ctx context.Context) ([]VM, error) {
	var vms []VM
	if err := c.do(ctx, http.MethodGet, "/vms", nil, nil, &vms); err != nil {
		return nil, err
	}
	return vms, nil
}

// SetPower asks for power p and returns the VM, whose State shows the
// transition started (Starting or Stopping). It is idempotent: asking for
// the power a VM has or is moving to changes nothing.
func (c *Client) SetPower(ctx context.Context, id string, p Power) (*VM, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var vm VM
	path := "/vms/" + url.PathEscape(id) + "/power"
	if err := c.do(ctx, http.MethodPost, path, nil, PowerRequest{Power: p}, &vm); err != nil {
		return nil, err
	}
	return &vm, nil
}

// Delete deletes the VM, whatever its state. It returns a NotFound error
// when the VM is already gone.
func (c *Client) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, "/vms/"+url.PathEscape(id), nil, nil, nil)
}

// Stats returns the hypervisor's counts.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var st Stats
	if err := c.do(ctx, http.MethodGet, "/stats", nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func checkID(id string) error {
	if id == "" {
		return badRequest("empty vm id")
	}
	return nil
}

// do sends a request with in as JSON body (if not nil) and decodes a 2xx
// answer into out (if not nil), any other into an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("hypervisor: encoding the request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("hypervisor: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("hypervisor: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("hypervisor: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, apiErr) != nil || apiErr.Code == "" {
			// Not the hypervisor's error format (a proxy, a wrong URL):
			// no Code, so that IsNotFound and friends stay false.
			apiErr.Code, apiErr.Message = "", strings.TrimSpace(string(data))
			if apiErr.Message == "" {
				apiErr.Message = http.StatusText(resp.StatusCode)
			}
		}
		apiErr.Status = resp.StatusCode
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("hypervisor: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}
