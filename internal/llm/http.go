package llm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"
)

// postJSON sends one JSON request body to endpoint with the given extra
// headers, bounded by timeout, and returns the reply with its body read
// (at most maxReplyBytes) and closed. A request that cannot be made is a
// *ProviderError; one that fails on the way (connection, timeout, a body
// cut short) is the provider's transport error, which the retry policy
// classifies. Statuses are left to the caller.
func postJSON(ctx context.Context, client *http.Client, provider, endpoint string, timeout time.Duration,
	headers http.Header, body []byte) (*http.Response, []byte, error) {
	attemptCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, nil, &ProviderError{Provider: provider, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range headers {
		req.Header[k] = v
	}
	res, err := client.Do(req)
	if err != nil {
		// The URL is in the provider's configuration already.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, newTransportError(provider, ctx, timeout, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxReplyBytes))
	if err != nil {
		return nil, nil, newTransportError(provider, ctx, timeout, err)
	}
	return res, raw, nil
}
