// Package testutil holds helpers that tests of several packages share.
package testutil

import (
	"io"
	"os"
	"testing"
)

// CopyFile copies the file from to the path to, failing the test on error.
func CopyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// NeedData skips a test whose fixtures (files under ../shared, say) are
// missing, except under CI=true, where a missing fixture fails it: CI must
// not pass by skipping the tests that matter.
func NeedData(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("shared test data missing under CI=true: %v", err)
			}
			t.Skipf("shared test data absent: %v", err)
		}
	}
}
