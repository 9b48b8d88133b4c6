package config

import (
	"fmt"
	"strconv"
	"strings"
)

// byteUnits are the suffixes parseByteSize accepts, longest first.
var byteUnits = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// parseByteSize parses a size like "64MiB", "512 MB", "1GiB" or "4096"
// (bytes) into bytes.
func parseByteSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	factor := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, factor = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a whole number of bytes with a unit (B, KiB, MiB, GiB, KB, MB, GB): %w", err)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative")
	}
	if n > (1<<62)/factor {
		return 0, fmt.Errorf("too large")
	}
	return n * factor, nil
}

// byteSize returns the size at k in bytes: a string for parseByteSize,
// "off" or 0 for 0 (none); def when k is absent.
func (s *section) byteSize(k string, def int64) int64 {
	raw, present := s.get(k)
	if !present {
		return def
	}
	switch v := raw.(type) {
	case int64:
		if v == 0 {
			return 0
		}
		s.errf(k, `expected a size string like "64MiB" (or 0 or "off"), got the number %d`, v)
		return def
	case string:
		if v == "off" {
			return 0
		}
		n, err := parseByteSize(v)
		if err != nil {
			s.errAt(s.kpath(k), k, err, `%q is not a size (like "64MiB", "512MB", "1GiB", or "off")`, v)
			return def
		}
		return n
	default:
		s.errf(k, `expected a size string like "64MiB" (or 0 or "off"), got %s`, typeName(raw))
		return def
	}
}
