package kubernetes_test

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/elevate-pam/elevate/kubernetes"
)

// A kubectl delete, a watch, a discovery read, and a path that the API
// server would read as another object.
func ExampleParse() {
	calls := []struct {
		method string
		segs   []string
		query  string
	}{
		{"DELETE", []string{"api", "v1", "namespaces", "prod", "pods", "web-7d9f"}, ""},
		{"GET", []string{"apis", "apps", "v1", "namespaces", "prod", "deployments"}, "watch=true"},
		{"PUT", []string{"apis", "apps", "v1", "namespaces", "prod", "deployments", "web", "scale"}, "dryRun=All"},
		{"GET", []string{"apis", "apps", "v1"}, ""},
		{"DELETE", []string{"api", "v1", "namespaces", "prod", "pods", "x", "..", "y"}, ""},
	}
	for _, c := range calls {
		q, _ := url.ParseQuery(c.query)
		a, err := kubernetes.Parse(c.method, c.segs, q)
		if errors.Is(err, kubernetes.ErrRefused) {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s verb=%s ns=%s name=%s dry-run=%t read=%t\n",
			kubernetes.TaskName(a), a.Verb, a.Namespace, a.Name, a.DryRun, kubernetes.Read(a))
	}
	// Output:
	// Kubernetes\delete pods verb=delete ns=prod name=web-7d9f dry-run=false read=false
	// Kubernetes\watch deployments verb=watch ns=prod name= dry-run=false read=true
	// Kubernetes\update deployments/scale verb=update ns=prod name=web dry-run=true read=false
	// Kubernetes\discovery verb=get ns= name= dry-run=false read=true
	// kubernetes call refused: dot segment ".."
}
