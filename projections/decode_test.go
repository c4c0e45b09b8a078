package projections

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fcaudit/fcaudit/fc"
	"github.com/fcaudit/fcaudit/internal/fcevents"
)

// decodeSeeds are bodies the scanner must read itself (ordinary Stripe
// and fcevents bodies) and odd ones where it must agree with
// encoding/json, usually by deferring to it.
func decodeSeeds(tb testing.TB) (ordinary, odd [][]byte) {
	tb.Helper()
	for _, pattern := range []string{"*.json", "variants/*.json"} {
		files, err := filepath.Glob(filepath.Join("..", "testdata", "stripe", pattern))
		if err != nil || len(files) == 0 {
			tb.Fatalf("no fixtures %s: %v", pattern, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			if pattern == "*.json" {
				ordinary = append(ordinary, b)
			} else {
				odd = append(odd, b)
			}
		}
	}
	gen := &fcevents.Generator{Size: 3000}
	for i, typ := range fc.Types() {
		ordinary = append(ordinary, gen.Event(typ, "fca_seed"+string(rune('a'+i)), 1700000000+int64(i)))
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `{"data":null}`, `{"data":{}}`, `{"data":{"object":null}}`,
		`{"data":{"object":{}}}`, `{"data":{"object":{}}} `, `{"data":{"object":{}}}x`, `{"data":{"object":{}}`,
		`{"data":{"object":{"status":"active","status":"inactive"}}}`,
		`{"data":{"object":{"Status":"active"}}}`, `{"Data":{"object":{"status":"active"}}}`,
		`{"data":{"object":{"st\u0061tus":"active"}}}`, `{"data":{"object":{"status":"a\nb"}}}`,
		`{"data":{"object":{"status":"act\u00edve"}}}`, `{"data":{"object":{"status":"actíve"}}}`,
		"{\"data\":{\"object\":{\"status\":\"a\xffb\"}}}", "{\"data\":{\"object\":{\"status\":\"a\x01b\"}}}",
		`{"data":{"object":{"status":5}}}`, `{"data":{"object":{"livemode":"true"}}}`,
		`{"data":{"object":{"livemode":null,"status":null}}}`, `{"data":{"object":{"livemode":true}}}`,
		`{"data":{"object":{"balance_refresh":null}}}`, `{"data":{"object":{"balance_refresh":{}}}}`,
		`{"data":{"object":{"balance_refresh":{"status":"failed","last_attempted_at":1.5}}}}`,
		`{"data":{"object":{"balance_refresh":{"last_attempted_at":1e3}}}}`,
		`{"data":{"object":{"balance_refresh":{"last_attempted_at":-12}}}}`,
		`{"data":{"object":{"balance_refresh":{"last_attempted_at":99999999999999999999}}}}`,
		`{"data":{"object":{"balance_refresh":{"last_attempted_at":01}}}}`,
		`{"data":{"object":{"balance_refresh":[1]}}}`, `{"data":{"object":{"ſtatus":"x"}}}`,
		`{"data":{"object":{"x":[1,2,{"a":[true,false,null,-0.5e+7,"\"\\\/\b\f\n\r\t\uABCD"]}]}}}`,
		`{"data":{"object":{"x":[1,]}}}`, `{"data":{"object":{"x":{"a":1,}}}}`, `{"data":{"object":{"x":"\x"}}}`,
		`{"data":{"object":{"x":"\u12"}}}`, `{"data":{"object":{"x":tru}}}`, `{"data":{"object":{"x":-}}}`,
		`{"data":{"object":{"x":1.}}}`, `{"data":{"object":{"x":.5}}}`, `{"data":{"object":{"x":1e}}}`,
		` {"data" : {"object" : {"id" : "fca_1" , "livemode" : false } } } `,
		`{"data":{"object":{"id":"fca_1"}},"data":{"object":{"status":"active"}}}`,
		`{"data":{"object":{"id":"fca_1"},"object":{"status":"active"}}}`,
		`{"data":{"object":{"balance_refresh":{"status":"a"},"balance_refresh":{"last_attempted_at":1}}}}`,
		`{"data":{"object":{"balance_refresh":{"status":"a","STATUS":"b"}}}}`,
		strings.Repeat(`{"a":`, 300) + `1` + strings.Repeat(`}`, 300),
		`{"x":` + strings.Repeat(`[`, 300) + strings.Repeat(`]`, 300) + `,"data":{"object":{"status":"active"}}}`,
	} {
		odd = append(odd, []byte(s))
	}
	// Around encoding/json's nesting limit (10,000 levels, the top-level
	// object included), which the scanner shares.
	for _, n := range []int{9997, 9998, 9999, 10000} {
		arrays := strings.Repeat(`[`, n) + strings.Repeat(`]`, n)
		odd = append(odd,
			[]byte(`{"x":`+arrays+`,"data":{"object":{"status":"active"}}}`),
			[]byte(`{"data":{"object":{"status":"active","x":`+arrays+`}}}`))
	}
	return ordinary, odd
}

// checkDecode fails when decodeAccount and encoding/json disagree.
func checkDecode(t *testing.T, body []byte) {
	t.Helper()
	want, wantErr := decodeAccountJSON(body)
	got, gotErr := decodeAccount(body)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("body %q: decodeAccount error %v, encoding/json error %v", body, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body %q:\n decodeAccount %+v\nencoding/json %+v", body, got, want)
	}
	if obj, ok := scanAccount(body); ok && (wantErr != nil || !reflect.DeepEqual(obj, want)) {
		t.Fatalf("body %q: scanner accepted it (%+v), encoding/json gives %+v, %v", body, obj, want, wantErr)
	}
}

func TestDecodeAccountAgreesWithEncodingJSON(t *testing.T) {
	ordinary, odd := decodeSeeds(t)
	for _, b := range ordinary {
		if _, ok := scanAccount(b); !ok {
			t.Errorf("scanner deferred on an ordinary body: %.200s…", b)
		}
		checkDecode(t, b)
	}
	for _, b := range odd {
		checkDecode(t, b)
	}
}

// FuzzDecodeAccount cross-checks the scanner against encoding/json:
//
//	go test -run '^$' -fuzz FuzzDecodeAccount -fuzztime 60s ./projections
func FuzzDecodeAccount(f *testing.F) {
	ordinary, odd := decodeSeeds(f)
	for _, b := range append(ordinary, odd...) {
		f.Add(b)
	}
	f.Fuzz(checkDecode)
}

func BenchmarkDecodeAccount(b *testing.B) {
	body := (&fcevents.Generator{Size: 3000}).Event(fc.TypeRefreshedBalance, "fca_bench", 1700000000)
	for _, bc := range []struct {
		name   string
		decode func([]byte) (*accountObject, error)
	}{{"encoding-json", decodeAccountJSON}, {"scanner", decodeAccount}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
