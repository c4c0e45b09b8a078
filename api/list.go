package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/fcaudit/fcaudit/internal/timearg"
	"github.com/fcaudit/fcaudit/store"
)

// List is Stripe's list envelope, the answer of every list route (page
// writes it item by item).
type List[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

// listPage is the paging every list route takes: limit (1–100, default 10)
// and starting_after, the id of the item the page starts after (what the
// id names is the route's business).
type listPage struct {
	Limit         int
	StartingAfter string
}

// parsePage reads limit and starting_after.
func parsePage(q url.Values) (listPage, error) {
	p := listPage{Limit: 10, StartingAfter: q.Get("starting_after")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return p, badParam("limit", "must be an integer from 1 to 100, got %q", s)
		}
		p.Limit = n
	}
	return p, nil
}

// MaxListBytes bounds the encoded items of one list page. A page ends at
// limit items or before the item that would take it past this bound,
// whichever comes first (but always holds at least one item, so paging
// always advances), and has_more says that more follow: a page of large
// events costs a bounded response, never limit times the largest event.
const MaxListBytes = 4 << 20

// page builds one list answer, encoding items one at a time as they are
// read, within limit items and MaxListBytes.
type page struct {
	limit   int
	n       int
	data    bytes.Buffer
	hasMore bool
}

func newPage(limit int) *page { return &page{limit: limit} }

// add encodes v into the page. It returns false when the page is complete
// without v (v then becomes has_more).
func (p *page) add(v any) (bool, error) {
	if p.hasMore {
		return false, nil
	}
	if p.n == p.limit {
		p.hasMore = true
		return false, nil
	}
	b, err := marshalJSON(v)
	if err != nil {
		return false, err
	}
	if p.n > 0 && p.data.Len()+1+len(b) > MaxListBytes {
		p.hasMore = true
		return false, nil
	}
	if p.n > 0 {
		p.data.WriteByte(',')
	}
	p.data.Write(b)
	p.n++
	return true, nil
}

// write answers 200 with Stripe's list envelope (the shape of List); more
// is what the source knows beyond the items it offered.
func (p *page) write(w http.ResponseWriter, r *http.Request, more bool) {
	url, _ := marshalJSON(r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriter(w)
	bw.WriteString(`{"object":"list","data":[`)
	bw.Write(p.data.Bytes())
	fmt.Fprintf(bw, `],"has_more":%t,"url":%s}`+"\n", p.hasMore || more, url)
	_ = bw.Flush() // the client went away; nothing left to tell it
}

// marshalJSON is json.Marshal without HTML escaping, as writeJSON encodes.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// writeList answers 200 with the list envelope of data (at most a page's
// limit, read whole), cut short at MaxListBytes; hasMore is whether the
// source has more after data.
func writeList[T any](s *Server, w http.ResponseWriter, r *http.Request, data []T, hasMore bool) {
	p := newPage(len(data))
	for i := range data {
		ok, err := p.add(data[i])
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !ok {
			break
		}
	}
	p.write(w, r, hasMore)
}

// parseTimeParam parses an optional time parameter (RFC 3339 or Unix
// seconds) into Unix seconds; 0 when absent.
func parseTimeParam(q url.Values, name string) (int64, error) {
	t, err := parseTime(q, name)
	if err != nil || t.IsZero() && q.Get(name) == "" {
		return 0, err
	}
	return t.Unix(), nil
}

// parseUntilParam reads an inclusive upper bound of Stripe created time
// (store.CreatedUntil: one at or before the epoch selects nothing).
func parseUntilParam(q url.Values, name string) (int64, error) {
	t, err := parseTime(q, name)
	if err != nil || q.Get(name) == "" {
		return 0, err
	}
	return store.CreatedUntil(t), nil
}

func parseTime(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := timearg.Parse(s)
	if err != nil {
		return time.Time{}, badParam(name, "%v", err)
	}
	return t, nil
}
