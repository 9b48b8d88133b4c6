// Package remotemon is the Remote Host Monitor: the QUIC connections to every
// peer and what is known about each peer.
//
// One UDP socket serves both directions: the node listens on [node] listen
// and dials every configured peer from the same socket. Both ends present
// self-signed Ed25519 certificates (TLS 1.3, mutual authentication); each
// side accepts only the node IDs pinned in its config, inside the TLS
// handshake, so an unknown or mismatched node is refused before a single
// frame of job data moves, and the refusal is logged with the presented ID.
//
// A connection carries one control stream (opened by the dialer, starting
// with wire.Hello) and one stream per transfer. Since both ends dial, two
// connections may exist between a pair of nodes; both are used, sends go on
// the most recent. Ping/Pong on the control stream measure RTT and
// liveness; QUIC keep-alives and a short idle timeout notice a dead peer
// within seconds, and a stateless-reset key derived from the node key makes a
// restarted peer close stale connections at once. Dialers reconnect with
// exponential backoff and jitter.
package remotemon
