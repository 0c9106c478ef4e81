package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/elevate-pam/elevate/notify"
)

// A webhook receives each event as JSON, with a Slack-compatible text.
func Example() {
	texts := make(chan string, 1)
	chat := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var body struct {
			Text string `json:"text"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		texts <- body.Text
	}))
	defer chat.Close()

	n, err := notify.New(notify.Config{Webhooks: []notify.Webhook{{URL: chat.URL}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.Run(ctx)
		close(done)
	}()

	// Notify returns at once; Run makes the delivery.
	n.Notify(notify.Event{
		Kind:      notify.KindApproved,
		RequestID: "req-1",
		Requester: "bob",
		Target:    `Exchange\New-MoveRequest`,
		By:        "alice",
	})
	fmt.Println(<-texts)

	cancel()
	<-done
	// Output: [elevate] approved: Exchange\New-MoveRequest for bob (req-1) by alice
}

// Validate names the key at fault.
func ExampleConfig_Validate() {
	cfg := notify.Config{SMTP: notify.SMTP{
		Addr: "mail.example.com:25",
		From: "elevate@example.com",
		TLS:  notify.TLSNone,
	}}
	fmt.Println(cfg.Validate())
	// Output: notify.smtp.tls: "none" is allowed only when notify.smtp.addr is a loopback address
}
