// Package httpapi serves the optional HTTP listener of [node] http:
// /healthz for load balancers and dispatchers (200 only when the agent and
// its local Asterisk are healthy), /metrics in the Prometheus text format,
// the dashboard at / (embedded, web/), and /api/v1: the agent's status,
// job history and diffs, server-sent events, and the actions rollback,
// resume and sync now, which need the token of data_dir/http-token and
// pass a CSRF check (docs/api.md).
package httpapi
