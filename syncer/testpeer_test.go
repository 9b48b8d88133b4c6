package syncer

// A test peer that speaks the wire protocol by hand over real QUIC on
// 127.0.0.1 with a pinned identity: it can stall (stop reading its control
// stream) or send whatever frames a hostile peer would.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"

	"pbxsync/internal/wire"
)

// testPeer is one hand-driven connection from node n's identity to an
// agent.
type testPeer struct {
	qc    *quic.Conn
	ctrl  *quic.Stream
	codec *wire.Codec
}

// dialTestPeer connects to addr as n (its identity and name) and exchanges
// Hellos on the control stream.
func dialTestPeer(ctx context.Context, n *tnode, addr string) (*testPeer, error) {
	codec, err := wire.NewCodec()
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{n.id.Certificate},
		NextProtos: []string{"pbxsync/1"}, ServerName: "pbxsync", InsecureSkipVerify: true}
	qc, err := quic.DialAddr(ctx, addr, conf, &quic.Config{KeepAlivePeriod: 200 * time.Millisecond, MaxIdleTimeout: time.Minute})
	if err != nil {
		codec.Close()
		return nil, fmt.Errorf("test peer %s: dial %s: %w", n.name, addr, err)
	}
	p := &testPeer{qc: qc, codec: codec}
	if p.ctrl, err = qc.OpenStreamSync(ctx); err != nil {
		p.close()
		return nil, err
	}
	if err := codec.Write(p.ctrl, &wire.Hello{Node: n.name, Agent: "test-peer"}); err != nil {
		p.close()
		return nil, err
	}
	p.ctrl.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := codec.Read(p.ctrl); err != nil {
		p.close()
		return nil, fmt.Errorf("test peer %s: no Hello back: %w", n.name, err)
	}
	p.ctrl.SetReadDeadline(time.Time{})
	return p, nil
}

func (p *testPeer) close() {
	p.qc.CloseWithError(0, "")
	p.codec.Close()
}

// closed is done when the agent (or anything) ended the connection.
func (p *testPeer) closed() <-chan struct{} { return p.qc.Context().Done() }

// stall keeps the connection alive with Pings and reads nothing, until ctx
// is done or the connection ends.
func (p *testPeer) stall(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-p.closed():
			return
		case <-tick.C:
		}
		if err := p.codec.Write(p.ctrl, &wire.Ping{Seq: seq}); err != nil {
			return
		}
	}
}

// drain reads and drops whatever the agent sends on the control stream
// (a hostile peer still reads, so only its own frames are the test).
func (p *testPeer) drain() {
	buf := make([]byte, 64<<10)
	for {
		if _, err := p.ctrl.Read(buf); err != nil {
			return
		}
	}
}

// frame builds a raw frame: header (version, type, flags) and payload as
// given, however wrong.
func rawFrame(version, typ, flags byte, payload []byte) []byte {
	out := make([]byte, wire.HeaderSize, wire.HeaderSize+len(payload))
	out[0], out[1], out[2] = version, typ, flags
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	return append(out, payload...)
}

// send writes b on the control stream.
func (p *testPeer) send(b []byte) error {
	p.ctrl.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := p.ctrl.Write(b)
	return err
}

// sendMessage encodes m and writes it on the control stream.
func (p *testPeer) sendMessage(m wire.Message) error {
	b, err := p.codec.Encode(m)
	if err != nil {
		return err
	}
	return p.send(b)
}
