package esdbtest

import (
	"context"
	"errors"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type streamsServer struct {
	api.UnimplementedStreamsServer
	s *Server
}

// streamDeleted is the error a real node returns for a tombstoned stream:
// the client recognises it only by the trailers (and panics without
// stream-name).
func streamDeleted(ctx context.Context, name string) error {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "stream-deleted", "stream-name", name))
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", name)
}

// expectation is a decoded expected_stream_revision.
type expectation struct {
	kind     int // expExact, expNoStream, expAny, expExists
	revision uint64
}

const (
	expExact = iota
	expNoStream
	expAny
	expExists
)

func (e expectation) setOn(w *api.AppendResp_WrongExpectedVersion) {
	switch e.kind {
	case expExact:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: e.revision}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: e.revision}
	case expNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case expAny:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
	case expExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
	}
}

func appendExpectation(o *api.AppendReq_Options) expectation {
	switch v := o.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		return expectation{kind: expExact, revision: v.Revision}
	case *api.AppendReq_Options_NoStream:
		return expectation{kind: expNoStream}
	case *api.AppendReq_Options_StreamExists:
		return expectation{kind: expExists}
	default:
		return expectation{kind: expAny}
	}
}

func protoUUID(u *shared.UUID) (uuid.UUID, error) {
	if st := u.GetStructured(); st != nil {
		var b [16]byte
		for i := range 8 {
			b[i] = byte(uint64(st.MostSignificantBits) >> (56 - 8*i))
			b[8+i] = byte(uint64(st.LeastSignificantBits) >> (56 - 8*i))
		}
		return uuid.UUID(b), nil
	}
	return uuid.Parse(u.GetString_())
}

func toProtoUUID(id uuid.UUID) *shared.UUID {
	var most, least uint64
	for i := range 8 {
		most = most<<8 | uint64(id[i])
		least = least<<8 | uint64(id[8+i])
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits: int64(most), LeastSignificantBits: int64(least)}}}
}

// Append implements the client-streaming append like a real node
// (Streams.Append.cs): the write ACL is checked right after the options
// message and the append size while events arrive, and a refusal is
// answered at once without reading the rest (unless SetRefuseEarly(false)),
// so the client may see a bare io.EOF from Send instead of the status.
func (ss *streamsServer) Append(srv api.Streams_AppendServer) error {
	s, err := ss.s.route(srv.Context(), true)
	if err != nil {
		return err
	}
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "first append message must carry options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "empty stream name")
	}
	early := s.refuseEarly.Load()
	// refuse answers err now, or after draining the request when the node
	// is set to read whole requests first.
	refuse := func(err error) error {
		if !early {
			for {
				if _, rerr := srv.Recv(); rerr != nil {
					break
				}
			}
		}
		return err
	}
	if err := s.checkAccess(name, opWrite); err != nil {
		return refuse(err)
	}
	maxSize := s.maxAppendSize()
	var proposed []*api.AppendReq_ProposedMessage
	size := 0
	for {
		m, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := m.GetProposedMessage()
		if p == nil {
			return status.Error(codes.InvalidArgument, "expected a proposed message")
		}
		// Event.cs: data + metadata + 2 × type length.
		size += len(p.GetData()) + len(p.GetCustomMetadata()) + 2*len(p.GetMetadata()["type"])
		if size > maxSize {
			return refuse(maxAppendSizeExceeded(srv.Context(), maxSize))
		}
		proposed = append(proposed, p)
	}
	exp := appendExpectation(opts)
	recs := make([]*record, len(proposed))
	for i, p := range proposed {
		id, err := protoUUID(p.GetId())
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "bad event id: %v", err)
		}
		md := p.GetMetadata()
		if md["type"] == "" {
			return status.Error(codes.InvalidArgument, "event type is required")
		}
		recs[i] = &record{stream: name, id: id, typ: md["type"], contentType: md["content-type"],
			data: p.GetData(), meta: p.GetCustomMetadata()}
	}
	s.hold(name)
	resp, err := s.append(srv.Context(), name, exp, recs)
	if err != nil {
		return err
	}
	if resp.GetSuccess() == nil {
		return srv.SendAndClose(resp)
	}
	if code, ok := s.takeFailAfterApply(name); ok {
		// The write committed but the node answers as if it timed out
		// (a prepare/commit/forward timeout): the outcome is unknown to the
		// client.
		return status.Error(code, "esdbtest: write timed out after it was applied")
	}
	return srv.SendAndClose(resp)
}

// maxAppendSizeExceeded is a real node's answer to an append over
// MaxAppendSize.
func maxAppendSizeExceeded(ctx context.Context, maxSize int) error {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("exception", "maximum-append-size-exceeded", "maximum-append-size", strconv.Itoa(maxSize)))
	return status.Errorf(codes.InvalidArgument, "Maximum Append Size of %d Exceeded.", maxSize)
}

func (s *Server) append(ctx context.Context, name string, exp expectation, recs []*record) (*api.AppendResp, error) {
	s.mu.Lock()
	if s.cluster != nil && !s.cluster.isLeader(s) {
		// Deposed while the write waited: it goes to the new leader.
		s.mu.Unlock()
		return s.cluster.Leader().append(ctx, name, exp, recs)
	}
	defer s.mu.Unlock()
	st := s.stream(name)
	if st.tombstoned {
		return nil, streamDeleted(ctx, name)
	}
	current := st.lastRevision()
	wrong := func() (*api.AppendResp, error) {
		w := &api.AppendResp_WrongExpectedVersion{}
		if current < 0 {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
			w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
		} else {
			w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
			w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: uint64(current)}
		}
		exp.setOn(w)
		return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}, nil
	}
	// matchesAt reports whether the proposed ids equal the stored events
	// from revision from on: the idempotent re-append of a batch.
	matchesAt := func(from int64) bool {
		if len(recs) == 0 || from < 0 || from+int64(len(recs))-1 > current {
			return false
		}
		for i, r := range recs {
			if st.events[from+int64(i)].id != r.id {
				return false
			}
		}
		return true
	}
	idempotent := func(from int64) (*api.AppendResp, error) {
		last := st.events[from+int64(len(recs))-1]
		return success(int64(last.revision), last.pos), nil
	}
	// A soft-deleted stream (every event truncated, not tombstoned) accepts
	// no_stream and continues its numbering, like a real node.
	softDeleted := current >= 0 && st.truncateBefore > uint64(current)
	switch exp.kind {
	case expExact, expNoStream:
		want := int64(exp.revision)
		if exp.kind == expNoStream {
			want = -1
		}
		switch {
		case want == current, want == -1 && softDeleted:
		case want < current && matchesAt(want+1):
			return idempotent(want + 1)
		default:
			return wrong()
		}
	case expExists, expAny:
		if exp.kind == expExists && current < 0 {
			return wrong()
		}
		// Best effort, like the real node's bounded id cache: a batch whose
		// first id is among the recent events and matches from there on.
		for i := max(int64(0), current-99); i <= current; i++ {
			if len(recs) > 0 && st.events[i].id == recs[0].id && matchesAt(i) {
				return idempotent(i)
			}
		}
	}
	if len(recs) == 0 {
		pos := uint64(0)
		if current >= 0 {
			pos = st.events[current].pos
		}
		return success(current, pos), nil
	}
	now := ticks(time.Now())
	for _, r := range recs {
		r.revision = uint64(len(st.events))
		r.created = now
		s.place(st, r)
	}
	s.notifyLocked()
	last := recs[len(recs)-1]
	return success(int64(last.revision), last.pos), nil
}

func success(revision int64, pos uint64) *api.AppendResp {
	ok := &api.AppendResp_Success{}
	if revision < 0 {
		ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	} else {
		ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(revision)}
	}
	if pos == 0 {
		ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	} else {
		ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{CommitPosition: pos, PreparePosition: pos}}
	}
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}}
}

// deleteExpectation decodes the expected revision of Delete and Tombstone
// (same oneof shape, different generated types).
func deleteExpectation(o any) expectation {
	switch v := o.(type) {
	case *api.DeleteReq_Options_Revision:
		return expectation{kind: expExact, revision: v.Revision}
	case *api.TombstoneReq_Options_Revision:
		return expectation{kind: expExact, revision: v.Revision}
	case *api.DeleteReq_Options_NoStream, *api.TombstoneReq_Options_NoStream:
		return expectation{kind: expNoStream}
	case *api.DeleteReq_Options_StreamExists, *api.TombstoneReq_Options_StreamExists:
		return expectation{kind: expExists}
	default:
		return expectation{kind: expAny}
	}
}

// checkDelete validates a delete's expected revision; WrongExpectedVersion
// is a gRPC error here (there is no reply field for it).
func checkDelete(st *stream, exp expectation) error {
	cur := st.lastRevision()
	ok := true
	switch exp.kind {
	case expExact:
		ok = int64(exp.revision) == cur
	case expNoStream:
		ok = cur < 0
	case expExists:
		ok = cur >= 0
	}
	if !ok {
		return status.Errorf(codes.FailedPrecondition, "WrongExpectedVersion: expected %v, current %d", exp, cur)
	}
	return nil
}

// Delete soft-deletes a stream: reads answer not found, later appends
// continue the numbering. Like the real node it records the truncation as a
// $metadata event in $all.
func (ss *streamsServer) Delete(ctx context.Context, req *api.DeleteReq) (*api.DeleteResp, error) {
	name := string(req.GetOptions().GetStreamIdentifier().GetStreamName())
	s, err := ss.s.route(ctx, true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stream(name)
	if st.tombstoned {
		return nil, streamDeleted(ctx, name)
	}
	if err := checkDelete(st, deleteExpectation(req.GetOptions().GetExpectedStreamRevision())); err != nil {
		return nil, err
	}
	r := s.softDeleteLocked(name)
	return &api.DeleteResp{PositionOption: &api.DeleteResp_Position_{Position: &api.DeleteResp_Position{
		CommitPosition: r.pos, PreparePosition: r.pos}}}, nil
}

func (s *Server) softDeleteLocked(name string) *record {
	st := s.stream(name)
	st.truncateBefore = uint64(len(st.events))
	r := s.appendLocked("$$"+name, "$metadata", []byte(`{"$tb":`+itoa(st.truncateBefore)+`}`))
	s.notifyLocked()
	return r
}

// Tombstone deletes a stream for good: a $streamDeleted event ends it and
// every later read, append or subscription fails with stream-deleted.
func (ss *streamsServer) Tombstone(ctx context.Context, req *api.TombstoneReq) (*api.TombstoneResp, error) {
	name := string(req.GetOptions().GetStreamIdentifier().GetStreamName())
	s, err := ss.s.route(ctx, true)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stream(name)
	if st.tombstoned {
		return nil, streamDeleted(ctx, name)
	}
	if err := checkDelete(st, deleteExpectation(req.GetOptions().GetExpectedStreamRevision())); err != nil {
		return nil, err
	}
	r := s.appendLocked(name, "$streamDeleted", nil)
	st.tombstoned = true
	s.notifyLocked()
	return &api.TombstoneResp{PositionOption: &api.TombstoneResp_Position_{Position: &api.TombstoneResp_Position{
		CommitPosition: r.pos, PreparePosition: r.pos}}}, nil
}

// filter is a decoded server-side $all filter.
type filter struct {
	onType   bool
	prefixes []string
	re       *regexp.Regexp
	window   uint32 // checkpoint every window*multiplier scanned events
}

func newFilter(o *api.ReadReq_Options) (*filter, error) {
	fo := o.GetFilter()
	if fo == nil {
		return nil, nil
	}
	f := &filter{window: 32}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	if e := fo.GetStreamIdentifier(); e != nil {
		expr = e
	} else if e := fo.GetEventType(); e != nil {
		expr, f.onType = e, true
	} else {
		return nil, status.Error(codes.InvalidArgument, "filter without expression")
	}
	f.prefixes = expr.GetPrefix()
	if expr.GetRegex() != "" {
		re, err := regexp.Compile(expr.GetRegex())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "bad filter regex: %v", err)
		}
		f.re = re
	}
	if m := fo.GetMax(); m > 0 {
		f.window = m
	}
	mult := fo.GetCheckpointIntervalMultiplier()
	if mult == 0 {
		mult = 1
	}
	f.window *= mult
	return f, nil
}

func (f *filter) match(r *record) bool {
	if f == nil {
		return true
	}
	v := r.stream
	if f.onType {
		v = r.typ
	}
	if f.re != nil {
		return f.re.MatchString(v)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

func readEvent(r *record, withPos bool) *api.ReadResp {
	ev := &api.ReadResp_ReadEvent_RecordedEvent{
		Id:               toProtoUUID(r.id),
		StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
		StreamRevision:   r.revision,
		PreparePosition:  r.pos,
		CommitPosition:   r.pos,
		Metadata: map[string]string{
			"type":         r.typ,
			"content-type": r.contentType,
			"created":      itoa(uint64(r.created)),
		},
		CustomMetadata: r.meta,
		Data:           r.data,
	}
	re := &api.ReadResp_ReadEvent{Event: ev}
	if withPos {
		re.Position = &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos}
	} else {
		re.Position = &api.ReadResp_ReadEvent_NoPosition{NoPosition: &shared.Empty{}}
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: re}}
}

// Read serves stream reads, $all reads and both kinds of subscription.
func (ss *streamsServer) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read without options")
	}
	f, err := newFilter(o)
	if err != nil {
		return err
	}
	node, err := ss.s.route(srv.Context(), false)
	if err != nil {
		return err
	}
	ss = &streamsServer{s: node}
	target := "$all"
	if so := o.GetStream(); so != nil {
		target = string(so.GetStreamIdentifier().GetStreamName())
	}
	if err := ss.s.checkAccess(target, opRead); err != nil {
		return err
	}
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	if o.GetSubscription() != nil {
		if backwards {
			return status.Error(codes.InvalidArgument, "subscriptions read forwards")
		}
		return ss.s.subscribe(srv, o, f)
	}
	count := o.GetCount()
	if so := o.GetStream(); so != nil {
		return ss.s.readStream(srv, so, backwards, count)
	}
	return ss.s.readAll(srv, o.GetAll(), backwards, count, f)
}

func (s *Server) readStream(srv api.Streams_ReadServer, so *api.ReadReq_Options_StreamOptions, backwards bool, count uint64) error {
	name := string(so.GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	st := s.streams[name]
	if st != nil && st.tombstoned {
		s.mu.Unlock()
		return streamDeleted(srv.Context(), name)
	}
	var vis []*record
	if st != nil {
		vis = st.visible()
	}
	vis = append([]*record(nil), vis...)
	s.mu.Unlock()
	if len(vis) == 0 {
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)}}}})
	}
	first := vis[0].revision
	var out []*record
	if !backwards {
		from := first
		if rv, ok := so.GetRevisionOption().(*api.ReadReq_Options_StreamOptions_Revision); ok {
			from = max(rv.Revision, first)
		} else if _, ok := so.GetRevisionOption().(*api.ReadReq_Options_StreamOptions_End); ok {
			from = vis[len(vis)-1].revision + 1
		}
		for _, r := range vis {
			if r.revision >= from && uint64(len(out)) < count {
				out = append(out, r)
			}
		}
	} else {
		from := vis[len(vis)-1].revision
		if rv, ok := so.GetRevisionOption().(*api.ReadReq_Options_StreamOptions_Revision); ok {
			from = rv.Revision
		} else if _, ok := so.GetRevisionOption().(*api.ReadReq_Options_StreamOptions_Start); ok {
			from = first
			if count > 0 {
				count = 1
			}
		}
		for i := len(vis) - 1; i >= 0; i-- {
			if vis[i].revision <= from && uint64(len(out)) < count {
				out = append(out, vis[i])
			}
		}
	}
	for _, r := range out {
		s.readSent.Add(1)
		if err := srv.Send(readEvent(r, false)); err != nil {
			return err
		}
	}
	return nil
}

// indexAfter returns the index of the first record with position > pos
// (strict) or >= pos (inclusive).
func (s *Server) indexAfter(pos uint64, inclusive bool) int {
	return sort.Search(len(s.log), func(i int) bool {
		if inclusive {
			return s.log[i].pos >= pos
		}
		return s.log[i].pos > pos
	})
}

// checkPosition refuses a $all start position that is not where a record
// starts (or the end of the log), as a real node does.
func (s *Server) checkPosition(ao *api.ReadReq_Options_AllOptions) error {
	v, ok := ao.GetAllOption().(*api.ReadReq_Options_AllOptions_Position)
	if !ok {
		return nil
	}
	p := v.Position.GetCommitPosition()
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.indexAfter(p, true)
	if p == s.nextPos || (i < len(s.log) && s.log[i].pos == p && v.Position.GetPreparePosition() == p) {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "Invalid position: commit %d, prepare %d is not the position of a record.",
		p, v.Position.GetPreparePosition())
}

func (s *Server) readAll(srv api.Streams_ReadServer, ao *api.ReadReq_Options_AllOptions, backwards bool, count uint64, f *filter) error {
	if err := s.checkPosition(ao); err != nil {
		return err
	}
	s.mu.Lock()
	var out []*record
	if !backwards {
		i := 0
		switch v := ao.GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_Position:
			// Forwards reads of $all start at the position, inclusive.
			i = s.indexAfter(v.Position.GetCommitPosition(), true)
		case *api.ReadReq_Options_AllOptions_End:
			i = len(s.log)
		}
		for ; i < len(s.log) && uint64(len(out)) < count; i++ {
			if f.match(s.log[i]) {
				out = append(out, s.log[i])
			}
		}
	} else {
		i := len(s.log) - 1
		switch v := ao.GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_Position:
			// Backwards reads of $all return events strictly before it.
			i = s.indexAfter(v.Position.GetCommitPosition(), true) - 1
		case *api.ReadReq_Options_AllOptions_Start:
			i = -1
		}
		for ; i >= 0 && uint64(len(out)) < count; i-- {
			if f.match(s.log[i]) {
				out = append(out, s.log[i])
			}
		}
	}
	s.mu.Unlock()
	for _, r := range out {
		if err := srv.Send(readEvent(r, true)); err != nil {
			return err
		}
	}
	return nil
}

// subscribe serves a catch-up subscription to one stream or to $all: the
// confirmation, the stored events after the (exclusive) start, a checkpoint
// and caught_up (filtered $all only for checkpoints), then live events until
// the client goes away.
func (s *Server) subscribe(srv api.Streams_ReadServer, o *api.ReadReq_Options, f *filter) error {
	s.subCount.Add(1)
	defer s.subCount.Add(-1)
	ctx := srv.Context()
	var streamName string
	all := o.GetAll() != nil
	if all {
		if err := s.checkPosition(o.GetAll()); err != nil {
			return err
		}
	}
	s.mu.Lock()
	// next is an index into s.log for $all, or a revision for a stream.
	next := 0
	if all {
		switch v := o.GetAll().GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_Position:
			next = s.indexAfter(v.Position.GetCommitPosition(), false)
		case *api.ReadReq_Options_AllOptions_End:
			next = len(s.log)
		}
	} else {
		so := o.GetStream()
		streamName = string(so.GetStreamIdentifier().GetStreamName())
		st := s.stream(streamName)
		if st.tombstoned {
			s.mu.Unlock()
			return streamDeleted(ctx, streamName)
		}
		switch v := so.GetRevisionOption().(type) {
		case *api.ReadReq_Options_StreamOptions_Revision:
			next = int(v.Revision) + 1
		case *api.ReadReq_Options_StreamOptions_End:
			next = len(st.events)
		}
	}
	s.mu.Unlock()
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString()}}}); err != nil {
		return err
	}
	caughtUp := false
	scanned := uint32(0)
	for {
		s.mu.Lock()
		var batch []*record
		var lastPos uint64
		if all {
			batch = append(batch, s.log[next:]...)
			next = len(s.log)
			if len(s.log) > 0 {
				lastPos = s.log[len(s.log)-1].pos
			}
		} else {
			st := s.stream(streamName)
			if st.tombstoned && next >= len(st.events) {
				s.mu.Unlock()
				return streamDeleted(ctx, streamName)
			}
			if next < len(st.events) {
				batch = append(batch, st.events[next:]...)
				next = len(st.events)
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if s.silent.Load() {
			// A node shutting down may leave subscriptions open and silent
			// until the process exits.
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
		}
		if limit := s.slowLimit.Load(); caughtUp && limit > 0 && int64(len(batch)) > limit {
			// Servers up to 23.10 drop a live subscriber that falls this
			// far behind; the client must resubscribe.
			return status.Error(codes.Aborted, "Consumer too slow to handle event while live. Client resubscription required.")
		}
		for _, r := range batch {
			if f.match(r) && (all || r.typ != "$streamDeleted") {
				if err := srv.Send(readEvent(r, all)); err != nil {
					return err
				}
			}
			if f != nil {
				if scanned++; scanned >= f.window {
					scanned = 0
					if err := sendCheckpoint(srv, r.pos); err != nil {
						return err
					}
				}
			}
		}
		if !caughtUp {
			caughtUp = true
			if f != nil && lastPos > 0 {
				if err := sendCheckpoint(srv, lastPos); err != nil {
					return err
				}
			}
			if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-changed:
		}
	}
}

func sendCheckpoint(srv api.Streams_ReadServer, pos uint64) error {
	return srv.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
		CommitPosition: pos, PreparePosition: pos}}})
}
