package apfs

import (
	"slices"
	"testing"
)

func TestParseCreatedDate(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{"10.15", "Created local snapshot with date: 2019-10-08-101520\n", "2019-10-08-101520"},
		{"13 with note", "NOTE: local snapshots are considered purgeable and may be removed at any time by deleted(8).\nCreated local snapshot with date: 2023-10-05-101530\n", "2023-10-05-101530"},
		{"crlf", "Created local snapshot with date: 2023-10-05-101530\r\n", "2023-10-05-101530"},
		{"no date", "Failed to create local snapshot\n", ""},
		{"malformed date", "Created local snapshot with date: 2023-10-05\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCreatedDate([]byte(tt.out))
			if got != tt.want || (err != nil) != (tt.want == "") {
				t.Errorf("parseCreatedDate = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseSnapshotNames(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []string
	}{
		{"10.14", "com.apple.TimeMachine.2018-01-23-143526\ncom.apple.TimeMachine.2018-01-24-090000\n",
			[]string{"com.apple.TimeMachine.2018-01-23-143526", "com.apple.TimeMachine.2018-01-24-090000"}},
		{"13", "Snapshots for disk /System/Volumes/Data:\ncom.apple.TimeMachine.2023-10-05-101530.local\n",
			[]string{"com.apple.TimeMachine.2023-10-05-101530.local"}},
		{"other snapshots ignored", "Snapshots for disk /:\ncom.apple.os.update-ABC\ncom.apple.TimeMachine.2023-10-05-101530.local\n",
			[]string{"com.apple.TimeMachine.2023-10-05-101530.local"}},
		{"none", "Snapshots for disk /:\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseSnapshotNames([]byte(tt.out)); !slices.Equal(got, tt.want) {
				t.Errorf("parseSnapshotNames = %q, want %q", got, tt.want)
			}
		})
	}
	names := []string{"com.apple.TimeMachine.2023-10-05-101530.local", "com.apple.TimeMachine.2018-01-23-143526"}
	for date, want := range map[string]string{
		"2023-10-05-101530": names[0],
		"2018-01-23-143526": names[1],
		"2023-10-05-10153":  "",
		"2023-10-05":        "",
	} {
		if got, ok := snapshotWithDate(names, date); got != want || ok != (want != "") {
			t.Errorf("snapshotWithDate(%q) = %q, %v; want %q", date, got, ok, want)
		}
	}
}

func TestParseName(t *testing.T) {
	for name, want := range map[string]int{
		"costor-backup-123-1700000000":         123,
		"costor-a-b-7-1700000000":              7,
		"costor-backup-0-1700000000":           0,
		"costor-backup-123-":                   0,
		"costor-123-1700000000":                0,
		"other":                                0,
		"costor-backup-123-1700000000.x":       0,
		"costor-backup-99999999999999999999-1": 0,
	} {
		got, ok := parseName(name)
		if got != want || ok != (want != 0) {
			t.Errorf("parseName(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
}

func FuzzParseTmutil(f *testing.F) {
	f.Add([]byte("Created local snapshot with date: 2023-10-05-101530\n"))
	f.Add([]byte("Snapshots for disk /:\ncom.apple.TimeMachine.2023-10-05-101530.local\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if d, err := parseCreatedDate(data); err == nil && !snapshotDate.MatchString(d) {
			t.Fatalf("date %q does not match the format", d)
		}
		for _, n := range parseSnapshotNames(data) {
			if n == "" {
				t.Fatal("empty name")
			}
		}
	})
}
