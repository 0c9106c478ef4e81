package console_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/elevate-pam/elevate/console"
	"github.com/elevate-pam/elevate/proxy/identity"
)

// The dev provider is an OpenID provider the console signs people in with
// under `elevate serve --dev`; its discovery document names the dev
// issuer and endpoints under /dev/oidc on the control listener.
func ExampleNewDevProvider() {
	dir, _ := os.MkdirTemp("", "example-")
	defer os.RemoveAll(dir)
	dev, err := identity.LoadOrCreateDevIssuer(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := console.NewDevProvider(console.DevProviderConfig{Issuer: dev, BaseURL: "http://127.0.0.1:8081"})
	if err != nil {
		fmt.Println(err)
		return
	}
	resp, err := p.Client().Get("http://127.0.0.1:8081" + console.DevPath + "/.well-known/openid-configuration")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer        string   `json:"issuer"`
		Authorization string   `json:"authorization_endpoint"`
		Token         string   `json:"token_endpoint"`
		PKCE          []string `json:"code_challenge_methods_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	fmt.Println(doc.Issuer)
	fmt.Println(doc.Authorization)
	fmt.Println(doc.Token)
	fmt.Println(doc.PKCE)
	// Output:
	// elevate-dev
	// http://127.0.0.1:8081/dev/oidc/authorize
	// http://127.0.0.1:8081/dev/oidc/token
	// [S256]
}
