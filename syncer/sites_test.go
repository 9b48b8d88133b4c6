package syncer

import (
	"reflect"
	"testing"
	"time"
)

func TestRoutes(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		own     string
		targets []siteTarget
		current map[string]string
		want    map[string]string
	}{
		{"no sites: everything direct", "", []siteTarget{{Name: "b", Up: true}, {Name: "c", Up: true}}, nil, map[string]string{}},
		{"own site only", "dc1", []siteTarget{{Name: "b", Site: "dc1", Up: true}}, nil, map[string]string{}},
		{"lowest RTT", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: true, RTT: 30 * ms, ID: "B"},
			{Name: "c", Site: "dc2", Up: true, RTT: 20 * ms, ID: "C"},
		}, nil, map[string]string{"dc2": "c"}},
		{"relay = true beats RTT", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: true, RTT: 30 * ms, Relay: true},
			{Name: "c", Site: "dc2", Up: true, RTT: 20 * ms},
		}, nil, map[string]string{"dc2": "b"}},
		{"a down relay = true is passed over", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: false, Relay: true},
			{Name: "c", Site: "dc2", Up: true, RTT: 20 * ms},
		}, nil, map[string]string{"dc2": "c"}},
		{"unmeasured RTT last, then ID", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: true, ID: "A"},
			{Name: "c", Site: "dc2", Up: true, RTT: 90 * ms, ID: "Z"},
			{Name: "d", Site: "dc3", Up: true, ID: "Y"},
			{Name: "e", Site: "dc3", Up: true, ID: "X"},
		}, nil, map[string]string{"dc2": "c", "dc3": "e"}},
		{"tie on RTT: lowest ID", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: true, RTT: ms, ID: "Q"},
			{Name: "c", Site: "dc2", Up: true, RTT: ms, ID: "P"},
		}, nil, map[string]string{"dc2": "c"}},
		{"the current relay stays while up", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: true, RTT: 30 * ms},
			{Name: "c", Site: "dc2", Up: true, RTT: 20 * ms},
		}, map[string]string{"dc2": "b"}, map[string]string{"dc2": "b"}},
		{"the current relay gives way to an up relay = true", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: true, RTT: 30 * ms},
			{Name: "c", Site: "dc2", Up: true, RTT: 40 * ms, Relay: true},
		}, map[string]string{"dc2": "b"}, map[string]string{"dc2": "c"}},
		{"the current relay is down: another takes over", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: false, RTT: 10 * ms},
			{Name: "c", Site: "dc2", Up: true, RTT: 40 * ms},
		}, map[string]string{"dc2": "b"}, map[string]string{"dc2": "c"}},
		{"an unfit target relays only when nobody else can", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: true, Relay: true, Unfit: true},
			{Name: "c", Site: "dc2", Up: true, RTT: 40 * ms},
			{Name: "d", Site: "dc3", Up: true, Unfit: true},
		}, map[string]string{"dc2": "b"}, map[string]string{"dc2": "c", "dc3": "d"}},
		{"a site with nobody up has no relay", "dc1", []siteTarget{
			{Name: "b", Site: "dc2", Up: false},
		}, nil, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := routes(tc.own, tc.targets, tc.current); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestViaOf(t *testing.T) {
	t.Parallel()
	relays := map[string]string{"dc2": "b"}
	for _, tc := range []struct {
		t       siteTarget
		via     string
		reached bool
	}{
		{siteTarget{Name: "x", Site: "dc1", Up: true}, "", true},
		{siteTarget{Name: "x", Site: "dc1", Up: false}, "", false},
		{siteTarget{Name: "b", Site: "dc2", Up: true}, "", true},
		{siteTarget{Name: "c", Site: "dc2", Up: false}, "b", true}, // reached through b, up or not
		{siteTarget{Name: "d", Site: "dc3", Up: true}, "", false},  // dc3 has no relay
	} {
		via, ok := viaOf("dc1", tc.t, relays)
		if via != tc.via || ok != tc.reached {
			t.Errorf("viaOf(%+v) = %q, %v; want %q, %v", tc.t, via, ok, tc.via, tc.reached)
		}
	}
}
