package policy_test

import (
	"fmt"

	"github.com/elevate-pam/elevate/policy"
)

func ExampleNearest() {
	tasks := []string{`Exchange\New-MoveRequest`, `Exchange\Search-Mailbox`, `RabbitMQ\Remove-Queue`}
	for _, typed := range []string{`Exchange\New-MoveReqest`, `exchange\search-mailbox`, `Remove-Queue`, `Payroll\Raise-Salary`} {
		fmt.Printf("%s: %q\n", typed, policy.Nearest(tasks, typed))
	}
	// Output:
	// Exchange\New-MoveReqest: "Exchange\\New-MoveRequest"
	// exchange\search-mailbox: "Exchange\\Search-Mailbox"
	// Remove-Queue: "RabbitMQ\\Remove-Queue"
	// Payroll\Raise-Salary: ""
}
