package main

import (
	"fmt"
	"log/slog"
	"os"
)

// LogEnv sets the library's log level: debug, info, warn (the default, as
// the command line's without -v) or error. Logs are structured lines on
// stderr; the library's one-line errors are returned, not logged.
const LogEnv = "UPG_LOG"

func init() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv(LogEnv))})))
}

// logLevel parses $UPG_LOG; an empty or unknown value is warn (an unknown
// one says so).
func logLevel(v string) slog.Level {
	l := slog.LevelWarn
	if v != "" {
		if err := l.UnmarshalText([]byte(v)); err != nil {
			fmt.Fprintf(os.Stderr, "upg: ignoring %s=%q: want debug, info, warn or error\n", LogEnv, v)
			l = slog.LevelWarn
		}
	}
	return l
}
