package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/fcaudit/fcaudit/store"
)

// openEventStore opens the EventStoreDB backend.
func openEventStore(ctx context.Context, conn string, log *slog.Logger) (store.Store, error) {
	return nil, errors.New("--eventstore: EventStoreDB support is not wired yet")
}
