package timearg

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1705312800", 1705312800, true},
		{"2024-01-15T10:00:00Z", 1705312800, true},
		{"2024-01-15T11:00:00+01:00", 1705312800, true},
		{"2024-01-15T10:00:00.5Z", 1705312800, true},
		{"", 0, false},
		{"yesterday", 0, false},
		{"-5", 0, false},
		{"2024-01-15", 0, false},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("Parse(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && got.Unix() != tt.want {
			t.Errorf("Parse(%q) = %d, want %d", tt.in, got.Unix(), tt.want)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for in, want := range map[string]int64{"1h": 1_000_000 - 3600, "2d": 1_000_000 - 2*86400, "1705312800": 1705312800} {
		got, err := ParseSince(in, now)
		if err != nil || got.Unix() != want {
			t.Errorf("ParseSince(%q) = %v, %v; want %d", in, got.Unix(), err, want)
		}
	}
	if _, err := ParseSince("-1h", now); err == nil {
		t.Error("ParseSince(-1h) succeeded")
	}
}
