// Package llm holds the language-model providers of the Answer Runner
// behind the small Provider interface: the Anthropic Messages API, any
// OpenAI-compatible chat completions endpoint, and ProviderFunc (MCP
// sampling through the connected client is one). WithRetry wraps a
// provider with exponential backoff and jitter on rate limits, server
// errors and timeouts, honouring the provider's retry-after.
package llm
