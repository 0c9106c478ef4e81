// Package notify tells people and systems when something happens to an
// access request: submitted, approved, denied, revoked, expired, used up
// (the last call its grant allowed was made), or taken by break-glass. It sends mail through an SMTP relay and posts JSON to
// webhooks.
//
// # Delivery
//
// Notify never blocks and never fails its caller: it turns an Event into
// deliveries (one per mail address, one per webhook) and queues them. Run
// makes them, a few at a time. A delivery that fails is tried again after
// Config.RetryBase, then twice as long each time, until Config.Retries
// attempts have been made; then it is logged and counted in Stats.Failed.
// Each delivery is retried on its own, so a broken webhook holds up neither
// the mail nor the other webhooks. The queue holds at most Config.QueueSize
// deliveries (those waiting for a retry included); when it is full, the
// oldest is dropped and counted in Stats.Dropped.
//
// Deliver makes the same deliveries as Notify but waits until each is over,
// and reports an error when one was dropped or cut short, or its context
// ended first: a caller that keeps the event durably (an outbox shared by
// several replicas) removes it only once Deliver has returned nil, so that
// no event is lost with the process that was delivering it. A delivery may
// then be repeated; every event carries an ID (by default the request ID
// and the kind) that stays the same, for receivers to drop repeats.
//
// # Who receives what
//
// A request's approver group is mapped to a mail address by
// Config.Groups. A submitted request goes to its group; approved and denied
// go to the requester (Event.RequesterEmail); revoked, expired and used up go
// to both.
// Break-glass goes to every address in Config.Groups. Webhooks receive every
// kind listed in their Events, or all kinds when the list is empty.
//
// # Mail
//
// One plain-text message per address, with a subject such as
//
//	[elevate] approved: Exchange\New-MoveRequest for bob (req-1)
//
// and the header fields X-Elevate-Event (the kind, such as
// request.approved) and X-Elevate-Request (the request id) for filtering,
// and X-Elevate-Event-Id (the event's ID).
// Break-glass mail is marked urgent. The relay is reached with STARTTLS
// (mandatory) by default, or implicit TLS; no encryption at all only
// towards a loopback address. The password is read from a file. A relay
// that refuses the sender, a recipient or the message with a 5xx reply
// ends the delivery at once; other failures mean another attempt.
//
// # Webhooks
//
// A POST with Content-Type application/json and the body
//
//	{"text": "<one line, Slack-compatible>", "event": {...}}
//
// where "event" is the Event with its JSON member names. Any 2xx answer
// means delivered. A timeout, an error, 408, 429 or a 5xx means another
// attempt; a redirect (never followed) or any other 4xx is final, since the
// endpoint refuses the request itself. An optional secret header,
// such as a token, is read from a file.
//
// # Secrets
//
// The SMTP password, webhook header values and webhook URLs (which often
// hold a token) never appear in logs or errors: a webhook is named by its
// index and host.
package notify
