package fc

import (
	"errors"
	"slices"
	"testing"
)

func TestParseTypes(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{"created"}, []string{TypeCreated}},
		{[]string{TypeCreated}, []string{TypeCreated}},
		{[]string{"created,deactivated"}, []string{TypeCreated, TypeDeactivated}},
		{[]string{" created , " + TypeDisconnected + " ", "created"}, []string{TypeCreated, TypeDisconnected}},
		{[]string{"refreshed_*"}, []string{AccountEventPrefix + "refreshed_*"}},
		{[]string{"financial_connections.account.refreshed_*"}, []string{AccountEventPrefix + "refreshed_*"}},
		{[]string{"*.deactivated"}, []string{"*.deactivated"}},
		{[]string{"*"}, []string{"*"}},
		{[]string{"customer.created"}, []string{"customer.created"}},
		{[]string{"financial_connections.session.*"}, []string{"financial_connections.session.*"}},
	} {
		got, err := ParseTypes(tt.args)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseTypes(%q) = %q, %v; want %q", tt.args, got, err, tt.want)
		}
	}
	for _, bad := range []string{"creatd", "financial_connections.account.foo", "refreshed_x*", "Created", "created deactivated",
		"created,bogus", "financial_connections.account.*x"} {
		if got, err := ParseTypes([]string{bad}); !errors.Is(err, ErrUnknownType) {
			t.Errorf("ParseTypes(%q) = %q, %v; want ErrUnknownType", bad, got, err)
		}
	}
}
