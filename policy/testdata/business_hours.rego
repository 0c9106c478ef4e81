package elevate

# Gated tasks run only on weekdays from 08:00 to 18:00 UTC, for everyone:
# grant holders and system accounts alike.
deny contains "gated tasks run only on weekdays from 08:00 to 18:00 UTC" if {
	gated
	not business_hours
}

business_hours if {
	now := time.now_ns()
	not time.weekday(now) in {"Saturday", "Sunday"}
	[hour, _, _] := time.clock([now, "UTC"])
	hour >= 8
	hour < 18
}
