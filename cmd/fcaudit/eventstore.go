package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/esdb"
)

// openEventStore opens the EventStoreDB backend. The client dials lazily, so
// an unreachable cluster is reported by the first operation (and /readyz),
// not here: serve starts and answers 503 until the cluster is back.
func openEventStore(ctx context.Context, conn string, log *slog.Logger) (store.Store, error) {
	s, err := esdb.Open(ctx, conn, esdb.Options{Logger: log})
	if err != nil {
		return nil, flagError("eventstore", fmt.Errorf("open EventStoreDB: %w", err))
	}
	return s, nil
}
