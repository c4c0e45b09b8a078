package api

import (
	"net/http"
	"time"

	"github.com/fcaudit/fcaudit/backfill"
)

// Reconciliation is serve's background reconciliation with Stripe's Events
// API that GET /v1/reconciliation reports (backfill.Reconciler).
type Reconciliation interface {
	Status() backfill.ReconcilerStatus
}

// reconciliationBody is GET /v1/reconciliation's answer: the interval,
// whether a run is in progress, when the next starts, and the last result
// (null before the first run ends).
type reconciliationBody struct {
	Object    string           `json:"object"`
	Interval  string           `json:"interval"`
	Running   bool             `json:"running"`
	NextRunAt *time.Time       `json:"next_run_at"`
	LastRun   *backfill.Result `json:"last_run"`
}

func (s *Server) handleReconciliation(w http.ResponseWriter, _ *http.Request) {
	st := s.cfg.Reconciliation.Status()
	body := reconciliationBody{Object: "reconciliation", Interval: st.Interval.String(), Running: st.Running, LastRun: st.LastRun}
	if !st.NextRunAt.IsZero() {
		n := st.NextRunAt.UTC()
		body.NextRunAt = &n
	}
	writeJSON(w, http.StatusOK, body)
}
