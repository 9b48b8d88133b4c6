package config

import "testing"

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		value string // TOML value; "" leaves the key out
		want  int64
	}{
		{"", DefaultMemoryLimit},
		{`"off"`, 0},
		{"0", 0},
		{`"0"`, 0},
		{`"64MiB"`, 64 << 20},
		{`"512 MB"`, 512e6},
		{`"1GiB"`, 1 << 30},
		{`"300KiB"`, 300 << 10},
		{`"4096"`, 4096},
		{`"4096B"`, 4096},
	} {
		text := node
		if c.value != "" {
			text += "memory_limit = " + c.value + "\n"
		}
		cfg := mustParse(t, text+"[[peer]]\nname = \"b\"\naddress = \"10.0.0.2:7420\"\nid = \""+id2+"\"\n"+job)
		if cfg.Node.MemoryLimit != c.want {
			t.Errorf("memory_limit = %s: got %d, want %d", c.value, cfg.Node.MemoryLimit, c.want)
		}
	}
}

func TestParseByteSizeRejects(t *testing.T) {
	for _, v := range []string{"", "MiB", "1.5GiB", "-3", "12 parsecs", "99999999999TiB"} {
		if n, err := parseByteSize(v); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", v, n)
		}
	}
}
