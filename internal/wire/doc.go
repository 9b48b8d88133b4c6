// Package wire is pbxsync's peer protocol: length-bounded, versioned frames
// carrying one message each, on QUIC streams.
//
// A frame is an 8-byte header followed by its payload:
//
//	byte 0   protocol version (Version)
//	byte 1   message type (Type)
//	byte 2   flags: bit 0 set = payload is zstd-compressed
//	byte 3   reserved, zero
//	byte 4-7 payload length, big-endian, at most MaxFrame
//
// The payload is the JSON encoding of the message (a Data frame's, the
// one before every fetched file, is written and read in its one canonical
// form without reflection: data_json.go); payloads over
// CompressAbove bytes are zstd-compressed where that makes them smaller
// (an announcement of one edit is a few hundred bytes, a third of them
// saved; a Get, mostly hashes, is not compressed), and must not expand
// beyond MaxDecoded. A decoder never trusts its input: every length is bounded,
// unknown fields are refused, and every message is validated (Validate) before
// it is returned, so paths, hashes and sizes reaching the rest of the agent
// have been checked (relative, clean paths without "..", 32-byte hashes,
// non-negative sizes).
//
// Each connection has one control stream (Hello, Announce, Result, Ping,
// Pong, State) and one stream per transfer: the requester writes Get, the
// owner answers Data followed by exactly Data.Size raw bytes, or Error.
package wire
