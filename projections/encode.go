package projections

import (
	"encoding/json"
	"slices"
	"strconv"
)

// appendState appends a row's state column: the JSON encoding/json gives
// for storedState{s, s.unreadable}, byte for byte (TestAppendStateMatchesMarshal),
// without reflection; the live projection writes one per account and batch.
func appendState(b []byte, s *AccountStatus) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, s.ID)
	b = append(b, `,"object":`...)
	b = appendString(b, s.Object)
	b = append(b, `,"status":`...)
	b = appendString(b, s.Status)
	b = append(b, `,"livemode":`...)
	b = strconv.AppendBool(b, s.Livemode)
	b = append(b, `,"institution_name":`...)
	b = appendString(b, s.InstitutionName)
	b = append(b, `,"last4":`...)
	b = appendString(b, s.Last4)
	b = append(b, `,"category":`...)
	b = appendString(b, s.Category)
	b = append(b, `,"subcategory":`...)
	b = appendString(b, s.Subcategory)
	b = append(b, `,"display_name":`...)
	b = appendString(b, s.DisplayName)
	b = append(b, `,"balance_refresh":`...)
	b = appendRefresh(b, s.BalanceRefresh)
	b = append(b, `,"ownership_refresh":`...)
	b = appendRefresh(b, s.OwnershipRefresh)
	b = append(b, `,"transaction_refresh":`...)
	b = appendRefresh(b, s.TransactionRefresh)
	b = append(b, `,"first_seen_at":`...)
	b = strconv.AppendInt(b, s.FirstSeenAt, 10)
	b = append(b, `,"last_event":{"id":`...)
	b = appendString(b, s.LastEvent.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, s.LastEvent.Type)
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, s.LastEvent.Created, 10)
	b = append(b, `},"events_count":`...)
	b = strconv.AppendInt(b, s.EventsCount, 10)
	b = append(b, `,"last_event_times":`...)
	if s.LastEventTimes == nil {
		b = append(b, "null"...)
	} else {
		var arr [8]string
		keys := arr[:0]
		for k := range s.LastEventTimes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = strconv.AppendInt(b, s.LastEventTimes[k], 10)
		}
		b = append(b, '}')
	}
	b = append(b, `,"snapshot_position":`...)
	b = strconv.AppendUint(b, uint64(s.SnapshotPosition), 10)
	if s.UndecodableEvents != 0 {
		b = append(b, `,"undecodable_events":`...)
		b = strconv.AppendInt(b, s.UndecodableEvents, 10)
	}
	if len(s.unreadable) > 0 {
		b = append(b, `,"unreadable_ranks":[`...)
		for i, r := range s.unreadable {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"created":`...)
			b = strconv.AppendInt(b, r.Created, 10)
			b = append(b, `,"position":`...)
			b = strconv.AppendUint(b, uint64(r.Position), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendRefresh(b []byte, r *Refresh) []byte {
	if r == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"status":`...)
	b = appendString(b, r.Status)
	b = append(b, `,"last_attempted_at":`...)
	b = strconv.AppendInt(b, r.LastAttemptedAt, 10)
	return append(b, '}')
}

// appendString quotes s as encoding/json does: printable ASCII other than
// the characters it escapes is copied; anything else goes through it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			q, err := json.Marshal(s)
			if err != nil { // cannot happen for a string
				panic(err)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
