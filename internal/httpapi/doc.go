// Package httpapi serves the optional HTTP listener of [node] http:
// /healthz for load balancers and dispatchers (200 only when the agent and
// its local Asterisk are healthy) and /metrics in the Prometheus text
// format, collected from the agent's status at scrape time.
package httpapi
