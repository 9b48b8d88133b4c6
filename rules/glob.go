package rules

import (
	"fmt"
	"path"
	"strings"
)

// A match glob selects changed paths (slash-separated, relative to the job
// root):
//
//   - A glob without '/' matches the base name at any depth:
//     "pjsip*.conf" matches "pjsip.conf" and "custom/pjsip_trunks.conf".
//   - A glob with '/' matches the whole path, element by element; "**" as a
//     whole element matches zero or more elements: "sounds/**/*.wav".
//
// Within an element the syntax is that of path.Match ('*', '?', '[a-z]',
// '\' escapes).

// checkGlob returns why g is not a valid match glob, or "" when it is.
func checkGlob(g string) string {
	switch {
	case g == "":
		return "empty glob"
	case strings.HasPrefix(g, "/"):
		return "absolute; globs are relative to the job root"
	case strings.IndexByte(g, 0) >= 0:
		return "contains a NUL byte"
	}
	for _, el := range strings.Split(g, "/") {
		switch el {
		case "":
			return "empty path element (leading, trailing or double '/')"
		case ".", "..":
			return fmt.Sprintf("contains %q; globs are relative to the job root", el)
		case "**":
			continue
		}
		if _, err := path.Match(el, ""); err != nil {
			return fmt.Sprintf("bad pattern %q: %v", el, err)
		}
	}
	return ""
}

// matchGlob reports whether the valid glob g matches the clean relative
// path p.
func matchGlob(g, p string) bool {
	if !strings.Contains(g, "/") {
		ok, _ := path.Match(g, path.Base(p))
		return ok
	}
	return matchElems(strings.Split(g, "/"), strings.Split(p, "/"))
}

func matchElems(gs, ps []string) bool {
	for len(gs) > 0 {
		if gs[0] == "**" {
			// Collapse runs of "**"; then try every split point.
			for len(gs) > 0 && gs[0] == "**" {
				gs = gs[1:]
			}
			if len(gs) == 0 {
				return len(ps) > 0 // a trailing "**" matches what is inside, not the directory itself
			}
			for i := 0; i <= len(ps); i++ {
				if matchElems(gs, ps[i:]) {
					return true
				}
			}
			return false
		}
		if len(ps) == 0 {
			return false
		}
		if ok, _ := path.Match(gs[0], ps[0]); !ok {
			return false
		}
		gs, ps = gs[1:], ps[1:]
	}
	return len(ps) == 0
}
