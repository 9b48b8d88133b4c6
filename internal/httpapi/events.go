package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Pace of /api/v1/events: the status is looked at every statusEvery and
// sent when it changed; this node's own state every nodeEvery (it asks the
// local Asterisk); a comment keeps idle proxies from closing the stream.
const (
	statusEvery = time.Second
	nodeEvery   = 5 * time.Second
	pingEvery   = 15 * time.Second
)

// events is the server-sent event stream of the dashboard: "status" events
// carry /api/v1/status, "node" events /api/v1/node, each when it changed.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	select {
	case s.streams <- struct{}{}:
		defer func() { <-s.streams }()
	default:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many event streams open (%d)", maxStreams))
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")

	var lastStatus, lastNode []byte
	var nodeAt, pingAt time.Time
	send := func(event string, v any, last *[]byte, ignoreUptime bool) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		key := b
		if ignoreUptime {
			key = withoutUptime(b)
		}
		if bytes.Equal(key, *last) {
			return nil
		}
		*last = key
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		now := time.Now()
		if err := send("status", s.opts.Source.Status(), &lastStatus, true); err != nil {
			return
		}
		if now.Sub(nodeAt) >= nodeEvery {
			nodeAt = now
			if st := s.localState(); st != nil {
				if err := send("node", st, &lastNode, false); err != nil {
					return
				}
			}
		}
		if now.Sub(pingAt) >= pingEvery {
			pingAt = now
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// withoutUptime returns a status's JSON without its uptime, which changes
// every second: a status is sent again when something else changed.
func withoutUptime(b []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	delete(m, "uptime_s")
	out, err := json.Marshal(m)
	if err != nil {
		return b
	}
	return out
}
