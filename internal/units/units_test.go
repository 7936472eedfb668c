package units

import "testing"

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"512MiB": 512 << 20, "2GB": 2e9, "9.4MB": 9_400_000, "1.5G": 3 << 29, "4096": 4096, "64k": 64 << 10, " 12GiB ": 12 << 30} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "lots", "-1GB", "1XB", "GB"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
}
