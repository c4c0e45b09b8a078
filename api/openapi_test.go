package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
	"go.yaml.in/yaml/v4"

	"github.com/fcaudit/fcaudit/api"
	"github.com/fcaudit/fcaudit/audit"
	"github.com/fcaudit/fcaudit/backfill"
	"github.com/fcaudit/fcaudit/ingest"
	"github.com/fcaudit/fcaudit/internal/record"
	"github.com/fcaudit/fcaudit/metrics"
	"github.com/fcaudit/fcaudit/projections"
	"github.com/fcaudit/fcaudit/replay"
	"github.com/fcaudit/fcaudit/store"
	"github.com/fcaudit/fcaudit/store/sqlite"
)

// This file holds the one way api tests build a server (newServer) and the
// conformance check it applies to every request: the request and the answer
// are checked against openapi.yaml, so that neither the code nor the
// document can change without the other. kin-openapi validates the document
// and the traffic: of the two OpenAPI 3.1 validators at hand it is the one
// whose document validation rejects invalid 3.1 schemas and examples
// (libopenapi-validator v0.16.3 accepted a schema with `type: strin`, a
// boolean exclusiveMinimum and an example that breaks its schema).

// stricterHeader marks a request the document refuses on purpose although
// the server accepts it: leniencies kept by design (TestAcceptedOddInputs)
// that a contract should not promise. Its value says why. The check then
// tolerates the 2xx; everything else is still checked. The header is
// removed before the server sees the request.
const stricterHeader = "Fcaudit-Test-Document-Stricter"

var update = flag.Bool("update", false, "rewrite openapi.json from openapi.yaml (go generate ./api)")

// newServer is how every api test serves the API: the router of
// api.NewServer(cfg) behind the conformance check, over real HTTP on
// loopback. The server is closed when the test ends.
// TestAPITestsUseNewServer keeps it (and newOpenServer) the only way.
func newServer(t *testing.T, cfg api.Config) *httptest.Server {
	t.Helper()
	c, err := loadConformance()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	srv := httptest.NewServer(c.wrap(t, api.NewServer(cfg).Handler()))
	t.Cleanup(srv.Close)
	return srv
}

// openedServer is what a test may do with a server newOpenServer started:
// watch its counters and reach it. (Not Open or Handler: those would serve
// without the check.)
type openedServer interface {
	ConnStats() api.ConnStats
	Addr() string
}

// newOpenServer is newServer for tests that need serve's own listener
// (api.Server.Open: the connection limit, connection states, bodies held
// half sent): the same conformance check wraps the root handler that
// Open serves, on a loopback port. The server is closed when the test ends.
func newOpenServer(t *testing.T, cfg api.Config) openedServer {
	t.Helper()
	c, err := loadConformance()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	s := api.NewServer(cfg)
	s.WrapHandler(func(h http.Handler) http.Handler { return c.wrap(t, h) })
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

type conformance struct {
	doc    *openapi3.T
	router routers.Router
	// mu serialises validation: the tests' servers answer concurrently and
	// the validator's schema caches are not documented as goroutine-safe.
	mu sync.Mutex
	// seen counts the answers checked, by operation and status, for the
	// coverage check in TestMain.
	seen map[string]map[int]int
}

var (
	conformanceOnce sync.Once
	conformanceDoc  *conformance
	conformanceErr  error
)

// loadConformance loads and validates openapi.yaml once per test binary.
func loadConformance() (*conformance, error) {
	conformanceOnce.Do(func() {
		doc, err := loadDocument()
		if err != nil {
			conformanceErr = err
			return
		}
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			conformanceErr = err
			return
		}
		conformanceDoc = &conformance{doc: doc, router: r, seen: map[string]map[int]int{}}
	})
	return conformanceDoc, conformanceErr
}

// loadDocument reads openapi.yaml and validates it as OpenAPI 3.1: the
// structure, every schema (as JSON Schema 2020-12), every $ref, and every
// example against its schema.
func loadDocument() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("openapi.yaml")
	if err != nil {
		return nil, err
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapi is %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		return nil, err
	}
	return doc, nil
}

// wrap answers with next and reports, as errors of t, every way the request
// or the answer departs from the document.
func (c *conformance) wrap(t *testing.T, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The check sees the body as the server reads it, read error
		// included (a body cut in transit stays cut), and never waits for
		// more: a body the server refuses unread (413, 503 server_busy)
		// may never be sent.
		body := &recordedBody{r: r.Body, done: r.Body == nil || r.Body == http.NoBody}
		// A copy carries it: net/http still sees its own body on its own
		// request, and so closes a connection whose body was refused
		// unread as it would without the check (answer first, then close,
		// so the client reads the answer rather than a reset).
		r = r.WithContext(r.Context())
		r.Body = body
		stricter := r.Header.Get(stricterHeader) != ""
		r.Header.Del(stricterHeader)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())

		for _, p := range c.check(r, body.data.Bytes(), body.done, rec, stricter, true) {
			t.Errorf("openapi.yaml: %s %s → %d: %s", r.Method, r.URL.RequestURI(), rec.Code, p)
		}
	})
}

// recordedBody keeps what the server reads of a request body, and whether
// it read to the end (or to a read error).
type recordedBody struct {
	r    io.ReadCloser
	data bytes.Buffer
	done bool
}

func (b *recordedBody) Read(p []byte) (int, error) {
	if b.r == nil || b.r == http.NoBody {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	b.data.Write(p[:n])
	if err != nil {
		b.done = true
	}
	return n, err
}

func (b *recordedBody) Close() error {
	if b.r == nil {
		return nil
	}
	return b.r.Close()
}

// check returns the departures of one exchange. body is what the server
// read of the request body; bodyRead whether it read all of it (a body
// refused unread is not checked: the server did not look at it either).
// Only real traffic (count) counts towards TestMain's coverage check.
func (c *conformance) check(r *http.Request, body []byte, bodyRead bool, res *httptest.ResponseRecorder, stricter, count bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx := context.Background()
	req := r.Clone(ctx)
	req.URL.Scheme, req.URL.Host = "http", r.Host
	req.Body = io.NopCloser(bytes.NewReader(body))

	if p := req.URL.Path; p == "/" || p == "/console" || strings.HasPrefix(p, "/console/") {
		// The console is HTML for people, outside the API and its document
		// (as in TestEveryRouteDocumented's outsideAPI).
		return nil
	}
	route, pathParams, err := c.router.FindRoute(req)
	if err != nil {
		return c.checkUnrouted(req, err, res)
	}
	if count {
		c.count(route, res.Code)
	}

	var problems []string
	declared := map[string]bool{}
	for _, p := range append(route.PathItem.Parameters, route.Operation.Parameters...) {
		if p.Value.In == openapi3.ParameterInQuery {
			declared[p.Value.Name] = true
		}
	}
	var unknown []string
	for name := range req.URL.Query() {
		if !declared[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)

	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{MultiError: true, SkipSettingDefaults: true, AuthenticationFunc: bearerPresent,
			ExcludeRequestBody: !bodyRead}}
	reqErr := openapi3filter.ValidateRequest(ctx, in)

	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.Code, Header: res.Header(),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(res.Body.Bytes())
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		problems = append(problems, "the answer is not as documented: "+err.Error())
	}
	if !bodyRead && res.Code/100 == 2 && route.Operation.RequestBody != nil {
		problems = append(problems, "answered without reading the whole request body")
	}

	var sec *openapi3filter.SecurityRequirementsError
	errType, errParam := errorOf(res)
	switch {
	case errors.As(reqErr, &sec):
		// Authentication comes first (the document's general rule): no
		// token, 401, whatever else is wrong with the request.
		if res.Code != http.StatusUnauthorized {
			problems = append(problems, fmt.Sprintf("the document requires a token (%v) but the server answered %d", reqErr, res.Code))
		}
	case res.Code == http.StatusUnauthorized && c.secured(route.Operation):
		// A token was sent and refused: which tokens are valid is the
		// server's to say; the answer itself was checked above.
	case len(unknown) > 0:
		// A parameter the document lacks is a parameter the server must
		// refuse by name: anything else means the code takes (or ignores)
		// a parameter the document does not describe.
		if res.Code != http.StatusBadRequest || errType != api.TypeInvalidRequest || !slices.Contains(unknown, errParam) {
			problems = append(problems, fmt.Sprintf("query parameter(s) %v are not in the document", unknown))
		}
	case reqErr != nil:
		// The document refuses this request: so must the server.
		switch {
		case stricter && res.Code/100 == 2:
		case res.Code == http.StatusServiceUnavailable && errType == api.TypeServerBusy:
			// Load is shed before the body is read or the signature
			// checked (the webhook's documented 503): a refusal, if not
			// for the reason the document gives.
		case res.Code < 400 || res.Code >= 500:
			problems = append(problems, fmt.Sprintf("the document refuses the request (%v) but the server answered %d", reqErr, res.Code))
		case errType == api.TypeInvalidRequest:
			if names := rejectedParams(reqErr); len(names) > 0 && !slices.Contains(names, errParam) {
				problems = append(problems, fmt.Sprintf("the document refuses parameter(s) %v, the server names %q", names, errParam))
			}
		}
	case errType == api.TypeInvalidRequest && res.Code == http.StatusBadRequest && route.Operation.RequestBody == nil:
		// A valid request refused for a parameter: the parameter must be
		// one the operation documents.
		if !declared[errParam] {
			problems = append(problems, fmt.Sprintf("the server names parameter %q, which the operation does not document", errParam))
		}
	}
	return problems
}

// secured reports whether op needs a token (its own security, or the
// document's when it has none).
func (c *conformance) secured(op *openapi3.Operation) bool {
	if op.Security != nil {
		return len(*op.Security) > 0
	}
	return len(c.doc.Security) > 0
}

// authFirst reports whether the document's general rule puts req behind
// authentication before routing: a path under /v1 as the server sees it
// (cleaned: "/x/../v1/y" is /v1/y), unless it is exactly one of the paths
// the document serves without a token (the description itself).
func (c *conformance) authFirst(req *http.Request) bool {
	clean := path.Clean("/" + req.URL.Path)
	if clean != "/v1" && !strings.HasPrefix(clean, "/v1/") {
		return false
	}
	if item := c.doc.Paths.Value(req.URL.Path); item != nil {
		for _, op := range item.Operations() {
			if !c.secured(op) {
				return false
			}
		}
	}
	return true
}

// checkUnrouted checks the answer to a path or method the document does
// not have. Under /v1, authentication comes first (the document's general
// rule, info.description): without a token the answer is 401 with
// WWW-Authenticate and the error envelope, whatever the path and method;
// a refused token may get 401 too. Otherwise (and with a token) the answer
// is 404, or 405 with Allow, with the error envelope.
func (c *conformance) checkUnrouted(req *http.Request, findErr error, res *httptest.ResponseRecorder) []string {
	if c.authFirst(req) {
		_, hasBearer := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		switch {
		case res.Code == http.StatusUnauthorized:
			return c.checkAnswer(res, "Unauthorized")
		case !hasBearer:
			return []string{fmt.Sprintf("under /v1 without a token, yet answered %d, not 401 (%v)", res.Code, findErr)}
		}
	}
	var (
		want    int
		resName string
	)
	switch {
	case errors.Is(findErr, routers.ErrMethodNotAllowed):
		want, resName = http.StatusMethodNotAllowed, "MethodNotAllowed"
	case errors.Is(findErr, routers.ErrPathNotFound):
		want, resName = http.StatusNotFound, "NotFound"
	default:
		return []string{"finding the route: " + findErr.Error()}
	}
	if res.Code != want {
		return []string{fmt.Sprintf("not in the document (%v), yet answered %d, not %d", findErr, res.Code, want)}
	}
	problems := c.checkAnswer(res, resName)
	if want == http.StatusMethodNotAllowed {
		var methods []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := req.Clone(req.Context())
			probe.Method = m
			if _, _, err := c.router.FindRoute(probe); err == nil {
				methods = append(methods, m)
			}
		}
		var allow []string
		for _, m := range strings.Split(res.Header().Get("Allow"), ",") {
			if m = strings.TrimSpace(m); m != "" {
				allow = append(allow, m)
			}
		}
		sort.Strings(allow)
		sort.Strings(methods)
		if !slices.Equal(allow, methods) {
			problems = append(problems, fmt.Sprintf("Allow lists %v, the document %v", allow, methods))
		}
	}
	return problems
}

// checkAnswer checks an answer against one of the document's reusable
// responses (components.responses): its required headers, and a JSON body
// of its schema.
func (c *conformance) checkAnswer(res *httptest.ResponseRecorder, name string) []string {
	var problems []string
	doc := c.doc.Components.Responses[name].Value
	for h, hdr := range doc.Headers {
		if hdr.Value.Required && res.Header().Get(h) == "" {
			problems = append(problems, "header "+h+" missing")
		} else if v := res.Header().Get(h); v != "" && hdr.Value.Schema != nil {
			if err := hdr.Value.Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
				problems = append(problems, "header "+h+": "+err.Error())
			}
		}
	}
	if ct := res.Header().Get("Content-Type"); ct != "application/json" {
		problems = append(problems, fmt.Sprintf("Content-Type %q", ct))
	}
	var v any
	if err := json.Unmarshal(res.Body.Bytes(), &v); err != nil {
		problems = append(problems, "body is not JSON: "+err.Error())
	} else if err := doc.Content.Get("application/json").Schema.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		problems = append(problems, "body: "+err.Error())
	}
	return problems
}

func (c *conformance) count(route *routers.Route, status int) {
	key := "(not in the document)"
	if route != nil {
		key = route.Method + " " + route.Path
	}
	if c.seen[key] == nil {
		c.seen[key] = map[int]int{}
	}
	c.seen[key][status]++
}

// bearerPresent is the document's bearerAuth as far as a document can tell:
// a bearer token is present. (Which tokens are valid is the server's.)
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	tok, ok := strings.CutPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// rejectedParams names the query parameters a request validation error
// refuses.
func rejectedParams(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if me, ok := err.(openapi3.MultiError); ok {
			for _, e := range me {
				walk(e)
			}
			return
		}
		// A RequestError wraps its schema's errors (a MultiError too): it
		// is not unwrapped further.
		var re *openapi3filter.RequestError
		if errors.As(err, &re) && re.Parameter != nil && re.Parameter.In == openapi3.ParameterInQuery {
			out = append(out, re.Parameter.Name)
		}
	}
	walk(err)
	return out
}

// errorOf returns the error envelope's type and param, if the answer is one.
func errorOf(res *httptest.ResponseRecorder) (string, string) {
	var env struct {
		Error struct{ Type, Param string }
	}
	_ = json.Unmarshal(res.Body.Bytes(), &env)
	return env.Error.Type, env.Error.Param
}

// TestMain runs the tests, then (when the whole package ran, no -run or
// -skip, and passed)
// fails if an operation of the document was never exercised: a documented
// route no test calls is a description nothing checks.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	filtered := flag.Lookup("test.run").Value.String() != "" || flag.Lookup("test.skip").Value.String() != ""
	if code != 0 || filtered || conformanceDoc == nil {
		os.Exit(code)
	}
	c := conformanceDoc
	var missing []string
	ops, statuses := 0, 0
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			statuses += op.Responses.Len()
			if len(c.seen[method+" "+path]) == 0 {
				missing = append(missing, method+" "+path)
			}
		}
	}
	if testing.Verbose() {
		fmt.Printf("openapi.yaml: %d operations with %d documented responses; exercised:\n", ops, statuses)
		keys := make([]string, 0, len(c.seen))
		for k := range c.seen {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("  %-40s %v\n", k, c.seen[k])
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		fmt.Printf("FAIL: operations of openapi.yaml no api test exercises: %v\n", missing)
		os.Exit(1)
	}
	os.Exit(code)
}

// exampleSecret signs the document's examples (openapi.yaml says so).
const exampleSecret = "whsec_openapi_example"

// TestOpenAPIDocumentValid: openapi.yaml is a valid OpenAPI 3.1 document
// (schemas, references, examples), and its event examples are a fixture
// really delivered and stored: the body is testdata/stripe/01, and the
// record's hashes, signature and fingerprint are what fcaudit computes.
func TestOpenAPIDocumentValid(t *testing.T) {
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../testdata/stripe/01_account.created.json")
	if err != nil {
		t.Fatal(err)
	}
	var fixture any
	if err := json.Unmarshal(raw, &fixture); err != nil {
		t.Fatal(err)
	}
	webhook := doc.Paths.Value("/webhooks/stripe").Post
	if got := webhook.RequestBody.Value.Content.Get("application/json").Examples["account_created"].Value.Value; !jsonEqual(got, fixture) {
		t.Errorf("the webhook example is not testdata/stripe/01_account.created.json")
	}
	resp := doc.Paths.Value("/v1/events/{id}").Get.Responses.Status(200).Value.Content.Get("application/json")
	var rec record.Record
	if b, err := json.Marshal(resp.Examples["account_created"].Value.Value); err != nil || json.Unmarshal(b, &rec) != nil {
		t.Fatalf("record example: %v", err)
	}
	sum := sha256.Sum256(raw)
	receivedAt, err := time.Parse(time.RFC3339Nano, rec.ReceivedAt)
	if err != nil {
		t.Fatal(err)
	}
	chain := store.ChainHash(store.ChainSeed(rec.Stream), sum, rec.ID, receivedAt)
	p := rec.Provenance
	sig := "t=" + strconv.FormatInt(p.SignedAt, 10) + ",v1=" +
		hex.EncodeToString(stripewebhook.ComputeSignature(time.Unix(p.SignedAt, 0), raw, exampleSecret))
	var payload any
	_ = json.Unmarshal(rec.Payload, &payload)
	switch {
	case !jsonEqual(payload, fixture):
		t.Error("the record example's payload is not the fixture")
	case rec.Revision != 0 || rec.BodySHA256 != hex.EncodeToString(sum[:]) || rec.ChainHash != hex.EncodeToString(chain[:]):
		t.Errorf("the record example's hashes are not the fixture's: body_sha256 %s, chain_hash %s", hex.EncodeToString(sum[:]), hex.EncodeToString(chain[:]))
	case p.SignatureHeader != sig || p.SecretFingerprint != ingest.Fingerprint(exampleSecret):
		t.Errorf("the record example's provenance: want signature %s, fingerprint %s", sig, ingest.Fingerprint(exampleSecret))
	case webhook.Parameters.GetByInAndName("header", "Stripe-Signature").Example != sig:
		t.Errorf("the Stripe-Signature example is not %s", sig)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestOpenAPIJSONUpToDate: openapi.json is openapi.yaml converted (keys in
// the YAML's order). `go generate ./api` rewrites it.
func TestOpenAPIJSONUpToDate(t *testing.T) {
	src, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := yamlToJSON(src)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("openapi.json is stale: run `go generate ./api`")
	}
}

// yamlToJSON converts a YAML document to indented JSON, keeping the order
// of keys. Anchors and aliases are expanded; merge keys and timestamps are
// refused (write dates as quoted strings).
func yamlToJSON(src []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	var conv func(n *yaml.Node) error
	conv = func(n *yaml.Node) error {
		switch n.Kind {
		case yaml.DocumentNode:
			return conv(n.Content[0])
		case yaml.AliasNode:
			return conv(n.Alias)
		case yaml.MappingNode:
			buf.WriteByte('{')
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
					return fmt.Errorf("line %d: only plain scalar keys are supported", k.Line)
				}
				if i > 0 {
					buf.WriteByte(',')
				}
				writeJSON(&buf, k.Value)
				buf.WriteByte(':')
				if err := conv(n.Content[i+1]); err != nil {
					return err
				}
			}
			buf.WriteByte('}')
		case yaml.SequenceNode:
			buf.WriteByte('[')
			for i, e := range n.Content {
				if i > 0 {
					buf.WriteByte(',')
				}
				if err := conv(e); err != nil {
					return err
				}
			}
			buf.WriteByte(']')
		case yaml.ScalarNode:
			if n.ShortTag() == "!!timestamp" {
				return fmt.Errorf("line %d: quote the time %q", n.Line, n.Value)
			}
			var v any
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("line %d: %v", n.Line, err)
			}
			writeJSON(&buf, v)
		default:
			return fmt.Errorf("line %d: unsupported YAML node", n.Line)
		}
		return nil
	}
	if err := conv(&root); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, v any) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	buf.Truncate(buf.Len() - 1) // Encode's newline
}

// TestServesOpenAPI: the description is served, without a token, exactly
// as the files hold it; and the few routes no other test calls are
// exercised here (HEAD probes, /metrics).
func TestServesOpenAPI(t *testing.T) {
	st := openStore(t)
	m := metrics.New()
	srv := newServer(t, api.Config{Store: st, Tokens: []string{token}, Ready: st.Ping, Metrics: m.Handler(), ObserveRequest: m.ObserveRequest})
	for path, file := range map[string]string{"/v1/openapi.json": "openapi.json", "/v1/openapi.yaml": "openapi.yaml"} {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Errorf("%s: %d, body equal to %s: %v", path, resp.StatusCode, file, bytes.Equal(got, want))
		}
	}
	for _, req := range []struct{ method, path string }{{"HEAD", "/healthz"}, {"HEAD", "/readyz"}, {"GET", "/metrics"}, {"POST", "/v1/openapi.json"}} {
		r, _ := http.NewRequest(req.method, srv.URL+req.path, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := 200
		if req.method == "POST" {
			want = 405
		}
		if resp.StatusCode != want {
			t.Errorf("%s %s: %d, want %d", req.method, req.path, resp.StatusCode, want)
		}
	}
}

// TestConformanceCatchesDrift shows the check failing: each exchange below
// departs from the document in one way, and the check reports it.
func TestConformanceCatchesDrift(t *testing.T) {
	c, err := loadConformance()
	if err != nil {
		t.Fatal(err)
	}
	answer := func(status int, header http.Header, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		for k, v := range header {
			rec.Header()[k] = v
		}
		rec.Header().Set("X-Request-Id", "req_0123456789abcdef")
		rec.WriteHeader(status)
		rec.Body.WriteString(body)
		return rec
	}
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	ack := `{"id":"evt_1","stream":"fcaccount-fca_1","revision":0,"position":1,"duplicate":false}`
	list := `{"object":"list","data":[],"has_more":false,"url":"/v1/events"}`
	unauthorized := `{"error":{"type":"unauthorized","message":"token"}}`
	wwwAuth := http.Header{"Content-Type": {"application/json"}, "Www-Authenticate": {`Bearer realm="fcaudit"`}}
	busy := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"5"}, "Connection": {"close"}}
	busyBody := `{"error":{"type":"server_busy","message":"busy"}}`
	tests := []struct {
		name, method, target string
		noToken, unread      bool
		res                  *httptest.ResponseRecorder
		want                 string
	}{
		{"undocumented field in a strict object", "POST", "/webhooks/stripe", false, false,
			answer(200, jsonCT, strings.TrimSuffix(ack, "}")+`,"extra":1}`), "not as documented"},
		{"undocumented status", "GET", "/v1/events", false, false, answer(418, jsonCT, list), "not as documented"},
		{"undocumented query parameter", "GET", "/v1/events?expand=data", false, false, answer(200, jsonCT, list), "not in the document"},
		{"value the document refuses, accepted", "GET", "/v1/events?limit=500", false, false, answer(200, jsonCT, list), "refuses the request"},
		{"server names another parameter", "GET", "/v1/events?limit=0", false, false,
			answer(400, jsonCT, `{"error":{"type":"invalid_request","message":"since: x","param":"since"}}`), "the server names"},
		{"undocumented route answered", "GET", "/v1/secret", false, false, answer(200, jsonCT, list), "not in the document"},
		{"405 without Allow", "DELETE", "/v1/events", false, false,
			answer(405, jsonCT, `{"error":{"type":"method_not_allowed","message":"method not allowed"}}`), "header Allow missing"},
		{"required header missing", "GET", "/v1/events", false, false, answer(401, jsonCT, unauthorized), "WWW-Authenticate"},
		{"wrong error type", "GET", "/v1/events/evt_1", false, false,
			answer(404, jsonCT, `{"error":{"type":"api_error","message":"x"}}`), "not as documented"},
		// Authentication comes first under /v1, routed or not.
		{"unknown /v1 path revealed without a token", "GET", "/v1/nope", true, false,
			answer(404, jsonCT, `{"error":{"type":"resource_missing","message":"no such route"}}`), "not 401"},
		{"wrong /v1 method revealed without a token", "DELETE", "/v1/events", true, false,
			answer(405, http.Header{"Content-Type": {"application/json"}, "Allow": {"GET"}},
				`{"error":{"type":"method_not_allowed","message":"method not allowed"}}`), "not 401"},
		{"401 to an unknown /v1 path without WWW-Authenticate", "GET", "/v1/nope", true, false,
			answer(401, jsonCT, unauthorized), "header WWW-Authenticate missing"},
		{"401 to an unknown /v1 path, another envelope", "GET", "/x/../v1/nope", true, false,
			answer(401, wwwAuth, `{"error":{"type":"resource_missing","message":"x"}}`), "body"},
		{"parameter checked before the token", "GET", "/v1/events?expand=data", true, false,
			answer(400, jsonCT, `{"error":{"type":"invalid_request","message":"expand: unknown","param":"expand"}}`), "requires a token"},
		// Bodies and load shedding.
		{"a body accepted unread", "POST", "/webhooks/stripe", false, true, answer(200, jsonCT, ack), "without reading"},
		{"server_busy where the document has none", "GET", "/v1/events", false, false, answer(503, busy, busyBody), "not as documented"},
		// The verifiable log: only the checkpoint is public.
		{"a proof served without a token", "GET", "/v1/log/proof/consistency?from=1&to=2", true, false,
			answer(200, jsonCT, `{"from":1,"to":2,"hashes":[]}`), "requires a token"},
		{"undocumented field in a proof", "GET", "/v1/log/proof/consistency?from=1&to=2", false, false,
			answer(200, jsonCT, `{"from":1,"to":2,"hashes":[],"root":"x"}`), "not as documented"},
		{"a proof hash that is not base64 SHA-256", "GET", "/v1/log/proof/consistency?from=1&to=2", false, false,
			answer(200, jsonCT, `{"from":1,"to":2,"hashes":["abc"]}`), "not as documented"},
		{"the public checkpoint refused for want of a token", "GET", "/v1/log/checkpoint", true, false,
			answer(401, wwwAuth, unauthorized), "not as documented"},
	}
	send := func(method, target string, noToken bool) *http.Request {
		r := httptest.NewRequest(method, target, strings.NewReader(""))
		if !noToken {
			r.Header.Set("Authorization", "Bearer x")
		}
		r.Header.Set("Stripe-Signature", "t=1,v1=00")
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	event := []byte(`{"id":"evt_1","object":"event","type":"t","created":1,"data":{"object":{}}}`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(nil)
			if tt.method == "POST" && !tt.unread {
				body = event
			}
			problems := c.check(send(tt.method, tt.target, tt.noToken), body, !tt.unread, tt.res, false, false)
			if len(problems) == 0 || !strings.Contains(strings.Join(problems, "\n"), tt.want) {
				t.Errorf("problems %q, want one mentioning %q", problems, tt.want)
			}
		})
	}
	// And conforming exchanges pass.
	for _, tt := range []struct {
		name, method, target string
		noToken, unread      bool
		res                  *httptest.ResponseRecorder
	}{
		{"a list", "GET", "/v1/events?limit=5&type=a&type=b&since=2024-01-15T10:00:00Z&until=1705313000", false, false, answer(200, jsonCT, list)},
		{"empty values", "GET", "/v1/accounts/fca_1/events?order=&limit=&type=", false, false, answer(200, jsonCT, list)},
		{"401 to an unknown /v1 path", "GET", "/v1/nope", true, false, answer(401, wwwAuth, unauthorized)},
		{"401 to a wrong /v1 method", "DELETE", "/v1/events/evt_1", true, false, answer(401, wwwAuth, unauthorized)},
		{"401 to a path cleaned into /v1", "GET", "/x/../v1/events", true, false, answer(401, wwwAuth, unauthorized)},
		{"401 to a documented path, parameters unchecked", "GET", "/v1/events?expand=data", true, false, answer(401, wwwAuth, unauthorized)},
		{"a token refused", "GET", "/v1/events", false, false, answer(401, wwwAuth, unauthorized)},
		{"404 to an unknown /v1 path with a token", "GET", "/v1/nope", false, false,
			answer(404, jsonCT, `{"error":{"type":"resource_missing","message":"no such route: /v1/nope"}}`)},
		{"the public document's wrong method", "POST", "/v1/openapi.json", true, false,
			answer(405, http.Header{"Content-Type": {"application/json"}, "Allow": {"GET"}}, `{"error":{"type":"method_not_allowed","message":"method not allowed"}}`)},
		{"the public document refuses a parameter", "GET", "/v1/openapi.json?v=2", true, false,
			answer(400, jsonCT, `{"error":{"type":"invalid_request","message":"v: unknown parameter","param":"v"}}`)},
		{"a webhook shed unread", "POST", "/webhooks/stripe", false, true, answer(503, busy, busyBody)},
		{"the public checkpoint without a token", "GET", "/v1/log/checkpoint", true, false,
			answer(200, http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "Content-Length": {"5"}, "Cache-Control": {"no-cache"}}, "o\n1\nr\n")},
		{"a log without a tree", "GET", "/v1/log/proof/inclusion?event=evt_1", false, false,
			answer(501, jsonCT, `{"error":{"type":"not_supported","message":"no tree"}}`)},
		{"a tree not built yet", "GET", "/v1/log/proof/consistency?from=1", false, false,
			answer(503, http.Header{"Content-Type": {"application/json"}, "Retry-After": {"5"}}, `{"error":{"type":"log_not_ready","message":"not built"}}`)},
	} {
		body := []byte(nil)
		if tt.method == "POST" && !tt.unread {
			body = event
		}
		if p := c.check(send(tt.method, tt.target, tt.noToken), body, !tt.unread, tt.res, false, false); len(p) != 0 {
			t.Errorf("conforming exchange %q: %q", tt.name, p)
		}
	}
}

// openStore opens a fresh embedded store, closed when the test ends.
func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestOpenAPIAccountExampleIsReal: the account_status example is what the
// fixtures' timeline folds to (GET /v1/accounts/{id} after events 01–07).
func TestOpenAPIAccountExampleIsReal(t *testing.T) {
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := accountsServer(t)
	var got any
	if code := getJSON(t, ts, "/v1/accounts/"+account, &got); code != 200 {
		t.Fatalf("status %d", code)
	}
	if want := doc.Components.Schemas["AccountStatus"].Value.Example; !jsonEqual(got, want) {
		g, _ := json.Marshal(got)
		t.Errorf("the AccountStatus example is not the fixture account's status:\n%s", g)
	}
}

// TestEveryV1RouteRefusesAndFailsAsDocumented sends every /v1 operation of
// the document without a token (401) and, for those reading the event log,
// with the log closed (503 store_unavailable, Retry-After): the answers
// are checked against the document like any other.
func TestEveryV1RouteRefusesAndFailsAsDocumented(t *testing.T) {
	doc, err := loadDocument()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, sqlite.FileName), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	proj, err := projections.Open(filepath.Join(dir, projections.FileName), st, projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proj.Close() })
	srv := newServer(t, api.Config{Store: st, Tokens: []string{token}, Accounts: proj, Replays: replay.NewRunLog(st),
		Verify: audit.NewAccountChecker(st, nil), Reconciliation: backfill.NewReconciler(st, backfill.Options{APIKey: "sk_test_x"}, time.Hour, 0)})
	var paths []string
	for path, item := range doc.Paths.Map() {
		if op := item.Get; op != nil && strings.HasPrefix(path, "/v1/") && (op.Security == nil || len(*op.Security) > 0) {
			paths = append(paths, strings.ReplaceAll(path, "{id}", "x1"))
		}
	}
	sort.Strings(paths)
	if len(paths) < 10 {
		t.Fatalf("only %d secured /v1 operations: %v", len(paths), paths)
	}
	do := func(path string, withToken bool) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if withToken {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range paths {
		if code := do(path, false); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", path, code)
		}
	}
	st.Close()
	for _, path := range []string{"/v1/events", "/v1/events/x1", "/v1/events/x1/body", "/v1/accounts/x1/events",
		"/v1/accounts/x1/verify", "/v1/replays", "/v1/replays/x1"} {
		if code := do(path, true); code != http.StatusServiceUnavailable {
			t.Errorf("%s with the log closed: %d", path, code)
		}
	}
}

// TestAuthFirstMatchesDocument: the check's authentication-first rule
// (authFirst: paths under /v1 but the public ones) and the document's
// security agree on every documented path: an operation needs a token
// exactly when its path is put behind authentication.
func TestAuthFirstMatchesDocument(t *testing.T) {
	c, err := loadConformance()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range c.doc.Paths.Map() {
		r := httptest.NewRequest(http.MethodGet, strings.ReplaceAll(path, "{id}", "x1"), nil)
		first := c.authFirst(r)
		for method, op := range item.Operations() {
			n++
			if c.secured(op) != first {
				t.Errorf("%s %s: needs a token %v, behind authentication first %v", method, path, c.secured(op), first)
			}
		}
	}
	if n < 18 {
		t.Fatalf("only %d operations", n)
	}
}
